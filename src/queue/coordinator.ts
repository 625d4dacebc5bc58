// One run over many machines: the coordinator cuts the inputs into shard jobs on the BullMQ queue, works on shards
// like any worker, waits until every shard of its run is done (by any worker), merges the shards' records and
// failures into the run's metadata.jsonl / failures.jsonl, and gives the whole run's summary.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { UsageError, type ReasonCode } from '../errors.ts';
import { FAILURES_FILE, FOLDER_LOCK, METADATA_FILE, type EngineOptions, type ItemInput, type Summary } from '../core/engine.ts';
import type { HttpClientKind } from '../http/client.ts';
import { storedUrl } from '../core/urls.ts';
import { redact } from '../http/credentials.ts';
import type { ImageRecord } from '../core/download.ts';
import type { FailureRecord } from '../storage/state.ts';
import { checkWritableDir } from '../storage/disk.ts';
import { RunLock } from '../storage/lock.ts';
import { UrlSet } from '../storage/url-set.ts';
import { integer } from '../options.ts';
import { inputs, pickDownloadOptions, planGet, type GetOptions } from '../get.ts';
import type { S3Output } from '../output/s3.ts';
import { s3Url, type S3Target } from '../output/s3-target.ts';
import {
  connect, HEARTBEAT_MS, jobId, keys, parseRedisUrl, PREFIX, QUEUE_NAME, SHARD_ATTEMPTS, SHARDS_DIR, WORKER_TTL_MS, type LiveShard, type ShardResult,
} from './redis.ts';
import { lockDurationMs, startWorker, type ShardEvent, type ShardJob } from './worker.ts';

export const DEFAULT_SHARD_SIZE = 10_000;

/** Where a distributed run stands, as the coordinator reports it while it waits. */
export interface QueueProgress {
  run: string;
  shards: number;
  shardsDone: number;
  shardsFailed: number;
  /** Images saved by any worker in this run so far (done shards, and shards in hand as last reported). */
  saved: number;
  failed: number;
  /** URLs in the run (each once). */
  total: number;
  workers: number;
  elapsedMs: number;
}

/** The whole run's summary, plus its shards. */
export interface QueueSummary extends Summary {
  shards: { total: number; done: number; failed: number };
}

/** Shard jobs added per addBulk call: up to 50, and no more URLs than ADD_BATCH_URLS (unless one shard has more). */
const ADD_BATCH = 50;
const ADD_BATCH_URLS = 20_000;
const POLL_MS = 500;

/** Where a distributed run goes and how this process takes part in it (get() and runPlugin() options alike). */
export interface CoordinateOptions {
  queue?: string;
  lockDuration?: number | string;
  concurrency?: number | string;
  signal?: AbortSignal;
  http?: HttpClientKind;
  onShard?: (event: ShardEvent) => void;
  onQueueProgress?: (progress: QueueProgress) => void;
  /** Where this process keeps the state of the shards of s3:// runs it works on (default: ./storage). */
  storage?: string;
}

/** What cutting a run into shard jobs left to add to the whole run's summary. */
export interface Cut {
  /** The cut stopped before its end (Ctrl-C): the run is not all in the queue yet; the same command goes on. */
  interrupted?: boolean;
  /** The cut stopped because the coordinator's disk filled up (exit 75; the same command goes on). */
  stopped?: Summary['stopped'];
  /** A failure report (JSON Lines) of what failed before any worker saw it (a plugin's pages, bad names), merged in. */
  failuresFile?: string;
  /** Images skipped beyond those the merge finds (a plugin's images already in the --archive). */
  skipped?: number;
  pagesFailed?: number;
  pagesNotVisited?: number;
}

/**
 * `get({ queue })`: the run is cut into shard jobs of `jobSize` URLs (inline in the job), added with ids made of
 * the run's name and the shard's number (so adding them again adds nothing), worked on by every `imgdl worker` on
 * the queue and by this process, and merged at the end. Runs the same command again: continues (or, once done,
 * reports everything as skipped).
 */
