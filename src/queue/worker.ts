// A worker of distributed runs: takes shard jobs of any run from the BullMQ queue and downloads each with the local
// engine, as a small run of its own in the run's output folder (<out>/.imgdl-shards/<n>/: its state, records,
// failures, lock and temporary files), saving the images into <out> itself beside every other shard's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { UsageError } from '../errors.ts';
import { Engine, FAILURES_FILE, METADATA_FILE, type EngineOptions, type ItemInput, type Summary } from '../core/engine.ts';
import { safeRunName, storageDir } from '../core/runs.ts';
import type { S3Target } from '../output/s3-target.ts';
import type { HttpClientKind } from '../http/client.ts';
import { integer, resolveOptions, type DownloadOptions } from '../options.ts';
import {
  claimShard, connect, DEFAULT_LOCK_MS, HEARTBEAT_MS, keys, MAX_STALLS, openEntry, parseRedisUrl, PREFIX, QUEUE_NAME, redisOptions, SHARD_ATTEMPTS, SHARDS_DIR,
  workerName, WORKER_TTL_MS, type LiveShard, type ShardResult,
} from './redis.ts';
import { RedisHostLimiter } from './limiter.ts';
import { addCookieLines } from '../http/headers.ts';

/** What a shard job carries: its run, its number, and its URLs inline (a string, or an item with name/metadata). */
export interface ShardJob {
  run: string;
  shard: number;
  items: Array<string | ItemInput>;
}

export interface WorkerOptions {
  /** The Redis holding the queue: `redis://host:6379/0`. */
  queue: string;
  /** Downloads in flight at once in this worker. @default 64 */
  concurrency?: number | string;
  /** Leave once no shard of any run is waiting, delayed or active, after `idleGraceMs`. @default false */
  exitWhenIdle?: boolean;
  /** How long the hold on a shard lasts without renewal, in seconds (BullMQ lockDuration; also the stalled check's
   * interval): a dead worker's shard is taken again after one to two of these. @default 30 */
  lockDuration?: number | string;
  /** With `exitWhenIdle`: how long the queue must stay idle, in milliseconds. @default 3000 */
  idleGraceMs?: number;
  /** Stops the worker: the shard in hand is left as it is (what is saved stays saved) and goes back to the queue. */
  signal?: AbortSignal;
  /** The HTTP client kind (see get()). */
  http?: HttpClientKind;
  /**
   * Where the state of shards of s3:// runs is kept while this worker works on them (workers share no folder then:
   * each shard's records go to the bucket). @default ./storage
   */
  storage?: string;
  /** Called when a shard starts, ends, or is handed back. */
  onShard?: (event: ShardEvent) => void;
}

export type ShardEvent =
  | { type: 'start'; run: string; shard: number; urls: number }
  | { type: 'done'; run: string; shard: number; result: ShardResult; summary: Summary }
  | { type: 'handed-back'; run: string; shard: number; reason: string }
  | { type: 'error'; run: string; shard: number; message: string };

/** A running worker. */
export interface QueueWorker {
  /** `host:pid` (with a number when one process runs several). */
  readonly name: string;
  /** Resolves when the worker has stopped (closed, its signal aborted, or idle with `exitWhenIdle`). */
  readonly done: Promise<void>;
  /** Stops taking shards; the shard in hand is handed back to the queue, then the worker closes. */
  close(): Promise<void>;
  /**
   * Why the worker stopped by itself, if it did: it could not write to a run's s3:// output (the message says why);
   * the shard it had taken went back to the queue.
   */
  readonly stoppedBecause: string | undefined;
}

let workers = 0;

/**
 * Starts a worker on the queue at `options.queue`: it takes shards of any run there (one at a time), downloads each
 * with the engine (validation, safe names, records, retries, per-host limits shared with every other worker through
 * Redis) into the run's output folder, and records the shard's result for the run. A shard whose worker dies is
 * taken again by another once its lock lapses; that worker skips what is already saved. Throws a UsageError when
 * Redis cannot be reached.
 *
 * @example
 * ```ts
 * import { startWorker } from 'imgdl';
 * const worker = await startWorker({ queue: 'redis://10.0.0.5:6379/0', concurrency: 32 });
 * process.on('SIGTERM', () => void worker.close());
 * await worker.done;
 * ```
 */
