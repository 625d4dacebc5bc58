// `run <plugin> --queue`: the plugin's pages are crawled here, by a local run whose images are not downloaded but
// cut into shard jobs as they are found (src/core RunSpec.forward), for every `imgdl worker` on the queue; this
// process works on shards too. Each image carries what a worker needs to save it as a local run would (its name,
// metadata, key, headers, where it was found), so workers never need the plugin's code.
import fs from 'node:fs';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { UsageError } from '../errors.ts';
import { DEFAULTS, Engine, FAILURES_FILE, METADATA_FILE, type EngineOptions, type FoundOn, type ItemInput, type Summary } from '../core/engine.ts';
import { markRunEnded, markRunStarted } from '../core/runs.ts';
import type { DownloadOptions } from '../options.ts';
import { downloadOptions, pluginRunSpec, type PluginRunPlan, type RunPluginOptions } from '../plugin/run.ts';
import type { AnyPlugin } from '../plugin/types.ts';
import type { Archive } from '../storage/archive.ts';
import type { Item } from '../storage/state.ts';
import { coordinate, firstTarShard, jsonLines, loadRecorded, queueJobSize, sampleKey, shardJob, type QueueSummary } from './coordinator.ts';
import { UrlSet } from '../storage/url-set.ts';
import { keys } from './redis.ts';
import type { RunExtras, ShardJob } from './worker.ts';

/** A shard with fewer than `jobSize` images is sent this long after its first image was found. */
export const CUT_AFTER_MS = 1000;

/** Where the coordinator's local run (pages only) keeps its own files: in its state folder, never in the output. */
export const PAGES_DIR = 'pages';
/** The URLs the output folder's earlier runs recorded, while the run is cut (a scratch file in its state folder). */
const EARLIER_FILE = 'queue-earlier.sqlite';

export async function runPluginQueued(p: AnyPlugin, plan: PluginRunPlan, opts: RunPluginOptions, archive: Archive | undefined): Promise<QueueSummary> {
  const jobSize = queueJobSize(opts.jobSize, plan.engineOptions);
  if (opts.fresh) throw new UsageError('`fresh` is not available with `queue` yet: give another --run name to start over');
  if (opts.retryFailed) throw new UsageError('`retryFailed` is not available with `queue` yet');
  if (opts.update) throw new UsageError('`update` is not available with `queue` yet');
  const options = JSON.stringify(workerOptions(p, opts, plan.engineOptions));
  const extra: RunExtras = {
    ...(plan.engineOptions.nameTemplate !== undefined ? { nameTemplate: plan.engineOptions.nameTemplate } : {}),
    ...(p.http?.cookies !== undefined ? { cookies: p.http.cookies } : {}),
  };
  const { run, outDir } = plan;
  const pagesDir = path.join(plan.stateDir, PAGES_DIR);
  const marked = { started: false };
  const summary = await coordinate(opts, run, outDir, async ({ redis, queue }) => {
    // Redis answers and the folder is this run's: `imgdl runs` may list it.
    markRunStarted(plan.stateDir, { name: run, kind: 'run', command: opts.command ?? ['run', p.name, '--queue', String(opts.queue)], outDir });
    marked.started = true;
    await redis
      .multi()
      .hset(keys.run(run), { outDir, options, extra: JSON.stringify(extra), shardSize: String(jobSize), kind: 'plugin' })
      .hsetnx(keys.run(run), 'createdAt', String(Date.now()))
      .hsetnx(keys.run(run), 'tarBase', String(firstTarShard(outDir)))
      .zadd(keys.runs, 'NX', Date.now(), run)
      .exec();
    const meta = await redis.hgetall(keys.run(run));
    const failuresFile = path.join(pagesDir, FAILURES_FILE);
    // Every page was crawled and every image is in a shard: only the waiting is left.
    if (meta['enqueued'] === '1') return { failuresFile, ...(JSON.parse(meta['local'] ?? '{}') as LocalCounts) };
    // Images an earlier run saved into this folder (its metadata.jsonl) are skipped, as a local run skips them (a
    // scratch set on disk: bounded memory whatever the folder holds).
    fs.mkdirSync(plan.stateDir, { recursive: true });
    const earlier = await UrlSet.create(path.join(plan.stateDir, EARLIER_FILE));
    await loadRecorded(earlier, path.join(outDir, METADATA_FILE));
    const cutter = new Cutter(redis, queue, run, jobSize, earlier, plan.engineOptions.layout === 'webdataset', {
      shards: Number(meta['shards'] ?? 0),
      cutTo: Number(meta['cutTo'] ?? 0),
      last: meta['lastCut'] ? (JSON.parse(meta['lastCut']) as LastCut) : undefined,
    });
    let local: Summary;
    try {
      const engine = await Engine.open({
        ...pluginRunSpec(p, plan, opts, archive, false),
        outDir: pagesDir,
        report: false,
        forward: (range, pending) => cutter.offer(range.to, pending, opts.signal),
      });
      local = await engine.run();
    } catch (error) {
      await cutter.finish(false).catch(() => {});
      earlier.close();
      throw error;
    }
    const complete = !local.interrupted && !local.stopped;
    try {
      await cutter.finish(complete);
    } finally {
      earlier.close();
    }
    const counts: LocalCounts = {
      // Images already in the --archive: recorded here as saved, never fetched.
      skipped: local.skipped,
      ...(local.pagesFailed ? { pagesFailed: local.pagesFailed } : {}),
      ...(local.pagesNotVisited ? { pagesNotVisited: local.pagesNotVisited } : {}),
    };
    if (complete) await redis.hset(keys.run(run), { enqueued: '1', local: JSON.stringify(counts) });
    return { interrupted: local.interrupted, ...(local.stopped ? { stopped: local.stopped } : {}), failuresFile, ...counts };
  }, true);
  if (archive && !summary.interrupted && summary.pending === 0) {
    // The keys of the images the workers saved go into the archive, as a local run adds them as it saves.
    let batch: string[] = [];
    for await (const r of jsonLines<{ key?: unknown }>(summary.metadataFile)) {
      if (typeof r.key === 'string') batch.push(r.key);
      if (batch.length >= 1000) {
        archive.add(batch);
        batch = [];
      }
    }
    archive.add(batch);
  }
  if (marked.started) markRunEnded(plan.stateDir, summary);
  return summary;
}