export async function getQueued(options: GetOptions): Promise<QueueSummary> {
  const plan = planGet(options);
  const shardSize = queueJobSize(options.jobSize, plan.engineOptions);
  if (options.fresh) throw new UsageError('`fresh` is not available with `queue` yet: give another --run name to start over');
  if (options.retryFailed) throw new UsageError('`retryFailed` is not available with `queue` yet');
  const outKey = plan.s3 ? plan.shownOut : plan.outDir;
  return coordinate(
    options, plan.run, plan.outDir,
    async ({ redis, queue, meta }) => {
      if (meta['enqueued'] !== '1') await enqueue(redis, queue, plan.run, plan, options, shardSize, outKey);
      return {};
    },
    false,
    plan.s3 ? { target: plan.s3, shown: plan.shownOut, engineOptions: plan.engineOptions } : undefined,
  );
}

/**
 * Images per shard job: `jobSize` (default 10,000). With `layout: webdataset` each job is one tar shard of its own
 * (numbered from the run's first free one), so a job defaults to `shardSize` samples and may not hold more.
 */
export function queueJobSize(jobSize: unknown, options: EngineOptions): number {
  if (options.layout !== 'webdataset') return jobSize === undefined ? DEFAULT_SHARD_SIZE : integer('jobSize', jobSize, 1);
  if (jobSize === undefined) return options.shardSize;
  const n = integer('jobSize', jobSize, 1);
  if (n > options.shardSize) throw new UsageError(`Expected \`jobSize\` to be at most \`shardSize\` (${options.shardSize}) with \`layout\` webdataset: each job is one tar shard; got ${n}`);
  return n;
}

/** The number of the first tar shard a new webdataset run into `outDir` may use: past every shard already there. */
export function firstTarShard(outDir: string): number {
  let next = 0;
  for (const name of fs.existsSync(outDir) ? fs.readdirSync(outDir) : []) {
    const m = /^(\d{5,})\.(tar|jsonl)(\.part)?$/.exec(name);
    if (m) next = Math.max(next, Number(m[1]) + 1);
  }
  return next;
}

/** A sample's key in a webdataset run: the image's position in the run, as a local run numbers them. */
export function sampleKey(position: number): string {
  return String(position).padStart(9, '0');
}

/**
 * One distributed run, however its shards are made: checked before any work (Redis reachable, the output folder
 * writable and not being written by another run), `cut` adds the run's shard jobs while this process works on shards
 * like any worker; then it waits until every shard is done (by any worker) and merges their records and failures.
 */
