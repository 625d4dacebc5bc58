import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { RunStore } from '../src/storage/state.ts';

const BIN = fileURLToPath(new URL('../bin/imgdl.js', import.meta.url));
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COUNT = 300;
const CONCURRENCY = 8;

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-resume-'));
}

function start(args: string[], cwd: string) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void exited.then(() => clearTimeout(killer));
  return { child, exited, stderr: () => stderr };
}

function savedImages(out: string): string[] {
  return fs.existsSync(out) ? fs.readdirSync(out).filter((f) => f.endsWith('.png')) : [];
}

async function waitFor(check: () => boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await sleep(20);
  }
}

function setup(origin: Origin) {
  const dir = tmp();
  const urls = Array.from({ length: COUNT }, (_, i) => origin.url(`/img/p${i}.png?pad=2000`));
  fs.writeFileSync(path.join(dir, 'list.txt'), urls.join('\n') + '\n');
  const args = ['get', 'list.txt', '--concurrency', String(CONCURRENCY), '--storage', 'state', '--quiet'];
  return { dir, out: path.join(dir, 'list'), args };
}

/** Every expected file present once, a valid PNG matching its metadata record, and nothing left over. */
function assertComplete(out: string): void {
  const files = savedImages(out).sort();
  assert.deepEqual(files, Array.from({ length: COUNT }, (_, i) => `p${i}.png`).sort());
  const records = fs.readFileSync(path.join(out, 'metadata.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file: string; bytes: number });
  assert.equal(records.length, COUNT, 'one metadata record per image, no duplicates');
  assert.equal(new Set(records.map((r) => r.file)).size, COUNT);
  for (const r of records) {
    const bytes = fs.readFileSync(path.join(out, r.file));
    assert.equal(bytes.length, r.bytes, `${r.file} has the recorded size`);
    assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), `${r.file} is a PNG`);
  }
  assert.equal(fs.existsSync(path.join(out, '.imgdl-tmp')), false, 'no temporary files left');
}

/** Requests made after `from` in the origin log for images that were already on disk then. */
function refetched(origin: Origin, from: number, saved: string[]): string[] {
  const done = new Set(saved.map((f) => `/img/${f}`));
  return origin.log.slice(from).filter((e) => done.has(e.path)).map((e) => e.path);
}

test('a run killed with SIGKILL resumes: every image once, none that was saved fetched again', async () => {
  const origin = await startOrigin({ latencyMs: 40 });
  const { dir, out, args } = setup(origin);
  try {
    const first = start(args, dir);
    await waitFor(() => savedImages(out).length >= COUNT / 3);
    first.child.kill('SIGKILL');
    await first.exited;
    const saved = savedImages(out);
    const requestsBefore = origin.log.length;
    assert.ok(saved.length < COUNT, 'killed part-way');

    const t0 = Date.now();
    const second = start(args, dir);
    await waitFor(() => origin.log.length > requestsBefore, 15_000);
    const startedIn = Date.now() - t0;
    assert.equal(await second.exited, 0, second.stderr());
    assert.ok(startedIn < 10_000, `resumed downloading within seconds (took ${startedIn} ms), no waiting out stale locks`);

    assert.deepEqual(refetched(origin, requestsBefore, saved), [], 'no saved image fetched again');
    const extra = origin.log.length - COUNT;
    // In flight: the images being fetched (at most CONCURRENCY attempts) and those fetched and being saved (a save
    // holds no fetch slot, so that a slow host never holds up the others; saves take milliseconds): about the concurrency.
    assert.ok(extra <= 2 * CONCURRENCY, `at most the in-flight images fetched twice (extra requests: ${extra})`);
    assertComplete(out);
  } finally {
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Ctrl-C stops within seconds, prints the resume command, and the rerun finishes the run', async () => {
  const origin = await startOrigin({ latencyMs: 40 });
  const { dir, out, args } = setup(origin);
  try {
    const first = start(args, dir);
    await waitFor(() => savedImages(out).length >= COUNT / 3);
    const t0 = Date.now();
    first.child.kill('SIGINT');
    const code = await first.exited;
    assert.ok(Date.now() - t0 < 5000, 'stopped within 5 s');
    assert.equal(code, 130);
    assert.match(first.stderr(), /Resume with: imgdl get list\.txt/);
    assert.equal(fs.existsSync(path.join(out, '.imgdl-tmp')), false, 'no temporary files left');
    const saved = savedImages(out);
    const requestsBefore = origin.log.length;

    const second = start(args, dir);
    assert.equal(await second.exited, 0, second.stderr());
    assert.deepEqual(refetched(origin, requestsBefore, saved), []);
    assertComplete(out);
  } finally {
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged run state is reported, not silently dropped', async () => {
  const dir = tmp();
  try {
    const store = await RunStore.open(path.join(dir, 'runs', 'x'));
    store.addItems(Array.from({ length: 2000 }, (_, i) => ({ url: `http://127.0.0.1:9/${i}.png` })));
    store.close();
    const file = path.join(dir, 'runs', 'x', 'state.sqlite');
    const bytes = fs.readFileSync(file);
    // Overwrite a page in the middle of the database with garbage.
    bytes.fill(0xa5, 8192, 8192 + 4096);
    fs.writeFileSync(file, bytes);
    fs.rmSync(`${file}-wal`, { force: true });
    await assert.rejects(RunStore.open(path.join(dir, 'runs', 'x')), /damaged or unreadable/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
