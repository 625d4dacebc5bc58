import { EventEmitter, setMaxListeners } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BasicCrawler, Configuration, LocalEventManager, RequestQueue, RetryRequestError, log as crawleeLog, LogLevel } from '@crawlee/basic';
import type { RequestSchema } from '@crawlee/types';
import pLimit from 'p-limit';
import { DownloadError, toDownloadError, toPluginError, type ReasonCode } from '../errors.ts';
import { createHttpClient, type HttpClient } from '../http/client.ts';
import { redact, Secrets } from '../http/credentials.ts';
import { KeyedLimiter } from '../http/limits.ts';
import { createStorageClient, SqliteRequestQueueClient } from '../storage/crawlee-client.ts';
import { MetadataLog } from '../storage/metadata.ts';
import { RunLock } from '../storage/lock.ts';
import { checkWritableDir, describeCode, diskFullCode, type DiskStop } from '../storage/disk.ts';
import { META_INGESTED, META_OPEN, RunStore, type AddStats, type Item } from '../storage/state.ts';
import { Cancelled, downloadItem, fetchPage, NameClaims, parseUrl, withCredentials, type Page, type DownloadContext, type DownloadSettings, type ImageRecord } from './download.ts';

export interface EngineOptions extends DownloadSettings {
  /** Downloads in flight at once. */
  concurrency: number;
  /** Downloads in flight at once to one host. */
  perHost: number;
  connectTimeoutMs: number;
  stallTimeoutMs: number;
}

export const DEFAULTS: EngineOptions = {
  concurrency: 64,
  perHost: 64,
  retries: 4,
  retryDelayMs: 500,
  maxRetryAfterMs: 120_000,
  timeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  stallTimeoutMs: 20_000,
  maxBytes: 100 * 1024 * 1024,
  maxRedirects: 10,
  userAgent: 'imgdl/0.1 (+https://www.npmjs.com/package/imgdl)',
  blockPrivateNetwork: false,
};

/** One image to add to a run. */
export interface ItemInput {
  url: string;
  /** The file name to use (made safe by the core); default: from the response and URL. */
  name?: string;
  /** Metadata stored with the image's record. */
  metadata?: unknown;
}

export interface Summary {
  run: string;
  downloaded: number;
  skipped: number;
  failed: number;
  pending: number;
  bytes: number;
  seconds: number;
  imagesPerSecond: number;
  interrupted: boolean;
  outDir: string;
  metadataFile: string;
  failuresFile: string;
  failuresByCode: Partial<Record<ReasonCode, number>>;
  /** With --retry-failed: the earlier failures that were tried again, by reason code. */
  retried?: Partial<Record<ReasonCode, number>>;
  /**
   * Set when the run stopped because nothing more could be written (disk full, quota, read-only): the images not
   * written stay pending, and running the same command again once there is room continues.
   */
  stopped?: DiskStop;
  /** Plugin runs: pages found but not visited, past --max-pages or --max-depth. */
  pagesNotVisited?: number;
}

/** A page to visit. */
export interface PageInput {
  url: string;
  label: string;
  userData?: Record<string, unknown>;
  uniqueKey?: string;
}

export interface Progress {
  total: number;
  done: number;
  failed: number;
  skipped: number;
  downloaded: number;
  bytes: number;
  retries: number;
  elapsedMs: number;
  ingesting: boolean;
}

export interface EngineEvents {
  saved: [record: ImageRecord];
  failed: [failure: { url: string; code: ReasonCode; status: number | null; message: string }];
  retry: [info: { url: string; attempt: number; code: ReasonCode; status: number | undefined }];
}

/** A handler for requests with a given label (site plugins add theirs). */
export type LabelHandler = (request: { url: string; userData: Record<string, unknown>; label: string; depth: number }, engine: Engine) => Promise<void>;

/** The userData key holding a page's depth: 0 for a start page, one more for each link followed from there. */
export const DEPTH_KEY = '__depth';