export async function startWorker(options: WorkerOptions): Promise<QueueWorker> {
  if (typeof options !== 'object' || options === null) throw new UsageError('Expected options to be an object');
  const url = parseRedisUrl(options.queue);
  const concurrency = options.concurrency === undefined ? undefined : integer('concurrency', options.concurrency, 1);
  const lockMs = lockDurationMs(options.lockDuration);
  const redis = await connect(url, 'imgdl-worker');
  const { Worker: BullWorker, DelayedError } = await import('bullmq');
  const { Redis } = await import('ioredis');
  const n = ++workers;
  const name = workerName(os.hostname(), process.pid) + (n > 1 ? `/${n}` : '');
  const stopping = new AbortController();
  let current: { job: Job<ShardJob>; abort: AbortController } | undefined;
  const limiters = new Map<string, RedisHostLimiter>();
  let stoppedBecause: string | undefined;

  const processor = async (job: Job<ShardJob>, token?: string): Promise<ShardResult> => {
    const { run, shard } = job.data;
    const handBack = async (reason: string): Promise<never> => {
      options.onShard?.({ type: 'handed-back', run, shard, reason });
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    };
    if (stopping.signal.aborted) return handBack('the worker is stopping');
    const meta = await redis.hgetall(keys.run(run));
    if (!meta['outDir']) throw new Error(`The run ${run} is not known in this Redis (its shard ${shard} is an orphan)`);
    // A shard delivered again once done (BullMQ delivers at least once; a worker that kept it through a Redis outage
    // finished it meanwhile): its result stands, and its folder, which the coordinator may be merging or have
    // removed, is not opened again.
    const doneResult = async () => {
      const done = await redis.hget(keys.done(run), String(shard));
      return done === null ? undefined : (JSON.parse(done) as ShardResult);
    };
    const already = await doneResult();
    if (already) return already;
    const entry = openEntry(shard, name);
    if (!(await claimShard(redis, run, entry))) {
      const result = await doneResult();
      if (result) return result;
      throw new Error(`Shard ${shard} of run ${run} came back while the run is being merged`);
    }
    const abort = new AbortController();
    current = { job, abort };
    try {
      const raw = JSON.parse(meta['options'] ?? '{}') as DownloadOptions;
      const engineOptions = resolveOptions(concurrency === undefined ? raw : { ...raw, concurrency, ...(raw.perHost === undefined ? { perHost: concurrency } : {}) });
      withExtras(engineOptions, meta['extra']);
      // Without --per-host or --rate the run has no host limit to share: each worker keeps its own (as a local run).
      const limiter = raw.perHost !== undefined || raw.rate !== undefined ? limiterFor(run, engineOptions, raw.perHost !== undefined) : undefined;
      options.onShard?.({ type: 'start', run, shard, urls: job.data.items.length });
      // --layout webdataset: the job's samples go into one tar shard of its own, numbered from the run's first.
      const tarShard = engineOptions.layout === 'webdataset' ? Number(meta['tarBase'] ?? 0) + shard : undefined;
      // An s3:// run: the shard's state and records are local to this worker (under its storage), its images and
      // records go to the bucket; a folder run's shard lives in the run's folder, which every worker reaches.
      const s3 = meta['s3'] ? { target: JSON.parse(meta['s3']) as S3Target, local: path.join(storageDir(options.storage), 'shards', safeRunName(run), String(shard)) } : undefined;
      let engine: Engine;
      try {
        const opened = await openShard(meta['outDir'], run, shard, job.data.items, engineOptions, abort.signal, options.http, limiter, lockMs, tarShard, s3, doneResult);
        // Another process finished the shard while this one waited for its folder.
        if (!(opened instanceof Engine)) return opened;
        engine = opened;
      } catch (error) {
        // This machine cannot write to the run's bucket (no credentials, access denied, the store unreachable from
        // here): the shard goes back for a worker that can, and this one stops rather than fail shard after shard.
        if (!s3 || !(error instanceof UsageError)) throw error;
        stoppedBecause ??= error.message;
        setImmediate(() => void close());
        return await handBack(`this worker cannot write to ${meta['outDir']}`);
      }
      const report = () => {
        const p = engine.progress();
        const live: LiveShard = { saved: p.downloaded + p.skipped, failed: p.failed, by: name, at: Date.now() };
        redis.hset(keys.live(run), String(shard), JSON.stringify(live)).catch(() => {});
      };
      const timer = setInterval(report, 2000);
      let summary: Summary;
      try {
        summary = await engine.run();
      } finally {
        clearInterval(timer);
      }
      if (stopping.signal.aborted || summary.interrupted) return await handBack('the worker is stopping');
      if (summary.stopped) throw new Error(`Shard ${shard} of run ${run} stopped: ${summary.stopped.message}`);
      if (summary.pending > 0) throw new Error(`Shard ${shard} of run ${run} left ${summary.pending} images pending`);
      const result: ShardResult = { saved: summary.downloaded + summary.skipped, failed: summary.failed, urls: job.data.items.length, by: name, at: Date.now() };
      // Idempotent: a shard run twice (BullMQ delivers at least once) records the same counts, read from its state.
      await redis.multi().hset(keys.done(run), String(shard), JSON.stringify(result)).hdel(keys.live(run), String(shard)).exec();
      // Its records are in the bucket: the local state has served.
      if (s3) await fs.promises.rm(s3.local, { recursive: true, force: true }).catch(() => {});
      options.onShard?.({ type: 'done', run, shard, result, summary });
      return result;
    } finally {
      current = undefined;
      // The folder is closed (the engine's run released it): the coordinator may merge it. Waits for Redis if it is away.
      await redis.hdel(keys.open(run), entry).catch(() => {});
    }
  };

  const limiterFor = (run: string, o: EngineOptions, perHostGiven: boolean): RedisHostLimiter => {
    let limiter = limiters.get(run);
    if (!limiter) {
      limiter = new RedisHostLimiter(redis, run, {
        local: o.perHost,
        shared: perHostGiven ? o.perHost : Infinity,
        rate: o.rate,
        holder: name,
        // A slot outlives any one attempt (which --timeout ends), so only a dead worker's slots ever lapse.
        leaseMs: o.timeoutMs + 5000,
      });
      limiters.set(run, limiter);
    }
    return limiter;
  };

  const connection = new Redis({ ...redisOptions(url), connectionName: 'imgdl-worker' });
  connection.on('error', () => {});
  const worker: Worker<ShardJob, ShardResult> = new BullWorker<ShardJob, ShardResult>(QUEUE_NAME, processor, {
    connection,
    prefix: PREFIX,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: MAX_STALLS,
    // How long a blocking wait for a shard lasts: also how long close() may wait for it.
    drainDelay: 1,
    // Without Redis a worker keeps its shard: its lock renewals fail, and the shard may go to another worker, which
    // then waits for this one's local hold (same host) or shares the idempotent result.
    autorun: false,
  });
  worker.on('error', () => {});
  worker.on('failed', (job, error) => {
    if (!job) return;
    const { run, shard } = job.data;
    options.onShard?.({ type: 'error', run, shard, message: error.message });
    if (job.attemptsMade >= (job.opts.attempts ?? 1)) redis.hset(keys.failed(run), String(shard), error.message.split('\n')[0]!).catch(() => {});
  });

  const heartbeat = async () => {
    const info = JSON.stringify({ name, host: os.hostname(), pid: process.pid, run: current?.job.data.run, shard: current?.job.data.shard, at: Date.now() });
    await redis.multi().zadd(keys.workers, Date.now(), name).set(keys.worker(name), info, 'PX', WORKER_TTL_MS).exec();
  };
  await heartbeat();
  const beating = setInterval(() => void heartbeat().catch(() => {}), HEARTBEAT_MS);

  let idleTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stopping.abort();
      clearInterval(beating);
      clearInterval(idleTimer);
      current?.abort.abort('stopping');
      await worker.close();
      for (const limiter of limiters.values()) await limiter.shutdown();
      await redis.multi().zrem(keys.workers, name).del(keys.worker(name)).exec().catch(() => {});
      redis.disconnect();
      connection.disconnect();
    })());
  options.signal?.addEventListener('abort', () => void close(), { once: true });

  if (options.exitWhenIdle) {
    const grace = options.idleGraceMs ?? 3000;
    let idleSince: number | undefined;
    idleTimer = setInterval(() => {
      void (async () => {
        if (current) return (idleSince = undefined);
        const counts = await queueCounts(redis);
        if (counts > 0) return (idleSince = undefined);
        idleSince ??= Date.now();
        if (Date.now() - idleSince >= grace) void close();
      })().catch(() => (idleSince = undefined));
    }, 500);
  }

  const running = worker.run().catch(() => {});
  const done = (async () => {
    await running;
    await close();
  })();
  return {
    name,
    done,
    close,
    get stoppedBecause() {
      return stoppedBecause;
    },
  };
}

