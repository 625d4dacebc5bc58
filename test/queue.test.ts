// One run over many processes through BullMQ on a real redis-server (Debian's package), started by this file on a
// free 127.0.0.1 port: a coordinator (`imgdl get --queue`) and `imgdl worker`s against a local origin, with a
// worker killed mid-shard, a worker started late (which must take a shard), Redis stopped and restarted mid-run, and
// --layout webdataset (a tar shard per job). Checked by the files:
// the exact file set, one record per URL, sha256 and size per record, no duplicate, and refetches counted at the
// origin. Without redis-server the tests say so and skip, except under CI (CI=true), where they fail.
// Run: node --import tsx --test test/queue.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { tarMembers } from './helpers/tar.ts';
import { assertFolder } from './helpers/invariants.ts';
import { png } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { enqueuedIn, freePort, imgdl, redisMissing, refetches, startRedis, until, type Proc, type RedisServer } from './helpers/redis.ts';

const missing = redisMissing();
const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
if (missing && !CI) console.warn(`\n*** test/queue.test.ts: SKIPPED: ${missing}. These tests need a real redis-server. ***\n`);
const skip = missing && !CI ? missing : false;

let redis: RedisServer | undefined;
let origin: Origin | undefined;
before(async () => {
  if (missing && CI) throw new Error(`CI must install redis-server for test/queue.test.ts: ${missing}`);
  if (skip) return;
  redis = await startRedis();
  origin = await startOrigin({ latencyMs: 40 });
});
after(async () => {
  await redis?.stop();
  await origin?.close();
});

function list(dir: string, prefix: string, n: number): string[] {
  const urls = Array.from({ length: n }, (_, i) => origin!.url(`/img/${prefix}-${i}.png`));
  fs.writeFileSync(path.join(dir, 'list.txt'), urls.join('\n') + '\n');
  return urls;
}

const LOCK = '2';

/** Waits until a run's shards are all in the queue (workers with --exit-when-idle started before would leave). */
const enqueued = (coordinator: Proc) => enqueuedIn(redis!.url, coordinator);

/**
 * Serves `/img/<prefix>-<i>.png` (n of them) through a gate: while it is closed, requests are held (answered once it
 * opens, or after 15 s at most). So a test can keep every process busy with the shard it holds.
 */
function gated(prefix: string, n: number): { close: () => void; open: () => void } {
  let closed = false;
  let held: Array<() => void> = [];
  let timer: NodeJS.Timeout | undefined;
  const open = () => {
    closed = false;
    clearTimeout(timer);
    const release = held;
    held = [];
    for (const send of release) send();
  };
  for (let i = 0; i < n; i++) {
    const p = `/img/${prefix}-${i}.png`;
    origin!.route(p, (_req, res) => {
      const send = () => void res.writeHead(200, { 'content-type': 'image/png' }).end(png(8, 8, { seed: p }));
      if (closed) held.push(send);
      else send();
    });
  }
  return {
    close: () => {
      closed = true;
      timer = setTimeout(open, 15_000);
    },
    open,
  };
}