export async function coordinate(
  options: CoordinateOptions, run: string, outDir: string,
  cut: (ctx: { redis: Redis; queue: Queue<ShardJob>; meta: Record<string, string> }) => Promise<Cut>,
  /** Take shards while `cut` runs (a plugin's crawl, which finds images as it goes); else once it is done. */
  workWhileCutting = false,
  /** An s3:// output: `outDir` is then the local folder of the run's records (merged there, then uploaded). */
  output?: { target: S3Target; shown: string; engineOptions: EngineOptions },
): Promise<QueueSummary> {
  const url = parseRedisUrl(options.queue);
  const lockMs = lockDurationMs(options.lockDuration);
  const concurrency = options.concurrency === undefined ? undefined : integer('concurrency', options.concurrency, 1);
  // Checked before any work: an s3:// output's bucket (credentials, existence, a write), Redis reachable, the output
  // folder writable and not being written by another run.
  const s3 = output ? await (await import('../output/s3.ts')).S3Output.open(output.target, output.engineOptions) : undefined;
  const outKey = output ? output.shown : outDir;
  const redis = await connect(url, 'imgdl-coordinator');
  const started = Date.now();
  let lock: RunLock | undefined;
  let queue: Queue<ShardJob> | undefined;
  let queueConnection: Redis | undefined;
  try {
    checkWritableDir(outDir, 'the output folder');
    lock = await RunLock.takeFile(path.join(outDir, FOLDER_LOCK), {
      run,
      busy: (holder) => `The folder ${outDir} is being written by another imgdl run (process ${holder.pid}${holder.run ? `, run ${holder.run}` : ''}); wait for it to end, or give another --out.`,
    });
    const meta = await redis.hgetall(keys.run(run));
    if (meta['outDir'] !== undefined && meta['outDir'] !== outKey) {
      throw new UsageError(`The run ${run} in this Redis writes into ${meta['outDir']}, not ${outKey}; give another --run name`);
    }
    if (meta['merged'] === '1') return finishedSummary(run, outKey, meta, started);
    // The bucket's records are the run's (workers on other machines wrote them): the local copy is brought up to date.
    if (s3) await s3.download(METADATA_FILE, path.join(outDir, METADATA_FILE));
    const { Queue: BullQueue } = await import('bullmq');
    queueConnection = redis.duplicate();
    queueConnection.on('error', () => {});
    queue = new BullQueue<ShardJob>(QUEUE_NAME, { connection: queueConnection, prefix: PREFIX });
    const doneBefore = new Set(await redis.hkeys(keys.done(run)));

    // This process works on shards too, like any worker, until its run is done.
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const work = () => startWorker({
      queue: url.href, lockDuration: lockMs / 1000, signal: stop.signal, http: options.http, onShard: options.onShard, storage: options.storage,
      ...(concurrency === undefined ? {} : { concurrency }),
    });
    let worker = workWhileCutting ? await work() : undefined;
    let finished = false;
    let result: Cut = {};
    try {
      // While shards are being added, workers waiting to leave when idle (--exit-when-idle) stay.
      const beat = () => redis.zadd(keys.cutting, Date.now() + WORKER_TTL_MS, run).catch(() => {});
      await beat();
      const beating = setInterval(() => void beat(), HEARTBEAT_MS);
      try {
        result = await cut({ redis, queue, meta });
      } finally {
        clearInterval(beating);
        await redis.zrem(keys.cutting, run).catch(() => {});
      }
      worker ??= await work();
      const shards = Number(await redis.hget(keys.run(run), 'shards'));
      for (;;) {
        if (result.interrupted || result.stopped || options.signal?.aborted) break;
        const progress = await runProgress(redis, run, started);
        options.onQueueProgress?.(progress);
        if (progress.shardsDone + progress.shardsFailed >= shards) {
          finished = true;
          break;
        }
        await sleep(POLL_MS);
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      await worker?.close();
    }
    if (!finished) return await interruptedSummary(redis, run, outKey, started, result);
    // Stopped (Ctrl-C) while waiting for a worker still in a shard's folder: the run merges next time.
    if (!(await closeShards(redis, run, options.signal))) return await interruptedSummary(redis, run, outKey, started, result);
    return await merge(redis, run, outDir, doneBefore, started, result, s3);
  } finally {
    await queue?.close().catch(() => {});
    queueConnection?.disconnect();
    lock?.release();
    redis.disconnect();
  }
}

/** Reads the inputs once, each URL once, and adds one job per shard not yet done; then marks the run enqueued. */
async function enqueue(redis: Redis, queue: Queue<ShardJob>, run: string, plan: ReturnType<typeof planGet>, options: GetOptions, shardSize: number, outKey: string): Promise<void> {
  await redis
    .multi()
    .hset(keys.run(run), {
      outDir: outKey, options: JSON.stringify(pickDownloadOptions(options)), shardSize: String(shardSize), createdAt: String(Date.now()),
      ...(plan.s3 ? { s3: JSON.stringify(plan.s3) } : {}),
    })
    .hsetnx(keys.run(run), 'tarBase', String(firstTarShard(plan.outDir)))
    .zadd(keys.runs, Date.now(), run)
    .exec();
  const webdataset = plan.engineOptions.layout === 'webdataset';
  const done = new Set(await redis.hkeys(keys.done(run)));
  // Each URL once, in bounded memory: a scratch set on disk in the run's state folder (a run cut again after a crash
  // starts it over, and cuts the same shards).
  fs.mkdirSync(plan.stateDir, { recursive: true });
  const seen = await UrlSet.create(path.join(plan.stateDir, SEEN_FILE));
  try {
    // Images an earlier run saved into this folder (its metadata.jsonl) are skipped, as a local run skips them.
    await loadRecorded(seen, path.join(plan.outDir, METADATA_FILE));
    let skipped = 0;
    let total = 0;
    let position = 0;
    let shard = 0;
    let items: ShardJob['items'] = [];
    let batch: Array<ReturnType<typeof shardJob>> = [];
    let batchUrls = 0;
    const flushBatch = async () => {
      if (batch.length > 0) await queue.addBulk(batch);
      batch = [];
      batchUrls = 0;
    };
    const cut = async () => {
      if (items.length === 0) return;
      if (!done.has(String(shard))) {
        batch.push(shardJob(run, shard, items));
        batchUrls += items.length;
        if (batch.length >= ADD_BATCH || batchUrls >= ADD_BATCH_URLS) await flushBatch();
      }
      shard++;
      items = [];
    };
    for await (const item of inputs(plan.items, plan.lists, plan.urls, plan.formats, plan.columns)) {
      const was = seen.see(storedUrl(item.url) ?? redact(item.url));
      if (was === 'again') continue;
      position++;
      if (was === 'earlier') {
        skipped++;
        continue;
      }
      total++;
      // WebDataset samples are named by their key: the image's position in the run (a table row's own key if it has one).
      if (webdataset && item.key === undefined) item.key = sampleKey(position);
      const plain = item.name === undefined && item.metadata === undefined && item.headers === undefined && item.key === undefined && item.caption === undefined && item.bad === undefined;
      items.push(plain ? item.url : (item satisfies ItemInput));
      if (items.length >= shardSize) await cut();
    }
    await cut();
    await flushBatch();
    await redis.hset(keys.run(run), { shards: String(shard), urls: String(total), skipped: String(skipped), enqueued: '1' });
  } finally {
    seen.close();
    // The state folder held only the scratch file: gone with it (`imgdl runs` lists the folders there).
    try {
      fs.rmdirSync(plan.stateDir);
    } catch {
      // Not empty (the folder holds something else too): left as it is.
    }
  }
}

/** The scratch set of a run's URLs while it is cut into shards (src/storage/url-set.ts), in its state folder. */
const SEEN_FILE = 'queue-urls.sqlite';

/** The URLs of a folder's metadata.jsonl, added to `set` as recorded by an earlier run. */
export async function loadRecorded(set: UrlSet, file: string): Promise<void> {
  for await (const record of jsonLines<{ url?: unknown }>(file)) if (typeof record.url === 'string') set.addEarlier(record.url);
}

/** A shard job as added to the queue: its id made of the run and the shard's number, so adding it again adds nothing. */
export function shardJob(run: string, shard: number, items: ShardJob['items']) {
  return {
    name: 'shard',
    data: { run, shard, items },
    opts: { jobId: jobId(run, shard), attempts: SHARD_ATTEMPTS, backoff: { type: 'exponential' as const, delay: 5000 }, removeOnComplete: true as const, removeOnFail: false as const },
  };
}

/** The lines of a JSONL file, parsed (a torn or bad line skipped); none when the file is missing. */
export async function* jsonLines<T>(file: string): AsyncGenerator<T> {
  let input: fs.ReadStream;
  try {
    input = fs.createReadStream(file, { encoding: 'utf8' });
    await new Promise<void>((resolve, reject) => input.once('open', () => resolve()).once('error', reject));
  } catch {
    return;
  }
  for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    try {
      yield JSON.parse(line) as T;
    } catch {
      // A torn last line (a crash mid-append): that image's shard settled it in its own state.
    }
  }
}