/** Shards waiting, delayed (to be retried), prioritized or active, over every run in the queue, plus the runs still being cut. */
export async function queueCounts(redis: Redis): Promise<number> {
  const base = `${PREFIX}:${QUEUE_NAME}`;
  const [wait, paused, delayed, prioritized, active, cutting] = (await redis
    .multi()
    .llen(`${base}:wait`)
    .llen(`${base}:paused`)
    .zcard(`${base}:delayed`)
    .zcard(`${base}:prioritized`)
    .llen(`${base}:active`)
    // A run still being cut (a plugin's pages still being crawled) has shards to come.
    .zcount(keys.cutting, Date.now(), '+inf')
    .exec())!.map(([, n]) => Number(n));
  return wait! + paused! + delayed! + prioritized! + active! + cutting!;
}

/** What a plugin's run (run <plugin> --queue) adds to its options beyond what DownloadOptions say. */
export interface RunExtras {
  /** Its name template (--name, or the plugin's `nameTemplate`): each image carries where it was found. */
  nameTemplate?: string;
  /** Its `http.cookies`, sent with its images as in a local run. */
  cookies?: Record<string, string>;
}

/** A run's extras (JSON in its Redis hash, `extra`) applied to its resolved options. */
function withExtras(options: EngineOptions, extra: string | undefined): void {
  if (!extra) return;
  const { nameTemplate, cookies } = JSON.parse(extra) as RunExtras;
  if (nameTemplate !== undefined) options.nameTemplate = nameTemplate;
  if (cookies !== undefined) options.cookieJar = addCookieLines(options.cookieJar, cookies, 'http.cookies');
}