test('a coordinator and 3 workers; one worker killed with SIGKILL mid-shard, a fourth started late takes a shard: every image once, refetches ≤ the killed worker\'s concurrency', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const urls = list(dir, 'kill', 600);
  const gate = gated('kill', 600);
  const out = path.join(dir, 'out');
  const q = redis!.url;
  const coordinator = imgdl(['get', 'list.txt', '--out', out, '--queue', q, '--job-size', '25', '-c', '4', '--lock-duration', LOCK, '--json'], dir);
  await enqueued(coordinator);
  const workers = [1, 2, 3].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  const victim = workers[0]!;
  await until('the first worker to be mid-shard', () => /shard \d+: 25 URLs/.test(victim.stderr()) && origin!.count('/img/kill-') >= 40);
  // A fourth worker started once the others are under way used to find every shard left taken (each process takes
  // its next shard as it finishes one, a few hundred ms apart, faster than a process starts). While the gate is
  // closed, no process can finish the shard it holds, so shards stay waiting until the late worker is up.
  gate.close();
  victim.child.kill('SIGKILL');
  assert.equal(await victim.exit, null, 'killed');
  const late = imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir);
  // imgdl runs --queue, mid-run: the run's shards add up, and the workers alive are listed.
  const listing = await runCli(['runs', '--queue', q, '--json'], { cwd: dir });
  assert.equal(listing.code, 0, listing.stderr);
  const { runs, workers: alive } = JSON.parse(listing.stdout) as { runs: Array<{ outDir: string; shards: number; done: number; active: number; waiting: number; failed: number; saved: number; urls: number }>; workers: Array<{ name: string }> };
  const mine = runs.find((r) => r.outDir === out)!;
  assert.equal(mine.shards, 24);
  assert.equal(mine.done + mine.active + mine.waiting + mine.failed, 24);
  assert.equal(mine.urls, 600);
  assert.ok(mine.saved >= 40 && mine.saved <= 600, `images saved so far: ${mine.saved}`);
  assert.ok(mine.waiting > 0, `shards left for the late worker (${mine.waiting} waiting, ${mine.active} active, ${mine.done} done)`);
  assert.ok(alive.length >= 3, `the coordinator and the two live workers at least (${alive.map((w) => w.name).join(', ')})`);
  const text = await runCli(['runs', '--queue', q], { cwd: dir });
  assert.match(text.stdout, /shards: \d+ done, \d+ active, \d+ waiting, \d+ failed of 24/);
  await until('the late worker to take a shard', () => /shard \d+: 25 URLs/.test(late.stderr()) || late.child.exitCode !== null, 20_000).finally(() => gate.open());
  const code = await coordinator.exit;
  assert.equal(code, 0, coordinator.stderr());
  const summary = JSON.parse(coordinator.stdout()) as { downloaded: number; skipped: number; failed: number; pending: number; shards: { total: number; done: number } };
  assert.deepEqual([summary.downloaded, summary.skipped, summary.failed, summary.pending], [600, 0, 0, 0], 'every image saved by any worker counts as downloaded');
  assert.deepEqual(summary.shards, { total: 24, done: 24, failed: 0 });
  await assertFolder(out, urls);
  assert.ok(refetches(origin!, '/img/kill-') <= 4, `refetched ${refetches(origin!, '/img/kill-')} images; the killed worker had 4 in flight at most`);
  for (const w of [...workers.slice(1), late]) assert.equal(await w.exit, 0, w.stderr());
  assert.match(late.stderr(), / shard \d+: \d+ saved, 0 failed of 25/, 'the late worker took a shard and finished it');
});

test('Redis stopped and restarted mid-run (append-only persistence): the run goes on, nothing is lost, nothing fetched twice', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const urls = list(dir, 'restart', 400);
  const out = path.join(dir, 'out');
  const q = redis!.url;
  const coordinator = imgdl(['get', 'list.txt', '--out', out, '--queue', q, '--job-size', '25', '-c', '4', '--lock-duration', LOCK, '--json'], dir);
  await enqueued(coordinator);
  const workers = [1, 2, 3].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  await until('the workers to be up, and a quarter of the images', () => workers.every((w) => /taking shards/.test(w.stderr())) && origin!.count('/img/restart-') >= 100);
  await redis!.stop();
  const during = origin!.count('/img/restart-');
  await sleep(1500);
  await redis!.start();
  const code = await coordinator.exit;
  assert.equal(code, 0, coordinator.stderr());
  const summary = JSON.parse(coordinator.stdout()) as { downloaded: number; failed: number; pending: number };
  assert.deepEqual([summary.downloaded, summary.failed, summary.pending], [400, 0, 0]);
  await assertFolder(out, urls);
  assert.equal(refetches(origin!, '/img/restart-'), 0, 'no image fetched twice: workers kept their shards while Redis was away');
  assert.ok(during < 400, 'Redis went away mid-run');
  for (const w of workers) assert.equal(await w.exit, 0, w.stderr());
});

test('the same command again once the run is done fetches nothing: every image is skipped', { skip, timeout: 120_000 }, async () => {
  const dir = tmpDir();
  const urls = list(dir, 'again', 40);
  const out = path.join(dir, 'out');
  const args = ['get', 'list.txt', '--out', out, '--queue', redis!.url, '--job-size', '10', '-c', '4', '--json'];
  const first = await runCli(args, { cwd: dir, timeoutMs: 120_000 });
  assert.equal(first.code, 0, first.stderr);
  const requests = origin!.count('/img/again-');
  const second = await runCli(args, { cwd: dir, timeoutMs: 120_000 });
  assert.equal(second.code, 0, second.stderr);
  const summary = JSON.parse(second.stdout) as { downloaded: number; skipped: number; failed: number };
  assert.deepEqual([summary.downloaded, summary.skipped, summary.failed], [0, 40, 0]);
  assert.equal(origin!.count('/img/again-'), requests, 'no request the second time');
  await assertFolder(out, urls);
});