export interface RunSpec {
  /** Folder holding the run's state (storage/runs/NAME). */
  stateDir: string;
  outDir: string;
  options: EngineOptions;
  /** Images to add (read lazily; a big list streams in while downloads run). */
  items?: AsyncIterable<ItemInput> | Iterable<ItemInput>;
  /** Crawlee requests to start with (plugins' start pages). */
  requests?: PageInput[];
  handlers?: Record<string, LabelHandler>;
  /** Put the images that failed in an earlier run of this state back in the queue. */
  retryFailed?: boolean;
  /** Forget the run's state and start over (done once the run's lock is held, never under a live run). */
  fresh?: boolean;
  /**
   * What identifies `items` (e.g. the lists' sizes and times): once all items were read, it is committed with the
   * last batch, and a later run with the same key does not read them again. Without it, items are always read
   * (re-adding known URLs changes nothing).
   */
  ingestKey?: string;
  /** The run's name, shown to another process that finds the output folder in use. */
  name?: string;
  /** Most pages visited in the run (start pages included); pages found beyond it are not visited. */
  maxPages?: number;
  /** Most links followed from a start page (0: start pages only); deeper pages are not visited. */
  maxDepth?: number;
  signal?: AbortSignal;
  http?: HttpClient;
}

const SHARD = 256;
const ITEMS_LABEL = '__items';

export const METADATA_FILE = 'metadata.jsonl';
/** The output folder's lock: one run at a time writes into a folder. */
export const FOLDER_LOCK = '.imgdl-lock';
export const FAILURES_FILE = 'failures.jsonl';

/** Meta key set once a run's store holds a URL whose password was redacted (`user:***@`). */
const CREDENTIALS_META = 'credentials';

/**
 * True when the run's store holds URLs that had a password: their passwords were never stored, so a resume must
 * read the lists (and URLs) again, which gives them back (Engine.addItems keeps them in memory), before those
 * images can be fetched; otherwise they fail with `credentials_missing`.
 */
export function hasCredentialedUrls(store: Pick<RunStore, 'getMeta'>): boolean {
  return store.getMeta(CREDENTIALS_META) === '1';
}

/**
 * The download engine: a Crawlee BasicCrawler over a durable request queue. Image URLs are grouped in shards
 * (one Crawlee request per 256 images, so Crawlee's per-request cost is paid per shard) while each image's
 * outcome is recorded on its own in the run store; plugin pages are Crawlee requests of their own.
 */
export class Engine extends EventEmitter<EngineEvents> {
  readonly store: RunStore;
  readonly spec: RunSpec;
  private readonly lock: RunLock;
  private readonly folderLock: RunLock;
  /** Why the run stopped early, when the disk (or the state's disk) could take no more. */
  private stopped: DiskStop | undefined;
  /** Every input was read and added (or had been, by an earlier run). */
  private inputsRead = false;
  /** A bad input found while reading the lists (a binary file on stdin): the run stops and this is thrown. */
  private inputError: Error | undefined;
  private readonly metadata: MetadataLog;
  private readonly stop = new AbortController();
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly hosts: KeyedLimiter;
  private readonly http: HttpClient;
  private readonly tmpDir: string;
  private queue!: RequestQueue;
  private queueClient!: SqliteRequestQueueClient;
  /** Images being downloaded now; a sweep shard never starts one twice. */
  private readonly inFlight = new Set<number>();
  private crawler!: BasicCrawler;
  private readonly counters = { downloaded: 0, bytes: 0, retries: 0, skipped: 0, done: 0, failed: 0, total: 0 };
  private ingesting = false;
  private started = 0;
  private existing = new Set<string>();
  /** Passwords of the URLs added in this process: in memory only, stored URLs carry `user:***@` instead. */
  private readonly secrets = new Secrets();

  private constructor(spec: RunSpec, store: RunStore, lock: RunLock, folderLock: RunLock) {
    super();
    this.spec = spec;
    this.store = store;
    this.lock = lock;
    this.folderLock = folderLock;
    this.metadata = new MetadataLog(path.join(spec.outDir, METADATA_FILE), store, (error, file) => this.stopIfDiskFull(error, file));
    this.limit = pLimit(spec.options.concurrency);
    this.hosts = new KeyedLimiter(spec.options.perHost);
    this.http = spec.http ?? createHttpClient({
      connectionsPerHost: spec.options.perHost,
      connectTimeoutMs: spec.options.connectTimeoutMs,
      stallTimeoutMs: spec.options.stallTimeoutMs,
      blockPrivateNetwork: spec.options.blockPrivateNetwork,
    });
    this.tmpDir = path.join(spec.outDir, '.imgdl-tmp');
    // Every in-flight download listens to the run's stop signal.
    setMaxListeners(0, this.stop.signal);
    spec.signal?.addEventListener('abort', () => this.stop.abort(spec.signal!.reason), { once: true });
  }