export function lockDurationMs(value: unknown): number {
  if (value === undefined) return DEFAULT_LOCK_MS;
  const n = typeof value === 'string' && /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 1) throw new UsageError(`Expected \`lockDuration\` to be a number of seconds ≥ 1, got ${JSON.stringify(value)}`);
  return Math.round(n * 1000);
}

/**
 * Opens a shard's local run. The shard's own lock keeps two processes of one machine off the same shard: a process
 * that still holds it (a worker that lost Redis, whose shard was handed to another) is waited for, since its images
 * are this shard's and will be skipped once it lets go, unless it finished the shard meanwhile (`done` says so): its
 * result is then returned, and the folder left alone.
 */
async function openShard(
  outDir: string, run: string, shard: number, items: ShardJob['items'], options: ReturnType<typeof resolveOptions>,
  signal: AbortSignal, httpKind: HttpClientKind | undefined, hosts: RedisHostLimiter | undefined, lockMs: number, tarShard: number | undefined,
  s3: { target: S3Target; local: string } | undefined, done: () => Promise<ShardResult | undefined>,
): Promise<Engine | ShardResult> {
  const shardDir = s3 ? s3.local : path.join(outDir, SHARDS_DIR, String(shard));
  for (;;) {
    try {
      return await Engine.open({
        stateDir: path.join(shardDir, 'state'),
        outDir: shardDir,
        // An s3:// run's shard uploads its images, and its records under .imgdl-shards/<n>/ (the coordinator merges them).
        ...(s3
          ? { s3: { target: s3.target, runFiles: { prefix: `${SHARDS_DIR}/${shard}/`, names: [METADATA_FILE, FAILURES_FILE] } }, report: false }
          : { filesDir: outDir }),
        name: `${run}#${shard}`,
        options,
        items: items.map((i) => (typeof i === 'string' ? { url: i } : i)),
        // The shard's URLs never change: once read into its state, a retaken shard does not read them again.
        ingestKey: 'shard',
        signal,
        httpKind,
        ...(hosts ? { hosts } : {}),
        ...(tarShard !== undefined ? { tarShard } : {}),
      });
    } catch (error) {
      if (!(error instanceof UsageError) || !/in use by process|being written by another/.test(error.message) || signal.aborted) throw error;
      await sleep(Math.min(1000, lockMs / 4), undefined, { signal }).catch(() => {});
      if (signal.aborted) throw error;
      const result = await done();
      if (result) return result;
    }
  }
}

export { SHARD_ATTEMPTS };