test('a shard delivered again after its run was merged is not opened again: no shard folder comes back, nothing is fetched', { skip, timeout: 120_000 }, async () => {
  // What a worker that kept its shard through a Redis outage (or a duplicate delivery) does once the run is merged.
  const dir = tmpDir();
  const urls = list(dir, 'redelivered', 30);
  const out = path.join(dir, 'out');
  const first = await runCli(['get', 'list.txt', '--out', out, '--queue', redis!.url, '--job-size', '10', '-c', '4', '--json'], { cwd: dir, timeoutMs: 120_000 });
  assert.equal(first.code, 0, first.stderr);
  const { run } = JSON.parse(first.stdout) as { run: string };
  const requests = origin!.count('/img/redelivered-');
  const { Queue } = await import('bullmq');
  const { shardJob } = await import('../src/queue/coordinator.ts');
  const { PREFIX, QUEUE_NAME } = await import('../src/queue/redis.ts');
  const queue = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: Number(new URL(redis!.url).port) }, prefix: PREFIX });
  try {
    const job = shardJob(run, 1, urls.slice(10, 20));
    await queue.add(job.name, job.data, job.opts);
  } finally {
    await queue.close();
  }
  const worker = imgdl(['worker', '--queue', redis!.url, '-c', '4', '--exit-when-idle'], dir);
  assert.equal(await worker.exit, 0, worker.stderr());
  assert.equal(origin!.count('/img/redelivered-'), requests, 'nothing fetched again');
  await assertFolder(out, urls);
});

