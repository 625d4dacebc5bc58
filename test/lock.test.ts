// The run lock: a live holder keeps it, a dead one (or a zombie left by kill -9) gives it up at once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RunLock } from '../src/storage/lock.ts';
import { tmpDir } from './helpers/cli.ts';

function holdBy(dir: string, pid: number): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'lock'), JSON.stringify({ pid, host: os.hostname(), since: new Date().toISOString() }));
}

test('a lock held by a live process is refused; one held by a dead process is taken over', async () => {
  const dir = tmpDir();
  const sleeper = spawn('sleep', ['5'], { stdio: 'ignore' });
  try {
    holdBy(dir, sleeper.pid!);
    await assert.rejects(RunLock.take(dir), /in use by process/);
  } finally {
    sleeper.kill('SIGKILL');
  }
  await new Promise((r) => sleeper.once('exit', r));
  const lock = await RunLock.take(dir);
  lock.release();
});

test('a zombie holder (killed, not yet reaped by its parent) does not keep the lock', { skip: process.platform !== 'linux' && 'Linux /proc only' }, async () => {
  const dir = tmpDir();
  // The parent forks a child that exits at once and is never waited for: a zombie for as long as the parent sleeps.
  const parent = spawn('python3', ['-c', 'import os,time\npid=os.fork()\nif pid==0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(10)'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const pid = Number((await new Promise<Buffer>((r) => parent.stdout.once('data', r))).toString().trim());
    await new Promise((r) => setTimeout(r, 100));
    assert.match(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) Z /, 'the child is a zombie');
    holdBy(dir, pid);
    const lock = await RunLock.take(dir);
    lock.release();
  } finally {
    parent.kill('SIGKILL');
  }
});

test('a lock file torn by a kill between its creation and its pid (empty) is taken over once it is a second old, even by a rerun started at once', async () => {
  // What SIGKILL at the wrong moment of a start leaves: the chaos test's rerun hit it and gave up after ~0.1 s.
  const dir = tmpDir();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'lock'), '');
  const started = Date.now();
  const lock = await RunLock.take(dir, 'again');
  const waited = Date.now() - started;
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'lock'), 'utf8')).pid, process.pid);
  assert.ok(waited < 10_000, `taken after ${waited} ms`);
  lock.release();
  assert.equal(fs.existsSync(path.join(dir, 'lock')), false);
});

test('an empty lock file that a live process fills in belongs to that process: refused, not taken over', async () => {
  const dir = tmpDir();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'lock'), '');
  const sleeper = spawn('sleep', ['5'], { stdio: 'ignore' });
  try {
    // The "starting" process writes its pid 200 ms later, well within the wait for a torn file.
    setTimeout(() => holdBy(dir, sleeper.pid!), 200);
    await assert.rejects(RunLock.take(dir), /in use by process/);
  } finally {
    sleeper.kill('SIGKILL');
  }
});