  /**
   * Opens a run without starting it: checks that the output and state folders can be written (before any network
   * work), takes the run's lock and then the output folder's (another run writing there is refused with who holds
   * it), forgets the state if asked (only once the lock is held), and opens the store.
   */
  static async open(spec: RunSpec): Promise<Engine> {
    checkWritableDir(spec.outDir, 'the output folder');
    checkWritableDir(spec.stateDir, 'the run state folder');
    const name = spec.name ?? path.basename(spec.stateDir);
    const lock = await RunLock.take(spec.stateDir, name);
    let folder: RunLock | undefined;
    let store: RunStore;
    try {
      folder = await RunLock.takeFile(path.join(spec.outDir, FOLDER_LOCK), {
        run: name,
        busy: (holder) =>
          `The folder ${spec.outDir} is being written by another imgdl run (process ${holder.pid}${holder.run ? `, run ${holder.run}` : ''}); ` +
          'wait for it to end, or give another --out.',
      });
      if (spec.fresh) await forgetState(spec.stateDir);
      store = await RunStore.open(spec.stateDir);
    } catch (error) {
      folder?.release();
      lock.release();
      throw error;
    }
    return new Engine(spec, store, lock, folder);
  }

  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** Asks the run to stop: no new downloads start, in-flight ones are abandoned, state is kept. */
  abort(reason = 'stopped'): void {
    this.stop.abort(reason);
  }

  progress(): Progress {
    const c = this.counters;
    return { ...c, elapsedMs: Date.now() - this.started, ingesting: this.ingesting };
  }

  /** Calls `listener` with the run's counts after each image or page is settled (saved or failed). */
  onProgress(listener: (progress: Progress) => void): void {
    const report = () => listener(this.progress());
    this.on('saved', report);
    this.on('failed', report);
  }

  /** Runs until every image and page is handled or the run is stopped. */
  async run(): Promise<Summary> {
    this.started = Date.now();
    const { spec } = this;
    try {
      // The output folder's lock is held: temporary files left in it are a crashed run's, never a live one's.
      await fs.promises.rm(this.tmpDir, { recursive: true, force: true });
      await fs.promises.mkdir(this.tmpDir, { recursive: true });
      await this.recover();
      if (spec.retryFailed) {
        for (const f of this.store.failures()) this.retried[f.code] = (this.retried[f.code] ?? 0) + 1;
        this.store.retryFailed();
      }
      const before = this.store.counts();
      this.counters.skipped = before.done;
      this.counters.done = before.done;
      this.counters.failed = before.failed;
      this.counters.total = before.total;
      await this.startCrawler();
      const open = this.store.requestCounts();
      if (open.total === open.handled) this.sweep();
      const ingest = this.ingest();
      await Promise.all([this.crawl(), ingest]);
      if (!this.signal.aborted && this.sweep()) await this.crawl();
    } catch (error) {
      // The state's disk filled up under Crawlee's queue or a transaction of ours: stop cleanly, keep what is kept.
      if (!this.stopIfDiskFull(error, this.spec.stateDir)) throw error;
    } finally {
      await this.finish();
    }
    if (this.inputError) throw this.inputError;
    return this.summary();
  }

  /**
   * When `error` says the disk is full (or the quota used up, or the file system read-only), stops the run: no
   * new downloads, images not written stay pending, and the summary says what happened and where. True if so.
   */
  private stopIfDiskFull(error: unknown, where: string): boolean {
    const code = diskFullCode(error);
    if (!code) return false;
    if (!this.stopped) {
      this.stopped = { code, path: where, message: `${describeCode(code)} (${code}) writing ${where}` };
      this.stop.abort(new Error(this.stopped.message));
    }
    return true;
  }

  /**
   * Settles the folder against the store (see MetadataLog.reconcile): records the store lost in a crash, or that an
   * earlier run into this folder wrote, are adopted; images being renamed at a crash are settled; after an unclean
   * end, saved files are checked. So a lost tail of state costs at most a refetch, never a duplicate.
   */
  private async recover(): Promise<void> {
    const unclean = this.store.getMeta(META_OPEN) === '1';
    this.store.setMeta(META_OPEN, '1');
    await this.metadata.reconcile(this.spec.outDir, unclean);
    this.existing = await existingNames(this.spec.outDir);
  }