/**
 * The options the workers download with: the user's, with the plugin's defaults for what the user did not give
 * (--per-host, --rate, its headers and User-Agent), as a local run of the plugin resolves them.
 */
function workerOptions(p: AnyPlugin, opts: RunPluginOptions, resolved: EngineOptions): DownloadOptions {
  const { referer: _referer, ...given } = downloadOptions(opts);
  const o: DownloadOptions = { ...given };
  if (o.perHost === undefined && p.http?.perHost !== undefined) o.perHost = p.http.perHost;
  if (o.rate === undefined && p.http?.rate !== undefined) o.rate = p.http.rate;
  if (Object.keys(resolved.headers).length > 0) o.headers = { ...resolved.headers };
  else delete o.headers;
  if (resolved.userAgent !== DEFAULTS.userAgent) o.userAgent = resolved.userAgent;
  return o;
}

/** What the coordinator's local run (pages) adds to the whole run's summary. */
interface LocalCounts {
  skipped?: number;
  pagesFailed?: number;
  pagesNotVisited?: number;
}

/** The last shard cut (its number and id range), kept in the run's hash before its job is added. */
interface LastCut {
  shard: number;
  from: number;
  to: number;
}

/**
 * Cuts a run's images into shard jobs in the order of their ids in the local store: shard k holds the pending
 * images with ids in (cutTo of shard k-1, cutTo of shard k], `jobSize` of them, or fewer once the oldest has waited
 * CUT_AFTER_MS. Each cut is written to Redis (the shard count and the id it reaches) before its job is added, and
 * the last one is added again when a run continues: a job's id is the run and its number, so a coordinator killed
 * at any point and started again never adds an image twice nor loses one. Images past the last cut are read again
 * from the store (they stay pending there), by the next shard or the end-of-run sweep.
 */