/** Counts of a run: shards done and failed, images saved and failed (done shards, plus the live reports of the
 * shards being worked on), workers alive. */
export async function runProgress(redis: Redis, run: string, started: number): Promise<QueueProgress> {
  const [meta, done, failed, live, workers] = await Promise.all([
    redis.hgetall(keys.run(run)),
    redis.hvals(keys.done(run)),
    redis.hlen(keys.failed(run)),
    redis.hgetall(keys.live(run)),
    redis.zcount(keys.workers, Date.now() - 15_000, '+inf'),
  ]);
  let saved = 0;
  let failedImages = 0;
  for (const r of done.map((v) => JSON.parse(v) as ShardResult)) {
    saved += r.saved;
    failedImages += r.failed;
  }
  for (const l of Object.values(live).map((v) => JSON.parse(v) as LiveShard)) {
    saved += l.saved;
    failedImages += l.failed;
  }
  return {
    run,
    shards: Number(meta['shards'] ?? 0),
    shardsDone: done.length,
    shardsFailed: failed,
    saved,
    failed: failedImages,
    total: Number(meta['urls'] ?? 0),
    workers,
    elapsedMs: Date.now() - started,
  };
}

/**
 * Every shard is done: their records and failures become the run's metadata.jsonl (the earlier records of the
 * folder kept, one record per URL) and failures.jsonl, each written whole and renamed into place; the shards'
 * folders go once merged (unless a shard failed for good: then they stay for the next attempt).
 */