test('an unreachable Redis is one line and exit 2, before any work; so is a --queue that is not a Redis URL', { skip, timeout: 60_000 }, async () => {
  const dir = tmpDir();
  list(dir, 'unreachable', 3);
  const port = await freePort();
  for (const args of [
    ['get', 'list.txt', '--out', 'out', '--queue', `redis://127.0.0.1:${port}/0`],
    ['worker', '--queue', `redis://127.0.0.1:${port}/0`],
  ]) {
    const r = await runCli(args, { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^imgdl: Cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/0: .*ECONNREFUSED.*\\n$`));
  }
  assert.equal(fs.existsSync(path.join(dir, 'out')), false, 'no output folder made');
  assert.equal(origin!.count('/img/unreachable-'), 0, 'no request');
  const bad = await runCli(['get', 'list.txt', '--queue', 'http://127.0.0.1:6379'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^imgdl: Expected `--queue` to be a Redis URL like redis:\/\/host:6379\/0/);
});

test('--layout webdataset with --queue: each job is one tar shard of its own in the run folder, with the samples, keys and bytes of a local run', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const urls = list(dir, 'wds', 100);
  const local = await runCli(['get', 'list.txt', '--out', 'local', '--layout', 'webdataset', '--shard-size', '25', '-c', '4', '--json'], { cwd: dir, timeoutMs: 120_000 });
  assert.equal(local.code, 0, local.stderr);
  const q = redis!.url;
  // A job may not hold more than a tar shard: refused before any work.
  const big = await runCli(['get', 'list.txt', '--out', 'big', '--queue', q, '--layout', 'webdataset', '--shard-size', '25', '--job-size', '50'], { cwd: dir });
  assert.equal(big.code, 2, big.stderr);
  assert.match(big.stderr, /^imgdl: Expected `--job-size` to be at most `--shard-size` \(25\) with `--layout` webdataset: each job is one tar shard; got 50\n$/);
  assert.equal(fs.existsSync(path.join(dir, 'big')), false);

  const coordinator = imgdl(['get', 'list.txt', '--out', 'dist', '--queue', q, '--layout', 'webdataset', '--shard-size', '25', '-c', '4', '--lock-duration', LOCK, '--json'], dir);
  await enqueued(coordinator);
  const workers = [1, 2].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  assert.equal(await coordinator.exit, 0, coordinator.stderr());
  for (const w of workers) assert.equal(await w.exit, 0, w.stderr());
  const summary = JSON.parse(coordinator.stdout()) as { downloaded: number; failed: number; pending: number; shards: { total: number } };
  assert.deepEqual([summary.downloaded, summary.failed, summary.pending, summary.shards.total], [100, 0, 0, 4]);

  const dist = path.join(dir, 'dist');
  const shardFiles = fs.readdirSync(dist).filter((n) => /^\d{5}\.(tar|jsonl)/.test(n)).sort();
  assert.deepEqual(shardFiles, ['00000.jsonl', '00000.tar', '00001.jsonl', '00001.tar', '00002.jsonl', '00002.tar', '00003.jsonl', '00003.tar'], 'one tar and index per job, no part file');
  assert.deepEqual(fs.readdirSync(dist).filter((n) => n.startsWith('.')), [], 'no shard folder, lock or temporary file left');
  type WRec = { url: string; file: string; key: string; sha256: string; bytes: number };
  const records = readJsonl<WRec>(path.join(dist, 'metadata.jsonl'));
  assert.deepEqual(records.map((r) => r.url).sort(), [...urls].sort(), 'one record per URL');
  const tars = new Map<string, Map<string, Buffer>>();
  for (const t of ['00000.tar', '00001.tar', '00002.tar', '00003.tar']) tars.set(t, await tarMembers(path.join(dist, t)));
  for (const r of records) {
    const [tarName, member] = r.file.split('/') as [string, string];
    assert.equal(member, `${r.key}.png`, `${r.url}: the sample is named by its key`);
    const bytes = tars.get(tarName)?.get(member);
    assert.ok(bytes, `${r.file} is in its tar`);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), r.sha256, `${r.file}: the record's sha256`);
    assert.ok(tars.get(tarName)!.has(`${r.key}.json`), `${r.key}.json beside it`);
  }
  for (const [t, members] of tars) {
    assert.equal([...members.keys()].filter((m) => m.endsWith('.png')).length, 25, `${t} holds one job: 25 samples`);
    const lines = readJsonl<{ status: string }>(path.join(dist, t.replace('.tar', '.jsonl')));
    assert.equal(lines.filter((l) => l.status === 'success').length, 25, `${t}'s index`);
  }
  // Job n holds the images n*25+1 … n*25+25 of the list, under the keys a local run gives them.
  assert.deepEqual([...tars.get('00001.tar')!.keys()].filter((m) => m.endsWith('.png')).sort(), Array.from({ length: 25 }, (_, i) => `${String(26 + i).padStart(9, '0')}.png`));
  const localByUrl = new Map(readJsonl<WRec>(path.join(dir, 'local', 'metadata.jsonl')).map((r) => [r.url, r]));
  for (const r of records) assert.deepEqual([r.key, r.sha256, r.bytes], [localByUrl.get(r.url)!.key, localByUrl.get(r.url)!.sha256, localByUrl.get(r.url)!.bytes], `${r.url}: as in a local run`);
});

test('--per-host and --rate hold across all workers together (a limiter shared through Redis)', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const n = 60;
  let inFlight = 0;
  let most = 0;
  const times: number[] = [];
  const urls: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = `/limited/${i}.png`;
    urls.push(origin!.url(p));
    origin!.route(p, (_req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      times.push(Date.now());
      setTimeout(() => {
        inFlight--;
        res.writeHead(200, { 'content-type': 'image/png' }).end(png(4, 4, { seed: String(i) }));
      }, 150);
    });
  }
  fs.writeFileSync(path.join(dir, 'list.txt'), urls.join('\n') + '\n');
  const q = redis!.url;
  const coordinator = imgdl(['get', 'list.txt', '--out', 'out', '--queue', q, '--job-size', '5', '-c', '4', '--per-host', '2', '--lock-duration', LOCK, '--json'], dir);
  await enqueued(coordinator);
  const workers = [1, 2].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  assert.equal(await coordinator.exit, 0, coordinator.stderr());
  await assertFolder(path.join(dir, 'out'), urls);
  assert.ok(most <= 2, `at most 2 requests in flight at the host across the three processes, saw ${most}`);
  for (const w of workers) assert.equal(await w.exit, 0, w.stderr());
  const shardsTaken = workers.map((w) => (w.stderr().match(/ saved, /g) ?? []).length);
  assert.ok(shardsTaken.some((k) => k > 0), `the workers took shards (${shardsTaken.join(', ')})`);

  // --rate: 2 requests per second to the host, whichever process sends them.
  times.length = 0;
  fs.writeFileSync(path.join(dir, 'rated.txt'), urls.slice(0, 12).join('\n') + '\n');
  const rated = imgdl(['get', 'rated.txt', '--out', 'rated', '--queue', q, '--job-size', '2', '-c', '4', '--rate', '4', '--lock-duration', LOCK, '--json'], dir);
  await enqueued(rated);
  const w2 = [1, 2].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  assert.equal(await rated.exit, 0, rated.stderr());
  assert.equal(times.length, 12);
  // Granted 250 ms apart by Redis; they reach the origin with each process's scheduling delay on top, so the span is
  // checked (each of 3 processes alone at 4/s would send the 12 in about one second).
  const span = Math.max(...times) - Math.min(...times);
  assert.ok(span >= 11 * 250 * 0.8, `12 requests at 4 per second across the processes take ≥ 2.2 s, took ${span} ms`);
  for (const w of w2) assert.equal(await w.exit, 0, w.stderr());
});