  private async startCrawler(): Promise<void> {
    // imgdl reports outcomes itself; Crawlee's own warnings (e.g. its Ctrl-C hint about `npm start`) would mislead.
    crawleeLog.setLevel(LogLevel.ERROR);
    this.queueClient = new SqliteRequestQueueClient(this.store, 'run');
    const config = new Configuration({
      storageClient: createStorageClient(this.store, new Map([['run', this.queueClient]])),
      persistStorage: false,
      purgeOnStart: false,
      // Crawlee's default memory limit (a quarter of RAM), given here so that it never asks `ps` for it.
      memoryMbytes: Math.round(os.totalmem() / 4 / 1024 / 1024),
    });
    config.useEventManager(ownProcessEvents(config));
    this.queue = await RequestQueue.open('run', { config });
    // Start pages are added on every run; those already seen (uniqueKey label:url) are ignored.
    if (this.spec.requests?.length) this.addPages(this.spec.requests, 0);
    const handlers = this.spec.handlers ?? {};
    this.crawler = new BasicCrawler(
      {
        requestQueue: this.queue,
        keepAlive: true,
        // Shards in progress at once: enough queued images to keep `concurrency` downloads busy across shard ends.
        minConcurrency: Math.max(4, Math.ceil((2 * this.spec.options.concurrency) / SHARD)),
        maxConcurrency: Math.max(8, Math.ceil((2 * this.spec.options.concurrency) / SHARD) + 4),
        maxRequestRetries: 2,
        requestHandlerTimeoutSecs: 7 * 24 * 3600,
        useSessionPool: false,
        statusMessageLoggingInterval: 24 * 3600,
        // Crawlee looks for new requests every 0.5 s when idle; images are added while the crawler runs, so a
        // short interval is what lets the first image start right away (a cheap SQLite read per tick).
        autoscaledPoolOptions: { maybeRunIntervalSecs: 0.02 },
        requestHandler: async ({ request }) => {
          if (request.label === ITEMS_LABEL) return this.downloadShard(request.userData as { from: number; to: number });
          const handler = request.label ? handlers[request.label] : undefined;
          if (!handler) {
            this.recordFailure(request.url, 'plugin_error', `No handler for label ${JSON.stringify(request.label)}`);
            return;
          }
          try {
            await handler({ url: request.url, userData: request.userData, label: request.label!, depth: Number(request.userData[DEPTH_KEY] ?? 0) }, this);
          } catch (error) {
            // Stopping: Crawlee puts the page back in the queue for the next run. RetryRequestError is retried
            // whatever the retry count, and errorHandler below undoes the count, so a page stopped any number
            // of times is never given up on.
            if (error instanceof Cancelled || this.signal.aborted) throw new RetryRequestError('stopped');
            // Fetches were already retried, and a plugin bug does not go away on retry: report and go on.
            const e = toPluginError(error);
            this.recordFailure(request.url, e.code, e.message, e.status ?? null, e.detail);
          }
        },
        errorHandler: ({ request }) => {
          if (this.signal.aborted) request.retryCount = Math.max(0, request.retryCount - 1);
        },
        // A page whose handler failed after Crawlee's retries goes to the failure report; the run goes on.
        failedRequestHandler: async ({ request }, error) => {
          const e = toPluginError(error);
          this.recordFailure(request.url, e.code, e.message, e.status ?? null, e.detail);
        },
      },
      config,
    );
  }

  /** Runs the crawler until the queue is drained (and ingestion is over) or the run is stopped. */
  private async crawl(): Promise<void> {
    const watcher = setInterval(() => {
      void (async () => {
        if (this.signal.aborted || (!this.ingesting && (await this.queue.isFinished()))) {
          clearInterval(watcher);
          await this.crawler.stop();
        }
      })();
    }, 50);
    try {
      await this.crawler.run();
    } finally {
      clearInterval(watcher);
    }
  }