async function merge(redis: Redis, run: string, outDir: string, doneBefore: Set<string>, started: number, cut: Cut = {}, s3?: S3Output): Promise<QueueSummary> {
  const meta = await redis.hgetall(keys.run(run));
  const shards = Number(meta['shards'] ?? 0);
  const failedShards = await redis.hgetall(keys.failed(run));
  const shardsDir = path.join(outDir, SHARDS_DIR);
  if (s3) {
    // Each shard's records and failures were uploaded by its worker under .imgdl-shards/<n>/: brought here to merge.
    for (let shard = 0; shard < shards; shard++) {
      for (const name of [METADATA_FILE, FAILURES_FILE]) await s3.download(`${SHARDS_DIR}/${shard}/${name}`, path.join(shardsDir, String(shard), name));
    }
  }
  const records = new Map<string, ImageRecord>();
  const fromEarlierInvocation = new Set<string>();
  const failures = new Map<string, FailureRecord>();
  for (let shard = 0; shard < shards; shard++) {
    const dir = path.join(shardsDir, String(shard));
    for await (const r of jsonLines<ImageRecord>(path.join(dir, METADATA_FILE))) {
      records.set(r.url, r);
      if (doneBefore.has(String(shard))) fromEarlierInvocation.add(r.url);
    }
    for await (const f of jsonLines<FailureRecord>(path.join(dir, FAILURES_FILE))) failures.set(f.url, f);
  }
  for (const url of records.keys()) failures.delete(url);
  // What failed before any worker saw it: a plugin's pages (`"page": true`, not images) and images it named badly.
  const local: Array<FailureRecord & { page?: boolean }> = [];
  if (cut.failuresFile) for await (const f of jsonLines<FailureRecord & { page?: boolean }>(cut.failuresFile)) if (f.page || !records.has(f.url)) local.push(f);
  const metadataFile = path.join(outDir, METADATA_FILE);
  const failuresFile = path.join(outDir, FAILURES_FILE);
  const merged = `${metadataFile}.merging`;
  const out = fs.createWriteStream(merged);
  const write = (line: string) => (out.write(line) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve())));
  // The folder's records from earlier runs first (those the run did not save again), then the run's.
  for await (const r of jsonLines<ImageRecord>(metadataFile)) if (!records.has(r.url)) await write(JSON.stringify(r) + '\n');
  let downloaded = 0;
  let bytes = 0;
  for (const r of records.values()) {
    await write(JSON.stringify(r) + '\n');
    if (!fromEarlierInvocation.has(r.url)) {
      downloaded++;
      bytes += r.bytes;
    }
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  fs.renameSync(merged, metadataFile);
  const failuresByCode: Partial<Record<ReasonCode, number>> = {};
  const lines = [...failures.values(), ...local];
  fs.writeFileSync(`${failuresFile}.merging`, lines.map((f) => JSON.stringify(f) + '\n').join(''));
  fs.renameSync(`${failuresFile}.merging`, failuresFile);
  for (const f of lines) failuresByCode[f.code] = (failuresByCode[f.code] ?? 0) + 1;
  const total = Number(meta['urls'] ?? 0);
  const failedCount = failures.size + local.filter((f) => !f.page).length;
  const pending = Math.max(0, total - records.size - failures.size);
  const seconds = (Date.now() - started) / 1000;
  const skipped = Number(meta['skipped'] ?? 0) + fromEarlierInvocation.size + (cut.skipped ?? 0);
  const pages = {
    ...(cut.pagesFailed ? { pagesFailed: cut.pagesFailed } : {}),
    ...(cut.pagesNotVisited ? { pagesNotVisited: cut.pagesNotVisited } : {}),
  };
  const shardCount = { total: shards, done: shards - Object.keys(failedShards).length, failed: Object.keys(failedShards).length };
  if (s3) {
    for (const name of [METADATA_FILE, FAILURES_FILE]) await s3.putRunFile(name, path.join(outDir, name));
  }
  if (shardCount.failed === 0) {
    await fs.promises.rm(shardsDir, { recursive: true, force: true });
    if (s3) {
      const names: string[] = [];
      for await (const o of s3.list(`${SHARDS_DIR}/`)) names.push(o.name);
      await s3.delete(names);
    }
    await redis
      .multi()
      .hset(keys.run(run), {
        merged: '1', saved: String(records.size + (cut.skipped ?? 0)), failed: String(failedCount), failuresByCode: JSON.stringify(failuresByCode), bytes: String(bytes),
        ...(cut.pagesFailed ? { pagesFailed: String(cut.pagesFailed) } : {}),
      })
      .del(keys.live(run))
      .del(keys.open(run))
      .exec();
  } else {
    // The failed shards' folders stay, for the next attempt of the same command to take them up again.
    await redis.hdel(keys.run(run), 'merging');
  }
  return {
    run,
    downloaded,
    skipped,
    failed: failedCount,
    pending,
    bytes,
    seconds: Math.round(seconds * 1000) / 1000,
    imagesPerSecond: seconds > 0 ? Math.round((downloaded / seconds) * 10) / 10 : 0,
    interrupted: false,
    outDir: s3 ? s3Url(s3.target) : outDir,
    metadataFile: s3 ? s3Url(s3.target, METADATA_FILE) : metadataFile,
    failuresFile: s3 ? s3Url(s3.target, FAILURES_FILE) : failuresFile,
    failuresByCode,
    ...pages,
    shards: shardCount,
  };
}