class Cutter {
  /** Read from the store, not yet in a shard. */
  private buffer: Item[] = [];
  /** Every pending image with an id up to this is in a shard or in the buffer. */
  private readTo: number;
  /** The id the last shard reaches. */
  private cutTo: number;
  private shards: number;
  private chain: Promise<void> = Promise.resolve();
  /** Cuts written or being written. */
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private resumed = false;
  private error: unknown;
  /** The last shard an earlier process cut. */
  private readonly last: LastCut | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly queue: Queue<ShardJob>,
    private readonly run: string,
    private readonly jobSize: number,
    private readonly earlier: UrlSet,
    /** --layout webdataset: each image carries its sample key (its id here, as a local run names its samples). */
    private readonly keyed: boolean,
    state: { shards: number; cutTo: number; last: LastCut | undefined },
  ) {
    this.last = state.last;
    this.shards = state.shards;
    this.cutTo = state.cutTo;
    this.readTo = state.cutTo;
  }

  /** A local shard of images up to id `to` was added: its images join the next shards. */
  async offer(to: number, pending: (from: number, to: number) => Item[], signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted || this.error) return;
    if (!this.resumed) {
      this.resumed = true;
      // The last shard cut by an earlier process, in case it died between writing the cut and adding the job.
      const last = this.last;
      if (last) this.then(async () => this.readd(last, pending(last.from, last.to)));
    }
    if (to > this.readTo) {
      for (const item of pending(this.readTo + 1, to)) this.buffer.push(item);
      this.readTo = to;
    }
    while (this.buffer.length >= this.jobSize) this.cut(this.jobSize);
    if (this.buffer.length === 0) this.cutTo = Math.max(this.cutTo, this.readTo);
    else this.timer ??= setTimeout(() => this.cut(this.buffer.length), CUT_AFTER_MS);
    // Bounded: at most a few cuts wait for Redis.
    if (this.inFlight > 4) await this.chain;
  }

  /** The local run ended: what is left becomes the last shard (when it ended cleanly), once every cut is added. */
  async finish(complete: boolean): Promise<void> {
    clearTimeout(this.timer);
    if (complete && this.buffer.length > 0 && !this.error) this.cut(this.buffer.length);
    await this.chain;
    if (this.error) throw this.error;
  }

  private cut(n: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (n === 0) return;
    const taken = this.buffer.splice(0, n);
    const from = this.cutTo + 1;
    // The shard reaches the last image it takes; or, taking all that was read, everything read (ids in between
    // that are not pending were settled here: archived, failed).
    const to = this.buffer.length === 0 ? this.readTo : taken[taken.length - 1]!.id;
    this.cutTo = to;
    const items = this.items(taken);
    const skipped = taken.length - items.length;
    const shard = items.length > 0 ? this.shards++ : undefined;
    this.then(async () => {
      const multi = this.redis.multi().hset(keys.run(this.run), { cutTo: String(to) }).hincrby(keys.run(this.run), 'skipped', skipped);
      if (shard !== undefined) {
        multi.hset(keys.run(this.run), { shards: String(shard + 1), lastCut: JSON.stringify({ shard, from, to } satisfies LastCut) }).hincrby(keys.run(this.run), 'urls', items.length);
      }
      await multi.exec();
      if (shard !== undefined) await this.queue.addBulk([shardJob(this.run, shard, items)]);
    });
    if (this.buffer.length > 0) this.timer = setTimeout(() => this.cut(this.buffer.length), CUT_AFTER_MS);
  }

  private async readd(last: LastCut, pending: Item[]): Promise<void> {
    if (await this.redis.hexists(keys.done(this.run), String(last.shard))) return;
    const items = this.items(pending);
    if (items.length > 0) await this.queue.addBulk([shardJob(this.run, last.shard, items)]);
  }

  /** A shard's images as its job carries them (those an earlier run saved into the folder left out). */
  private items(taken: Item[]): ShardJob['items'] {
    const out: ShardJob['items'] = [];
    for (const item of taken) {
      if (this.earlier.isEarlier(item.url)) continue;
      out.push(asInput(item, this.keyed));
    }
    return out;
  }

  private then(op: () => Promise<void>): void {
    this.inFlight++;
    this.chain = this.chain
      .then(() => (this.error ? undefined : op()))
      .catch((error: unknown) => void (this.error ??= error))
      .finally(() => void this.inFlight--);
  }
}

/** An image of the store as a shard job carries it: its URL alone, or with what the plugin gave it. */
function asInput(item: Item, keyed: boolean): string | ItemInput {
  const input: ItemInput = { url: item.url };
  if (keyed && item.key === undefined) input.key = sampleKey(item.id);
  if (item.name !== null) input.name = item.name;
  if (item.info !== null) input.metadata = JSON.parse(item.info) as unknown;
  if (item.headers !== undefined) input.headers = JSON.parse(item.headers) as Record<string, string>;
  if (item.key !== undefined) input.key = item.key;
  if (item.found !== undefined) input.found = JSON.parse(item.found) as FoundOn;
  return Object.keys(input).length === 1 ? item.url : input;
}