  /**
   * Adds images to the run; each batch and its shard request are written in one transaction, and with `ingested`
   * (the inputs' key, on the last batch) so is the mark that every input was read.
   */
  async addItems(inputs: ItemInput[], ingested?: string): Promise<void> {
    let credentialed = false;
    const rows = inputs.map((input) => {
      try {
        const parsed = parseUrl(input.url.trim());
        // A #fragment never reaches the server: URLs differing only there are one image.
        parsed.hash = '';
        // Stored and deduped with the password as `***`; the password itself stays in memory (this.secrets).
        if (parsed.password !== '') credentialed = true;
        const url = this.secrets.add(parsed);
        return { url, name: input.name ?? null, info: input.metadata === undefined ? null : JSON.stringify(input.metadata) };
      } catch (error) {
        const e = error as DownloadError;
        return { url: redact(String(input.url)), failure: { code: e.code, message: e.message } };
      }
    });
    const stats: AddStats = { added: 0, failed: 0, revived: 0 };
    this.store.db.transaction(() => {
      if (credentialed && !hasCredentialedUrls(this.store)) this.store.setMeta(CREDENTIALS_META, '1');
      const added = this.store.addItems(rows, stats);
      if (added) this.addShards(added.from, added.to, 'items');
      if (ingested !== undefined) this.store.setMeta(META_INGESTED, ingested);
    });
    // Counted from what changed: counting the table after every batch made ingesting a big list O(N²).
    this.counters.total += stats.added + stats.revived;
    this.counters.failed += stats.failed;
    this.counters.skipped += stats.revived;
    this.counters.done += stats.revived;
    for (const row of rows) {
      if ('failure' in row && row.failure) this.emit('failed', { url: row.url, status: null, ...row.failure });
    }
  }

  /**
   * Adds pages found on a page of depth `depth - 1` to the queue (a plugin's "more pages to visit"). Already-seen
   * unique keys are ignored; pages past --max-depth or --max-pages are not visited (counted in the summary).
   */
  async enqueue(requests: PageInput[], depth = 1): Promise<void> {
    this.addPages(requests, depth);
  }

  /** Pages queued in this run's state (start pages and found pages, visited or not); -1 until first needed. */
  private pagesQueued = -1;
  /** Pages found but not visited because of --max-pages or --max-depth. */
  private pagesNotVisited = 0;

  private addPages(requests: PageInput[], depth: number): void {
    const { maxPages, maxDepth } = this.spec;
    if (maxDepth !== undefined && depth > maxDepth) {
      this.pagesNotVisited += requests.length;
      return;
    }
    const schemas = requests.map((r) => {
      const url = this.keep(r.url);
      return { url, uniqueKey: r.uniqueKey ?? `${r.label}:${url}`, method: 'GET' as const, userData: { ...(r.userData ?? {}), label: r.label, [DEPTH_KEY]: depth } };
    });
    if (maxPages === undefined) {
      this.queueClient.addNow(schemas);
      return;
    }
    if (this.pagesQueued < 0) this.pagesQueued = this.store.pageCount();
    const taken = schemas.filter((r) => {
      if (this.store.requestByKey(r.uniqueKey)) return false;
      if (this.pagesQueued >= maxPages) {
        this.pagesNotVisited++;
        return false;
      }
      this.pagesQueued++;
      return true;
    });
    this.queueClient.addNow(taken);
  }

  /** Fetches a page (HTML, JSON) with the run's HTTP settings, redirects and retries. Throws DownloadError. */
  async fetchPage(url: string): Promise<Page> {
    this.ctx ??= this.context();
    let parsed: URL;
    try {
      parsed = parseUrl(url);
    } catch {
      return fetchPage(url, this.ctx);
    }
    // A page URL given with a password (a plugin's start URL) is kept as `user:***@`; its password is in this.secrets.
    const { url: sent, ctx } = withCredentials(parsed, this.ctx);
    return fetchPage(sent.href, ctx);
  }

  /** A page URL as it is queued and stored: its password (kept in memory) replaced by `***`. */
  private keep(url: string): string {
    if (!url.includes('@')) return url;
    try {
      const parsed = new URL(url);
      return parsed.password === '' ? url : this.secrets.add(parsed);
    } catch {
      return redact(url);
    }
  }

  /** Records a page that could not be handled; it appears in the failure report like an image. */
  recordFailure(url: string, code: ReasonCode, message: string, status: number | null = null, stack?: string): void {
    url = redact(url);
    this.store.addItems([{ url, failure: { code, message, status, ...(stack === undefined ? {} : { stack }) } }]);
    this.recount();
    this.emit('failed', { url, code, status, message });
  }