/**
 * Marks the run as being merged, so that no worker opens a shard's folder from now on (a shard delivered again, or
 * still held by a worker that lost Redis for a while: see claimShard), then waits until the workers that have one
 * open close it. A worker not heard from for WORKER_TTL_MS is dead: its folder is not waited for. False when `signal`
 * stopped the wait (the mark is taken back).
 */
async function closeShards(redis: Redis, run: string, signal: AbortSignal | undefined): Promise<boolean> {
  await redis.hset(keys.run(run), 'merging', '1');
  for (;;) {
    const holders = [...new Set((await redis.hkeys(keys.open(run))).map((entry) => entry.slice(entry.indexOf(' ') + 1)))];
    if (holders.length === 0) return true;
    const alive = await Promise.all(holders.map((name) => redis.exists(keys.worker(name))));
    if (alive.every((n) => n === 0)) return true;
    if (signal?.aborted) {
      // Not merged: shards may be opened again until the same command merges the run.
      await redis.hdel(keys.run(run), 'merging');
      return false;
    }
    await sleep(CLOSE_POLL_MS);
  }
}

const CLOSE_POLL_MS = 100;

/** The same command after the run was merged: nothing to do, everything it saved is `skipped`. */
function finishedSummary(run: string, outDir: string, meta: Record<string, string>, started: number): QueueSummary {
  const shards = Number(meta['shards'] ?? 0);
  const seconds = (Date.now() - started) / 1000;
  return {
    run,
    downloaded: 0,
    skipped: Number(meta['saved'] ?? 0) + Number(meta['skipped'] ?? 0),
    failed: Number(meta['failed'] ?? 0),
    pending: 0,
    bytes: 0,
    seconds: Math.round(seconds * 1000) / 1000,
    imagesPerSecond: 0,
    interrupted: false,
    outDir,
    metadataFile: runFile(outDir, METADATA_FILE),
    failuresFile: runFile(outDir, FAILURES_FILE),
    failuresByCode: JSON.parse(meta['failuresByCode'] ?? '{}') as Partial<Record<ReasonCode, number>>,
    ...(meta['pagesFailed'] ? { pagesFailed: Number(meta['pagesFailed']) } : {}),
    shards: { total: shards, done: shards, failed: 0 },
  };
}

/** Stopped before the run was done: the counts so far (the workers go on; the same command picks the run up). */
async function interruptedSummary(redis: Redis, run: string, outDir: string, started: number, cut: Cut = {}): Promise<QueueSummary> {
  const p = await runProgress(redis, run, started);
  const seconds = (Date.now() - started) / 1000;
  return {
    run,
    downloaded: p.saved,
    skipped: 0,
    failed: p.failed,
    pending: Math.max(0, p.total - p.saved - p.failed),
    bytes: 0,
    seconds: Math.round(seconds * 1000) / 1000,
    imagesPerSecond: seconds > 0 ? Math.round((p.saved / seconds) * 10) / 10 : 0,
    interrupted: !cut.stopped,
    outDir,
    metadataFile: runFile(outDir, METADATA_FILE),
    failuresFile: runFile(outDir, FAILURES_FILE),
    failuresByCode: {},
    ...(cut.stopped ? { stopped: cut.stopped } : {}),
    ...(cut.pagesFailed ? { pagesFailed: cut.pagesFailed } : {}),
    shards: { total: p.shards, done: p.shardsDone, failed: p.shardsFailed },
  };
}

/** A run file's path in a folder, or its s3:// URL. */
function runFile(out: string, name: string): string {
  return /^s3:\/\//i.test(out) ? `${out}/${name}` : path.join(out, name);
}

export type { ShardEvent };
