import os from 'node:os';
import { Configuration, EventManager, RequestQueue, type Request } from '@crawlee/core';
import type { RequestSchema } from '@crawlee/types';
import { createStorageClient, SqliteRequestQueueClient } from '../storage/crawlee-client.ts';
import type { RunStore } from '../storage/state.ts';
import { Cancelled } from './download.ts';
import { DEPTH_KEY, type PageRequest } from './types.ts';

/** Images per shard: one Crawlee request stands for up to this many images (Crawlee's per-request cost paid once). */
export const SHARD = 256;
const SHARD_LABEL = '__items';
const QUEUE = 'run';
/** Attempts at a page whose handler throws (a fetch failure is retried inside fetchPage first): 1 + this many. */
const PAGE_RETRIES = 2;
/** How often an idle crawl looks for requests again (images and pages are added while it runs). */
const IDLE_POLL_MS = 20;
/** A request is held for as long as its handler runs: shards can take hours. */
const LOCK_SECS = 7 * 24 * 3600;

export interface CrawlHooks {
  /** Downloads the pending images of ids from..to. */
  shard(range: { from: number; to: number }): Promise<void>;
  /** Handles a plugin page; throws Cancelled (or anything, once the run is stopping) to leave it queued. */
  page(request: PageRequest): Promise<void>;
  /** A page given up on (its handler kept throwing). */
  pageGaveUp(request: PageRequest, error: Error): void;
  /** True while inputs are still being read (the queue may be empty now and not later). */
  ingesting(): boolean;
  signal: AbortSignal;
}

/**
 * Crawlee's part of a run: its RequestQueue over the run store (crawlee-client.ts), drained by a loop of ours. The
 * queue holds shards of images (one request per SHARD images, added with the images in one transaction) and plugin
 * pages (one request each, key `label:url`). The loop keeps a fixed number of requests in hand from the first
 * second (a plugin run: one per connection, for pages; plus enough shards to keep every connection busy), marks each
 * handled or reclaims it, and retries a page whose handler throws as Crawlee's BasicCrawler would (2 more times, then
 * gives up on it). BasicCrawler is not used: it wraps every handler in an AsyncLocalStorage context (Crawlee's
 * timeouts and storage checks), and on Node 20 that turns on a promise hook for every promise of the process, ~8%
 * of the CPU of a run of small images; its autoscaled pool starts low and polls; and it listens for SIGINT itself.
 * See docs/architecture.md.
 */
export class Crawl {
  readonly queueClient: SqliteRequestQueueClient;
  private queue!: RequestQueue;
  private readonly slots: number;
  /** Handlers running now. */
  private active = 0;
  private stopping = false;
  /** Wakes the loop early: a handler ended, or the crawl is stopping. */
  private wake: (() => void) | undefined;

  constructor(
    private readonly store: RunStore,
    concurrency: number,
    private readonly hooks: CrawlHooks,
    /** The run has plugin pages: each page holds a slot while it is fetched and handled. */
    pages: boolean,
  ) {
    this.queueClient = new SqliteRequestQueueClient(store, QUEUE);
    // Shards in progress at once: enough queued images to keep `concurrency` downloads busy across shard ends. A
    // plugin run also needs a slot per page in flight, `concurrency` of them from the first second.
    const shardsAtOnce = Math.max(4, Math.ceil((2 * concurrency) / SHARD) + 4);
    this.slots = pages ? concurrency + shardsAtOnce : shardsAtOnce;
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
    this.queue.requestLockSecs = LOCK_SECS;
    shrinkSeenCache(this.queue);
  }

  /** Runs until the queue is drained (and inputs are all read) or the run is stopped; waits for its handlers. */
  async run(): Promise<void> {
    this.stopping = false;
    const onAbort = () => this.stop();
    this.hooks.signal.addEventListener('abort', onAbort, { once: true });
    const running = new Set<Promise<void>>();
    try {
      for (;;) {
        if (this.hooks.signal.aborted || this.stopping) break;
        if (this.active < this.slots) {
          const request = await this.queue.fetchNextRequest();
          if (request) {
            // handle() never rejects: it settles the request whatever its handler did.
            const handled = this.handle(request);
            running.add(handled);
            void handled.then(() => running.delete(handled));
            continue;
          }
          if (this.active === 0 && !this.hooks.ingesting() && (await this.queue.isFinished())) break;
        }
        await this.idle();
      }
    } finally {
      this.hooks.signal.removeEventListener('abort', onAbort);
      await Promise.all(running);
    }
  }

  /** Takes no more requests; run() returns once the handlers running now have ended. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, IDLE_POLL_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  /** Runs one request's handler and settles the request: handled, reclaimed for a retry (or the next run), or given up. */
  private async handle(request: Request): Promise<void> {
    this.active++;
    try {
      if (request.label === SHARD_LABEL) await this.hooks.shard(request.userData as { from: number; to: number });
      else await this.hooks.page(pageRequest(request));
      await this.queue.markRequestHandled(request);
    } catch (error) {
      await this.failed(request, error as Error).catch(() => {});
    } finally {
      this.active--;
      this.wake?.();
    }
  }

  private async failed(request: Request, error: Error): Promise<void> {
    // Stopping: the request goes back to the queue for the next run, its retries untouched.
    if (error instanceof Cancelled || this.hooks.signal.aborted) {
      await this.queue.reclaimRequest(request);
      return;
    }
    request.pushErrorMessage(error);
    if (request.retryCount < PAGE_RETRIES) {
      request.retryCount++;
      await this.queue.reclaimRequest(request);
      return;
    }
    await this.queue.markRequestHandled(request);
    // A shard's handler settles each image itself; one that throws leaves them pending for the run's last sweep.
    if (request.label !== SHARD_LABEL) this.hooks.pageGaveUp(pageRequest(request), error);
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
    this.stop();
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