test('the library: get({ queue }) and startWorker() in one script', { skip, timeout: 120_000 }, async () => {
  const { get, startWorker } = await import('../src/index.ts');
  const dir = tmpDir();
  const urls = Array.from({ length: 30 }, (_, i) => origin!.url(`/img/lib-${i}.png`));
  const stop = new AbortController();
  const worker = await startWorker({ queue: redis!.url, concurrency: 4, lockDuration: 2, signal: stop.signal });
  try {
    const summary = await get({ items: urls, out: path.join(dir, 'out'), queue: redis!.url, jobSize: 7, concurrency: 4, lockDuration: 2 });
    assert.deepEqual([summary.downloaded, summary.failed, summary.pending], [30, 0, 0]);
    assert.deepEqual((summary as { shards?: unknown }).shards, { total: 5, done: 5, failed: 0 });
  } finally {
    stop.abort();
    await worker.done;
  }
  await assertFolder(path.join(dir, 'out'), urls);
  await assert.rejects(startWorker({ queue: 'redis://127.0.0.1:1/0' }), /Cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/0/);
  await assert.rejects(startWorker({ queue: redis!.url, concurrency: 0 }), /Expected `concurrency` to be an integer ≥ 1, got 0/);
});

test('Ctrl-C on the coordinator hands its shard back and exits 130; the same command finishes the run, nothing fetched twice but what was in flight', { skip, timeout: 180_000 }, async () => {
  const dir = tmpDir();
  const urls = list(dir, 'sigint', 120);
  const args = ['get', 'list.txt', '--out', 'out', '--queue', redis!.url, '--job-size', '20', '-c', '2', '--lock-duration', LOCK, '--json'];
  const first = imgdl(args, dir);
  await until('some images', () => origin!.count('/img/sigint-') >= 30);
  first.child.kill('SIGINT');
  assert.equal(await first.exit, 130, first.stderr());
  assert.match(first.stderr(), /Resume with: imgdl get list\.txt --out out --queue/);
  const stopped = JSON.parse(first.stdout()) as { interrupted: boolean; pending: number };
  assert.equal(stopped.interrupted, true);
  const second = await runCli(args, { cwd: dir, timeoutMs: 150_000 });
  assert.equal(second.code, 0, second.stderr);
  await assertFolder(path.join(dir, 'out'), urls);
  assert.ok(refetches(origin!, '/img/sigint-') <= 2, `refetched ${refetches(origin!, '/img/sigint-')}, at most the 2 in flight`);
});

test('Ctrl-C while the coordinator waits for a live worker still in a shard folder: exit 130, not merged; the same command merges', { skip, timeout: 180_000 }, async () => {
  const dir = tmpDir();
  const urls = list(dir, 'waitmerge', 20);
  const args = ['get', 'list.txt', '--out', 'out', '--queue', redis!.url, '--job-size', '10', '-c', '4', '--json'];
  const { Redis } = await import('ioredis');
  const client = new Redis(redis!.url);
  const meta = async () => {
    for (const run of await client.zrange('imgdl:runs', '0', '-1')) {
      const m = await client.hgetall(`imgdl:run:${run}`);
      if (m['outDir'] === path.join(dir, 'out')) return { run, m };
    }
    return undefined;
  };
  try {
    const first = imgdl(args, dir);
    await enqueued(first);
    const { run } = (await meta())!;
    // A worker that is alive (its heartbeat key is there) and has shard 0's folder open, as one that lost Redis for a while.
    await client.multi().set('imgdl:worker:ghost', '{}', 'PX', 120_000).hset(`imgdl:run:${run}:open`, '0 ghost', String(Date.now())).exec();
    for (let i = 0; i < 600 && (await meta())?.m['merging'] !== '1'; i++) await sleep(100);
    assert.equal((await meta())?.m['merging'], '1', 'the coordinator waits to merge');
    first.child.kill('SIGINT');
    assert.equal(await first.exit, 130, first.stderr());
    assert.equal((JSON.parse(first.stdout()) as { interrupted: boolean }).interrupted, true);
    const after = (await meta())!.m;
    assert.deepEqual([after['merging'], after['merged']], [undefined, undefined], 'not merged, the mark taken back');
    await client.del('imgdl:worker:ghost', `imgdl:run:${run}:open`);
    const requests = origin!.count('/img/waitmerge-');
    const second = await runCli(args, { cwd: dir, timeoutMs: 150_000 });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(origin!.count('/img/waitmerge-'), requests, 'nothing fetched again');
    await assertFolder(path.join(dir, 'out'), urls);
  } finally {
    client.disconnect();
  }
});