  private addShards(from: number, to: number, prefix: string): void {
    const requests: RequestSchema[] = [];
    for (let a = from; a <= to; a += SHARD) {
      const b = Math.min(to, a + SHARD - 1);
      requests.push({ url: `imgdl://shard/${a}-${b}`, uniqueKey: `${prefix}:${a}-${b}`, method: 'GET', userData: { from: a, to: b, label: ITEMS_LABEL } });
    }
    this.queueClient.addNow(requests);
  }

  private recount(): void {
    const c = this.store.counts();
    this.counters.total = c.total;
    this.counters.failed = c.failed;
    // Inputs found saved already (by an earlier run, or an earlier run into the same folder) are skipped;
    // every image being saved right now is one of this run's downloads.
    this.counters.skipped = Math.max(0, c.done + c.saving - this.counters.downloaded);
    this.counters.done = this.counters.skipped + this.counters.downloaded;
  }

  private async ingest(): Promise<void> {
    const source = this.spec.items;
    if (!source) return;
    const key = this.spec.ingestKey;
    // Every input was read by an earlier run (the mark is committed with the last batch, so it never runs ahead of
    // the state), and none changed since: nothing to read. Unless some URLs had passwords, which are never stored:
    // reading the inputs again gives them back.
    if (key !== undefined && this.store.getMeta(META_INGESTED) === key && !hasCredentialedUrls(this.store)) {
      this.inputsRead = true;
      return;
    }
    this.ingesting = true;
    try {
      let batch: ItemInput[] = [];
      for await (const input of source) {
        if (this.signal.aborted) break;
        batch.push(input);
        if (batch.length >= 2000) {
          await this.addItems(batch);
          batch = [];
        }
      }
      if (!this.signal.aborted) {
        await this.addItems(batch, key);
        this.inputsRead = true;
      }
    } catch (error) {
      if (this.stopIfDiskFull(error, this.spec.stateDir)) return;
      // A list that cannot be read (binary data on stdin): the run stops, and run() throws this.
      this.inputError = error as Error;
      this.stop.abort(error);
    } finally {
      this.ingesting = false;
    }
  }

  /** Pending images that no open shard covers (a shard whose handler crashed): shards for them. True if any. */
  private sweep(): boolean {
    const pending = this.store.pendingIds();
    if (pending.length === 0) return false;
    const stamp = Date.now();
    this.store.db.transaction(() => {
      for (let i = 0; i < pending.length; i += SHARD) {
        const part = pending.slice(i, i + SHARD);
        this.addShards(part[0]!, part[part.length - 1]!, `sweep-${stamp}-${i}`);
      }
    });
    return true;
  }

  private async downloadShard(range: { from: number; to: number }): Promise<void> {
    const items = this.store.pendingInRange(range.from, range.to).filter((item) => !this.inFlight.has(item.id));
    for (const item of items) this.inFlight.add(item.id);
    await Promise.all(items.map((item) => this.limit(() => this.downloadOne(item).finally(() => this.inFlight.delete(item.id)))));
  }

  private context(): DownloadContext {
    return {
      settings: this.spec.options,
      http: this.http,
      hosts: this.hosts,
      store: this.store,
      outDir: this.spec.outDir,
      tmpDir: this.tmpDir,
      claims: new NameClaims(this.store, this.existing),
      signal: this.signal,
      secrets: this.secrets,
      onRetry: (url, error, attempt) => {
        this.counters.retries++;
        this.emit('retry', { url, attempt, code: error.code, status: error.status });
      },
    };
  }

  private ctx?: DownloadContext;

  private async downloadOne(item: Item): Promise<void> {
    if (this.signal.aborted) return;
    this.ctx ??= this.context();
    try {
      const record = await downloadItem(item, this.ctx);
      this.counters.downloaded++;
      this.counters.done++;
      this.counters.bytes += record.bytes;
      this.metadata.append(item.id, record);
      this.emit('saved', record);
    } catch (error) {
      if (error instanceof Cancelled) return;
      // Nothing more can be written: the image stays pending for the run that continues once there is room.
      if (this.stopIfDiskFull(error, diskFullCode((error as Error).cause) === 'SQLITE_FULL' ? this.spec.stateDir : this.spec.outDir)) return;
      // Anything but a DownloadError is a bug (`internal`, with its stack).
      const e = toDownloadError(error);
      this.store.markFailed(item.id, { code: e.code, status: e.status ?? null, message: e.message, stack: e.detail });
      this.counters.failed++;
      this.emit('failed', { url: item.url, code: e.code, status: e.status ?? null, message: e.message });
    }
  }

