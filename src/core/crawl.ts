import os from 'node:os';
import { BasicCrawler, Configuration, EventManager, Log, LogLevel, RequestQueue, RetryRequestError } from '@crawlee/basic';
import type { RequestSchema } from '@crawlee/types';
import { createStorageClient, SqliteRequestQueueClient } from '../storage/crawlee-client.ts';
import type { RunStore } from '../storage/state.ts';
import { Cancelled } from './download.ts';
import { DEPTH_KEY, type PageRequest } from './types.ts';

/** Images per shard: one Crawlee request stands for up to this many images (Crawlee's per-request cost paid once). */
export const SHARD = 256;
const SHARD_LABEL = '__items';
const QUEUE = 'run';

export interface CrawlHooks {
  /** Downloads the pending images of ids from..to. */
  shard(range: { from: number; to: number }): Promise<void>;
  /** Handles a plugin page; throws Cancelled (or anything, once the run is stopping) to leave it queued. */
  page(request: PageRequest): Promise<void>;
  /** A page Crawlee gave up on (its handler kept throwing). */
  pageGaveUp(request: PageRequest, error: Error): void;
  /** True while inputs are still being read (the queue may be empty now and not later). */
  ingesting(): boolean;
  signal: AbortSignal;
}

/**
 * Crawlee's part of a run: a BasicCrawler over the run store's durable request queue. The queue holds shards of
 * images (one request per SHARD images, added with the images in one transaction) and plugin pages (one request
 * each, key `label:url`). Crawlee's own state handling is bypassed where it is slow or unsafe (see
 * docs/architecture.md): its storage (ours is SQLite), its system-info polling, its global log level.
 */
export class Crawl {
  readonly queueClient: SqliteRequestQueueClient;
  private queue!: RequestQueue;
  private crawler!: BasicCrawler;

  constructor(
    private readonly store: RunStore,
    private readonly concurrency: number,
    private readonly hooks: CrawlHooks,
    /** The run has plugin pages: each page holds a crawler slot while it is fetched and handled. */
    private readonly pages: boolean,
  ) {
    this.queueClient = new SqliteRequestQueueClient(store, QUEUE);
  }

  async start(): Promise<void> {
    const config = new Configuration({
      storageClient: createStorageClient(this.store, new Map([[QUEUE, this.queueClient]])),
      persistStorage: false,
      purgeOnStart: false,
      // Crawlee's default memory limit (a quarter of RAM), given here so that it never asks `ps` for it.
      memoryMbytes: Math.round(os.totalmem() / 4 / 1024 / 1024),
    });
    config.useEventManager(new QuietEvents(config));
    this.queue = await RequestQueue.open(QUEUE, { config });
    shrinkSeenCache(this.queue);
    const shardsAtOnce = Math.ceil((2 * this.concurrency) / SHARD);
    // Shards in progress at once: enough queued images to keep `concurrency` downloads busy across shard ends. A
    // plugin run also needs a slot per page in flight, `concurrency` of them from the first second: Crawlee's
    // autoscaled pool would start at its minimum and grow 5% per 10 s (4-6 pages at once on a slow site).
    const slots = this.pages ? this.concurrency + shardsAtOnce + 4 : shardsAtOnce + 4;
    const { hooks } = this;
    this.crawler = new BasicCrawler(
      {
        requestQueue: this.queue,
        keepAlive: true,
        // imgdl reports outcomes itself; Crawlee's own warnings (e.g. its Ctrl-C hint about `npm start`) would
        // mislead. This crawler's log only: the host process's Crawlee log level is left alone.
        log: new Log({ level: LogLevel.ERROR, prefix: 'imgdl' }),
        minConcurrency: this.pages ? slots : Math.max(4, shardsAtOnce),
        maxConcurrency: Math.max(8, slots),
        maxRequestRetries: 2,
        requestHandlerTimeoutSecs: 7 * 24 * 3600,
        useSessionPool: false,
        statusMessageLoggingInterval: 24 * 3600,
        // Crawlee looks for new requests every 0.5 s when idle; images are added while the crawler runs, so a
        // short interval is what lets the first image start right away (a cheap SQLite read per tick).
        autoscaledPoolOptions: { maybeRunIntervalSecs: 0.02 },
        requestHandler: async ({ request }) => {
          if (request.label === SHARD_LABEL) return hooks.shard(request.userData as { from: number; to: number });
          try {
            await hooks.page(pageRequest(request));
          } catch (error) {
            // Stopping: Crawlee puts the page back in the queue for the next run. RetryRequestError is retried
            // whatever the retry count, and errorHandler below undoes the count, so a page stopped any number of
            // times is never given up on.
            if (error instanceof Cancelled || hooks.signal.aborted) throw new RetryRequestError('stopped');
            throw error;
          }
        },
        errorHandler: ({ request }) => {
          if (hooks.signal.aborted) request.retryCount = Math.max(0, request.retryCount - 1);
        },
        failedRequestHandler: async ({ request }, error) => hooks.pageGaveUp(pageRequest(request), error),
      },
      config,
    );
  }

