/**
 * Memory of cutting a list into shard jobs: the peak RSS (VmHWM, Linux) of an `imgdl get --queue` coordinator
 * from its start until the whole list is in the queue (then it is stopped), with the time that took.
 *
 *   node --import tsx bench/queue-cut.ts [--urls 1000000] [--job-size 10000] [--bin bin/imgdl.js]
 *
 * `--bin` runs another build (e.g. an older checkout's bin/imgdl.js) for a before/after figure. Needs redis-server
 * (Debian: apt-get install -y redis-server); starts its own on a free port with a temporary folder. The URLs point at
 * a closed port: nothing is downloaded (the coordinator takes shards only once the list is cut, and is stopped then).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from './lib/proc.ts';

const { values } = parseArgs({
  options: { urls: { type: 'string', default: '1000000' }, 'job-size': { type: 'string', default: '10000' }, bin: { type: 'string' } },
});
const URLS = Number(values.urls);
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = path.resolve(values.bin ?? path.join(root, 'bin', 'imgdl.js'));

const peak = (pid: number): number => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-bench-cut-'));
const children: ChildProcess[] = [];
try {
  const list = path.join(dir, 'list.txt');
  const out = fs.createWriteStream(list);
  for (let i = 0; i < URLS; i++) if (!out.write(`http://127.0.0.1:9/img/${i}.png\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r) => out.end(() => r()));
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(redis);
  const { Redis } = await import('ioredis');
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
  await client.connect();
  const started = Date.now();
  const coordinator = spawn(process.execPath, [bin, 'get', list, '--out', path.join(dir, 'out'), '--queue', `redis://127.0.0.1:${port}/0`, '--job-size', values['job-size'], '-c', '1', '--run', 'cut', '--quiet'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(coordinator);
  let most = 0;
  for (;;) {
    most = Math.max(most, peak(coordinator.pid!));
    if ((await client.hget('imgdl:run:cut', 'enqueued')) === '1') break;
    if (coordinator.exitCode !== null) throw new Error(`the coordinator exited (${coordinator.exitCode}) before the list was cut`);
    await sleep(100);
  }
  const seconds = (Date.now() - started) / 1000;
  most = Math.max(most, peak(coordinator.pid!));
  const [shards, urls] = await Promise.all([client.hget('imgdl:run:cut', 'shards'), client.hget('imgdl:run:cut', 'urls')]);
  client.disconnect();
  console.log(`${bin}: ${urls} URLs cut into ${shards} shards in ${seconds.toFixed(1)} s; peak RSS ${(most / 1024).toFixed(0)} MB`);
} finally {
  for (const c of children.reverse()) c.kill('SIGKILL');
  await sleep(200);
  fs.rmSync(dir, { recursive: true, force: true });
}