  private async finish(): Promise<void> {
    let failure: unknown;
    try {
      await this.crawler?.teardown().catch(() => {});
      await this.metadata.close();
      await this.writeFailures().catch((error: unknown) => {
        if (!this.stopIfDiskFull(error, path.join(this.spec.outDir, FAILURES_FILE))) throw error;
      });
      await fs.promises.rm(this.tmpDir, { recursive: true, force: true }).catch(() => {});
      await this.http.close().catch(() => {});
      this.hosts.close();
    } catch (error) {
      failure = error;
    }
    try {
      this.finalCounts = this.store.counts();
      // A clean end: the next run need not check every saved file.
      this.store.setMeta(META_OPEN, '0');
    } catch (error) {
      if (!this.stopIfDiskFull(error, this.spec.stateDir)) failure ??= error;
    }
    try {
      this.store.close();
    } finally {
      this.folderLock.release();
      this.lock.release();
    }
    if (failure !== undefined) throw failure;
  }

  private finalCounts = { pending: 0, saving: 0, done: 0, failed: 0, total: 0 };

  private failuresByCode: Partial<Record<ReasonCode, number>> = {};
  /** With retryFailed: the failures that were put back in the queue, by code. */
  private readonly retried: Partial<Record<ReasonCode, number>> = {};

  private async writeFailures(): Promise<void> {
    const file = path.join(this.spec.outDir, FAILURES_FILE);
    const failures = this.store.failures();
    for (const f of failures) this.failuresByCode[f.code] = (this.failuresByCode[f.code] ?? 0) + 1;
    if (failures.length === 0) {
      await fs.promises.rm(file, { force: true });
      return;
    }
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.promises.writeFile(tmp, failures.map((f) => JSON.stringify(f)).join('\n') + '\n');
    await fs.promises.rename(tmp, file);
  }

  private summary(): Summary {
    const seconds = (Date.now() - this.started) / 1000;
    return {
      run: path.basename(this.spec.stateDir),
      downloaded: this.counters.downloaded,
      skipped: Math.max(0, this.finalCounts.done - this.counters.downloaded),
      failed: this.finalCounts.failed,
      pending: this.finalCounts.pending,
      bytes: this.counters.bytes,
      seconds: Math.round(seconds * 1000) / 1000,
      imagesPerSecond: seconds > 0 ? Math.round((this.counters.downloaded / seconds) * 10) / 10 : 0,
      interrupted: this.signal.aborted && !this.stopped && !this.inputError,
      outDir: this.spec.outDir,
      metadataFile: path.join(this.spec.outDir, METADATA_FILE),
      failuresFile: path.join(this.spec.outDir, FAILURES_FILE),
      failuresByCode: this.failuresByCode,
      ...(this.spec.retryFailed ? { retried: this.retried } : {}),
      ...(this.stopped ? { stopped: { ...this.stopped, ...(this.spec.items && !this.inputsRead ? { unread: true } : {}) } } : {}),
      ...(this.pagesNotVisited > 0 ? { pagesNotVisited: this.pagesNotVisited } : {}),
    };
  }
}

/**
 * Crawlee's system-info events measure memory by spawning `ps` for the whole process tree every second: a
 * child process per second, and a failed run where `ps` is missing (slim containers). imgdl has no child
 * processes, so its own RSS is the whole answer.
 */
function ownProcessEvents(config: Configuration): LocalEventManager {
  const events = new LocalEventManager(config);
  // `getMemoryInfo` is private in Crawlee's typings; replacing it is the least intrusive way in.
  (events as unknown as { getMemoryInfo: () => Promise<unknown> }).getMemoryInfo = async () => {
    const totalBytes = os.totalmem();
    const freeBytes = os.freemem();
    return { totalBytes, freeBytes, usedBytes: totalBytes - freeBytes, mainProcessBytes: process.memoryUsage.rss(), childProcessesBytes: 0 };
  };
  return events;
}

/** Removes a run's state (its lock, held by the caller, stays). */
async function forgetState(dir: string): Promise<void> {
  for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
    if (name !== 'lock') await fs.promises.rm(path.join(dir, name), { recursive: true, force: true });
  }
}

async function existingNames(dir: string): Promise<Set<string>> {
  try {
    return new Set((await fs.promises.readdir(dir)).map((n) => n.toLowerCase()));
  } catch {
    return new Set();
  }
}