  /** Runs the crawler until the queue is drained (and inputs are all read) or the run is stopped. */
  async run(): Promise<void> {
    const watcher = setInterval(() => {
      void (async () => {
        if (this.hooks.signal.aborted || (!this.hooks.ingesting() && (await this.queue.isFinished()))) {
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
   * Queues shards for image ids from..to (in the caller's transaction, with the images); `first` puts them at the
   * head of the queue (images a page found start before the pages queued earlier).
   */
  addShards(from: number, to: number, prefix = 'items', first = false): void {
    const requests: RequestSchema[] = [];
    for (let a = from; a <= to; a += SHARD) {
      const b = Math.min(to, a + SHARD - 1);
      requests.push({ url: `imgdl://shard/${a}-${b}`, uniqueKey: `${prefix}:${a}-${b}`, method: 'GET', userData: { from: a, to: b, label: SHARD_LABEL } });
    }
    this.queueClient.addNow(requests, first);
  }

  /** Pending images that no open shard covers (a shard whose handler crashed): shards for them. True if any. */
  sweep(): boolean {
    const pending = this.store.pendingIds();
    if (pending.length === 0) return false;
    const stamp = Date.now();
    this.store.transaction(() => {
      for (let i = 0; i < pending.length; i += SHARD) {
        const part = pending.slice(i, i + SHARD);
        this.addShards(part[0]!, part[part.length - 1]!, `sweep-${stamp}-${i}`);
      }
    });
    return true;
  }

  /** True when every request in the queue was handled (a resumed run whose shards are done may still hold images). */
  drained(): boolean {
    const { total, handled } = this.store.requestCounts();
    return total === handled;
  }

  async teardown(): Promise<void> {
    await this.crawler?.teardown().catch(() => {});
  }
}

function pageRequest(request: { url: string; uniqueKey: string; label?: string; userData: Record<string, unknown> }): PageRequest {
  return { url: request.url, uniqueKey: request.uniqueKey, label: request.label ?? '', userData: request.userData, depth: Number(request.userData[DEPTH_KEY] ?? 0) };
}

/**
 * Crawlee's events without its system-info polling: LocalEventManager measures memory by spawning `ps` for the
 * whole process tree every second (a child process per second, and a failed run where `ps` is missing). imgdl's
 * memory is bounded by design (streamed bodies, shards), so the autoscaler gets no memory or CPU figures and never
 * throttles on them; the concurrency is the one the user set.
 */
class QuietEvents extends EventManager {}

/**
 * Crawlee's queue keeps a "seen" cache of 1,000,000 slots per queue (two arrays: 16 MB of heap allocated at open, a
 * third of a small run's live heap), only to skip asking its storage whether a request was added before. Our queue
 * is the run store (crawlee-client.ts): shards are added once by their own code, pages are deduplicated by the store
 * in the same transaction. So the cache is cut to a few thousand slots; when Crawlee's internals differ (another
 * version), it is left alone.
 */
function shrinkSeenCache(queue: RequestQueue, slots = 4096): void {
  const cache = (queue as unknown as { requestSeenCache?: { size?: unknown; clear?: unknown } }).requestSeenCache;
  if (cache && typeof cache.size === 'number' && typeof cache.clear === 'function') {
    cache.size = slots;
    (cache.clear as () => void)();
  }
}
