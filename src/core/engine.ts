import { EventEmitter, setMaxListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import type { ReasonCode } from '../errors.ts';
import { createHttpClient, runClientOptions, type HttpClient } from '../http/client.ts';
import { Secrets } from '../http/credentials.ts';
import { KeyedLimiter } from '../http/limits.ts';
import { describeCode, diskFullCode, type DiskStop } from '../storage/disk.ts';
import { MetadataLog } from '../storage/metadata.ts';
import { META_OPEN, type Counts, type RunStore } from '../storage/state.ts';
import { Crawl } from './crawl.ts';
import type { FetchContext } from './download.ts';
import { ImageLane } from './images.ts';
import { Ingest } from './ingest.ts';
import { openRun } from './open.ts';
import { PageLane } from './pages.ts';
import { writeFailures, writeRunFiles, type FailureLine } from './report.ts';
import { Tally } from './tally.ts';
import { datasetFactory, type Dataset } from '../output/dataset.ts';
import { s3Url } from '../output/s3-target.ts';
import { FAILURES_FILE, METADATA_FILE, REPORT_FILE, STATS_FILE, TMP_DIR, type EngineEvents, type Progress, type HostSummary, type RunHandle, type RunSpec, type Summary } from './types.ts';

export * from './types.ts';

/**
 * One run: opens its folder and store (locks, crash recovery), then lets Crawlee's queue drive three lanes until
 * there is nothing left or the run is stopped: inputs read into the store (Ingest), shards of images downloaded
 * (ImageLane), plugin pages fetched and handled (PageLane). At the end it writes the failure report and the summary.
 * docs/architecture.md follows one URL through these parts.
 */
export class Engine extends EventEmitter<EngineEvents> implements RunHandle {
  private readonly stop = new AbortController();
  private readonly tally = new Tally(this);
  private readonly secrets = new Secrets();
  private readonly hosts: KeyedLimiter;
  private readonly http: HttpClient;
  private readonly metadata: MetadataLog;
  private readonly crawl: Crawl;
  private readonly ingest: Ingest;
  private pages: PageLane | undefined;
  /** Why the run stopped early, when the disk (or the state's disk) could take no more. */
  private stopped: DiskStop | undefined;
  /** A bad input found while reading the lists (binary data on stdin): the run stops and run() throws it. */
  private inputError: Error | undefined;
  private retried: Partial<Record<ReasonCode, number>> | undefined;
  private failuresByCode: Partial<Record<ReasonCode, number>> = {};
  private finalCounts: Counts = { pending: 0, saving: 0, done: 0, failed: 0, total: 0 };
  private pagesFailed = 0;
  /** Hosts that backed off, with their images and failures (read from the store before it closes). */
  private backedOff: HostSummary[] = [];
  /** stats.json and report.html were written. */
  private wroteStats = false;
  private wroteReport = false;

  private constructor(
    private readonly spec: RunSpec,
    private readonly store: RunStore,
    private readonly release: () => void,
    /** Dataset runs (processing, --dedupe, --layout): what is done between fetching and saving (src/output). */
    private readonly output: Dataset | undefined,
  ) {
    super();
    this.hosts = spec.hosts ?? new KeyedLimiter(spec.options.perHost, { rate: spec.options.rate, downAfterMs: spec.options.timeoutMs });
    this.http = spec.http ?? createHttpClient(runClientOptions(spec.options, spec.httpKind));
    this.metadata = new MetadataLog(path.join(spec.outDir, METADATA_FILE), store, (error, file) => this.stopIfDiskFull(error, file));
    this.crawl = new Crawl(store, spec.options.concurrency, {
      shard: (range) => (spec.forward ? spec.forward(range, (from, to) => store.pendingInRange(from, to)) : this.images!.shard(range)),
      page: (request) => this.pages!.handle(request),
      pageGaveUp: (request, error) => this.pages!.gaveUp(request, error),
      ingesting: () => this.tally.ingesting,
      signal: this.stop.signal,
    }, Object.keys(spec.handlers ?? {}).length > 0);
    this.ingest = new Ingest(store, this.secrets, this.tally, (from, to, first) => this.crawl.addShards(from, to, 'items', first));
    // Every in-flight download listens to the run's stop signal.
    setMaxListeners(0, this.stop.signal);
    spec.signal?.addEventListener('abort', () => this.stop.abort(spec.signal!.reason), { once: true });
  }

  private images: ImageLane | undefined;

  /** Where images are saved: the run's folder, or the one a shard of a distributed run saves into. */
  private get filesDir(): string {
    return this.spec.filesDir ?? this.spec.outDir;
  }

  /** Opens a run (see openRun: folders checked, locks taken, state forgotten if asked) without starting it. */
  static async open(spec: RunSpec): Promise<Engine> {
    // sharp (for processing) is loaded first: a missing one is a usage error before anything is locked or written.
    // An s3:// output's bucket is probed here too: no credentials, no bucket, no access are usage errors before any work.
    const makeOutput = await datasetFactory(spec.options, spec.filesDir ?? spec.outDir, spec.tarShard, spec.s3, spec.signal);
    const { store, release } = await openRun(spec);
    return new Engine(spec, store, release, makeOutput?.(store));
  }

  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** Asks the run to stop: no new downloads start, in-flight ones are abandoned, state is kept. */
  abort(reason = 'stopped'): void {
    this.stop.abort(reason);
  }

  progress(): Progress {
    const backingOff = this.hosts.backingOff(3);
    return backingOff.count > 0 ? { ...this.tally.progress(), backingOff } : this.tally.progress();
  }

  /** Calls `listener` with the run's counts after each image is saved or fails, and after each page that fails. */
  onProgress(listener: (progress: Progress) => void): void {
    const report = () => listener(this.progress());
    this.on('saved', report);
    this.on('failed', report);
  }

  /** Runs until every image and page is handled or the run is stopped. */
  async run(): Promise<Summary> {
    const { spec, store } = this;
    try {
      const tmpDir = path.join(spec.outDir, TMP_DIR);
      // The output folder's lock is held: temporary files left in it are a crashed run's, never a live one's.
      await fs.promises.rm(tmpDir, { recursive: true, force: true });
      await fs.promises.mkdir(tmpDir, { recursive: true });
      const existing = await this.recover();
      // One limit on what is in flight, images and pages together: --concurrency is the number of connections. It is
      // taken per attempt, after the host's slot (see attempt() in download.ts); page handlers' own work is bounded
      // by the crawler's slots.
      const limit = pLimit(spec.options.concurrency);
      const fetch: FetchContext = { ...this.fetchContext(), slots: (fn) => limit(fn) };
      this.images = new ImageLane(store, fetch, { outDir: this.filesDir, tmpDir, stateDir: spec.stateDir, existing, output: this.output }, this.metadata, this.tally, (e, w) =>
        this.stopIfDiskFull(e, w),
      );
      this.pages = new PageLane(store, this.crawl.queueClient, fetch, this.secrets, this.ingest, this.tally, spec.handlers ?? {}, spec, !spec.options.ignoreRobots);
      if (spec.retryFailed) this.retryFailed();
      this.tally.start(store.counts(), store.pageFailures().length);
      await this.crawl.start();
      // Start pages are added on every run; those already seen (uniqueKey label:url) are ignored.
      if (spec.requests?.length) this.pages.add(spec.requests, 0);
      if (this.crawl.drained()) this.crawl.sweep();
      await Promise.all([this.crawl.run(), this.readInputs()]);
      if (!this.signal.aborted && this.crawl.sweep()) await this.crawl.run();
    } catch (error) {
      // The state's disk filled up under Crawlee's queue or a transaction of ours: stop cleanly, keep what is kept.
      if (!this.stopIfDiskFull(error, spec.stateDir)) throw error;
    } finally {
      await this.finish();
    }
    if (this.inputError) throw this.inputError;
    return this.summary();
  }

  /** What fetching needs, for images and pages alike: one pool, one set of per-host limits, one stop signal. */
  private fetchContext(): FetchContext {
    return {
      settings: this.spec.options,
      http: this.http,
      hosts: this.hosts,
      signal: this.signal,
      secrets: this.secrets,
      onRetry: (url, error, attempt) => this.tally.retried({ url, attempt, code: error.code, status: error.status }),
    };
  }

  /**
   * Settles the folder against the store (see MetadataLog.reconcile): records the store lost in a crash, or that an
   * earlier run into this folder wrote, are adopted; images being put in place at a crash are settled; after an
   * unclean end, saved files are checked. So a lost tail of state costs at most a refetch, never a duplicate.
   * Returns the (lower-cased) names in the folder, which a new image never takes.
   */
  private async recover(): Promise<Set<string>> {
    const unclean = this.store.getMeta(META_OPEN) === '1';
    this.store.setMeta(META_OPEN, '1');
    await this.output?.recover(unclean);
    await this.metadata.reconcile(this.filesDir, unclean, this.output?.check);
    this.output?.loadSaved();
    const known = this.output?.existingNames();
    if (known) return known;
    try {
      return new Set((await fs.promises.readdir(this.filesDir)).map((n) => n.toLowerCase()));
    } catch {
      return new Set();
    }
  }

  /** --retry-failed: failed images back to pending, failed pages back in the queue; counted by code for the summary. */
  private retryFailed(): void {
    const retried: Partial<Record<ReasonCode, number>> = {};
    for (const f of this.store.failures()) retried[f.code] = (retried[f.code] ?? 0) + 1;
    this.store.retryFailed();
    for (const f of this.pages!.retryFailed()) retried[f.code] = (retried[f.code] ?? 0) + 1;
    this.retried = retried;
  }

  private async readInputs(): Promise<void> {
    if (!this.spec.items) return;
    try {
      await this.ingest.run(this.spec.items, this.spec.ingestKey, this.signal);
    } catch (error) {
      if (this.stopIfDiskFull(error, this.spec.stateDir)) return;
      // A list that cannot be read (binary data on stdin): the run stops, and run() throws this.
      this.inputError = error as Error;
      this.stop.abort(error);
    }
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

  private async finish(): Promise<void> {
    let failure: unknown;
    let failures: FailureLine[] = [];
    try {
      await this.crawl.teardown();
      // A run that ended with nothing left to do completes its last (partial) shard; a stopped one keeps it open.
      await this.output?.close(!this.signal.aborted).catch((error: unknown) => {
        if (!this.stopIfDiskFull(error, this.spec.outDir)) throw error;
      });
      await this.metadata.close();
      ({ byCode: this.failuresByCode, lines: failures } = await writeFailures(this.store, this.spec.outDir).catch((error: unknown) => {
        if (!this.stopIfDiskFull(error, path.join(this.spec.outDir, FAILURES_FILE))) throw error;
        return { byCode: {}, lines: [] };
      }));
      await fs.promises.rm(path.join(this.spec.outDir, TMP_DIR), { recursive: true, force: true }).catch(() => {});
      await this.http.close().catch(() => {});
      if (!this.spec.hosts) this.hosts.close();
    } catch (error) {
      failure = error;
    }
    try {
      this.finalCounts = this.store.counts();
      this.pagesFailed = this.store.pageFailures().length;
      this.backedOff = this.hosts.backedOff(10).map(({ host, limit, lowest, backoffs }) => ({ host, ...this.store.hostCounts(host, this.tally.startedAt), limit, lowest, backoffs }));
      // A clean end: the next run need not check every saved file.
      this.store.setMeta(META_OPEN, '0');
    } catch (error) {
      if (!this.stopIfDiskFull(error, this.spec.stateDir)) failure ??= error;
    }
    if (failure === undefined) {
      try {
        const { downloaded, bytes } = this.tally.counts;
        const interrupted = this.signal.aborted && !this.stopped && !this.inputError;
        const session = { run: path.basename(this.spec.stateDir), counts: this.finalCounts, downloaded, bytes, seconds: this.tally.elapsedMs / 1000, interrupted, pagesFailed: this.pagesFailed };
        await writeRunFiles(this.store, this.spec.outDir, failures, session, this.spec.report !== false);
        this.wroteStats = true;
        this.wroteReport = this.spec.report !== false;
      } catch (error) {
        if (!this.stopIfDiskFull(error, this.spec.outDir)) failure = error;
      }
    }
    // An s3:// output: the run's files go up beside its images (the local copies stay authoritative).
    if (failure === undefined) await this.output?.publish().catch((error: unknown) => (failure = error));
    this.release();
    if (failure !== undefined) throw failure;
  }

  private summary(): Summary {
    const seconds = this.tally.elapsedMs / 1000;
    const { downloaded, bytes } = this.tally.counts;
    const { spec } = this;
    const notVisited = this.pages?.notVisited ?? 0;
    // An s3:// output is shown where its images and run files are.
    const shown = spec.s3 ? s3Url(spec.s3.target) : spec.outDir;
    const file = (name: string) => (spec.s3 ? s3Url(spec.s3.target, (spec.s3.runFiles?.prefix ?? '') + name) : path.join(spec.outDir, name));
    return {
      run: path.basename(spec.stateDir),
      downloaded,
      skipped: Math.max(0, this.finalCounts.done - downloaded),
      failed: this.finalCounts.failed,
      pending: this.finalCounts.pending,
      bytes,
      seconds: Math.round(seconds * 1000) / 1000,
      imagesPerSecond: seconds > 0 ? Math.round((downloaded / seconds) * 10) / 10 : 0,
      interrupted: this.signal.aborted && !this.stopped && !this.inputError,
      outDir: shown,
      metadataFile: file(METADATA_FILE),
      failuresFile: file(FAILURES_FILE),
      ...(this.wroteStats ? { statsFile: file(STATS_FILE) } : {}),
      ...(this.wroteReport ? { reportFile: file(REPORT_FILE) } : {}),
      failuresByCode: this.failuresByCode,
      ...(this.retried ? { retried: this.retried } : {}),
      ...(this.stopped ? { stopped: { ...this.stopped, ...(spec.items && !this.ingest.complete ? { unread: true } : {}) } } : {}),
      ...(this.pagesFailed > 0 ? { pagesFailed: this.pagesFailed } : {}),
      ...(notVisited > 0 ? { pagesNotVisited: notVisited } : {}),
      ...(this.backedOff.length > 0 ? { hosts: this.backedOff } : {}),
    };
  }
}
