/**
 * W11: one run spread over 1, 2 and 4 worker processes through BullMQ on Redis (`imgdl get --queue` + `imgdl
 * worker`), against the bench origin at 100 ms latency, each process at -c 16. Latency-bound (16 / 0.1 s = 160
 * images/s per process at most), so the 2 cores are not what limits it: the target is a throughput ≥ 0.8 × N times
 * one process's. The coordinator counts as one of the N (it works on shards like any worker).
 *
 *   node --import tsx bench/queue.ts [--urls 6000] [--shard-size 500] [--latency 100] [--concurrency 16]
 *
 * Needs redis-server (Debian: apt-get install -y redis-server); starts its own on a free port with a temporary
 * folder, and its own origin (bench/origin.ts). Rates are in-run: from the origin's first image request to its last
 * image response (process start-up left out), and wall: from the coordinator's spawn to its exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from './lib/proc.ts';

const { values } = parseArgs({
  options: { urls: { type: 'string', default: '6000' }, 'shard-size': { type: 'string', default: '500' }, latency: { type: 'string', default: '100' }, concurrency: { type: 'string', default: '16' }, workers: { type: 'string', default: '1,2,4' } },
});
const URLS = Number(values.urls);
const SHARD = Number(values['shard-size']);
const LATENCY = Number(values.latency);
const C = Number(values.concurrency);
const COUNTS = values.workers.split(',').map(Number);
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = path.join(root, 'bin', 'imgdl.js');

if (spawnSync('redis-server', ['--version']).status !== 0) {
  console.error('W11 needs redis-server: apt-get install -y redis-server');
  process.exit(2);
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function start(cmd: string, args: string[], opts: { cwd?: string; stdin?: 'pipe' | 'ignore' } = {}): { child: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const child = spawn(cmd, args, { cwd: opts.cwd ?? root, stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => {
    clearTimeout(timer);
    children.delete(child);
    resolve(code);
  }));
  return { child, out: () => out, err: () => err, exit };
}

async function until(ok: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-w11-'));
const redisPort = await freePort();
const redis = start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', work, '--appendonly', 'yes', '--save', '']);
const queue = `redis://127.0.0.1:${redisPort}/0`;
const origin = start(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'origin.ts'), '--bytes', '12288', '--latency', String(LATENCY)], { stdin: 'pipe' });
await until(() => origin.out().includes('"ports"'), 30_000, 'the origin');
const port = (JSON.parse(origin.out().split('\n')[0]!) as { ports: number[] }).ports[0]!;
const stats = async (query = ''): Promise<Record<string, number | null>> => (await (await fetch(`http://127.0.0.1:${port}/__stats${query}`)).json()) as Record<string, number | null>;
await until(() => redis.child.exitCode === null && fetch(`http://127.0.0.1:${port}/__stats`).then(() => true, () => false), 10_000, 'redis');

interface Row { workers: number; images: number; wallSeconds: number; inRunPerSecond: number; wallPerSecond: number; maxInFlight: number; refetched: number }
const rows: Row[] = [];
for (const n of COUNTS) {
  const dir = path.join(work, `n${n}`);
  fs.mkdirSync(dir);
  // Fresh paths per round, so no round meets another's files or state.
  fs.writeFileSync(path.join(dir, 'list.txt'), Array.from({ length: URLS }, (_, i) => `http://127.0.0.1:${port}/img/${n * 1_000_000 + i}.png`).join('\n') + '\n');
  await stats('?reset=1');
  const spawned = Date.now();
  const coordinator = start(process.execPath, [bin, 'get', 'list.txt', '--out', 'out', '--queue', queue, '--job-size', String(SHARD), '-c', String(C), '--json', '-q'], { cwd: dir });
  const workers = Array.from({ length: n - 1 }, () => start(process.execPath, [bin, 'worker', '--queue', queue, '-c', String(C), '--exit-when-idle', '-q'], { cwd: dir }));
  const code = await coordinator.exit;
  const wall = (Date.now() - spawned) / 1000;
  await Promise.all(workers.map((w) => w.exit));
  if (code !== 0) throw new Error(`the coordinator of round ${n} exited ${code}: ${coordinator.err()}`);
  const s = await stats('?paths=1');
  const inRun = (s['lastImageDoneAt']! - s['firstImageAt']!) / 1000;
  rows.push({ workers: n, images: Number(s['imagesDone']), wallSeconds: wall, inRunPerSecond: Number(s['imagesDone']) / inRun, wallPerSecond: URLS / wall, maxInFlight: Number(s['maxInFlight']), refetched: Number(s['twice'] ?? 0) });
  console.error(`W11 ${n} process${n > 1 ? 'es' : ''}: ${rows.at(-1)!.inRunPerSecond.toFixed(1)} images/s in-run, ${(URLS / wall).toFixed(1)} wall, most in flight ${s['maxInFlight']}`);
}

origin.child.stdin?.end();
redis.child.kill('SIGTERM');
await Promise.all([origin.exit, redis.exit]);
fs.rmSync(work, { recursive: true, force: true });

const one = rows.find((r) => r.workers === 1);
console.log(`W11: ${URLS} URLs × 12 KB, ${LATENCY} ms latency, -c ${C} per process, shards of ${SHARD}; ${os.cpus().length} cores`);
console.log('| processes | in-run images/s | × one process | target (0.8 × N) | wall s | wall images/s | most in flight |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ratio = one ? r.inRunPerSecond / one.inRunPerSecond : NaN;
  console.log(`| ${r.workers} | ${r.inRunPerSecond.toFixed(1)} | ${ratio.toFixed(2)} | ${(0.8 * r.workers).toFixed(1)} ${ratio >= 0.8 * r.workers ? 'met' : 'missed'} | ${r.wallSeconds.toFixed(1)} | ${r.wallPerSecond.toFixed(1)} | ${r.maxInFlight} |`);
}
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench', 'results', 'w11.json'), JSON.stringify({ at: new Date().toISOString(), urls: URLS, shardSize: SHARD, latencyMs: LATENCY, concurrency: C, rows }, null, 2));
