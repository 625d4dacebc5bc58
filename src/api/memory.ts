import { EventEmitter, setMaxListeners } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { DownloadError, toDownloadError, UsageError, type ReasonCode } from '../errors.ts';
import { createHttpClient, httpOption, runClientOptions, type HttpClient, type HttpClientKind } from '../http/client.ts';
import { redact, splitCredentials } from '../http/credentials.ts';
import { KeyedLimiter } from '../http/limits.ts';
import { Cancelled, dimensions, fetchImage, imageName, placeNoReplace, type FetchContext, type Fetched } from '../core/download.ts';
import { normalizeUrl } from '../core/urls.ts';
import { asItem } from '../core/input.ts';
import { firstFreeName, shortHash } from '../core/naming.ts';
import type { EngineOptions } from '../core/types.ts';
import { resolveOptions, type DownloadOptions } from '../options.ts';

/** Options of an in-memory downloader: the CLI's download options (validated up front). */
export interface DownloaderOptions extends DownloadOptions {
  /** Stops every download of this downloader; pending results reject with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each image is settled (saved or failed), for progress bars and logs. */
  onProgress?: (progress: BatchProgress) => void;
  /** The HTTP client: `undici` (default where its Agent is usable) or the runtime's `fetch` (Bun's default). */
  http?: HttpClientKind;
}

/** Options of one call (`fetch`, `stream`). */
export interface CallOptions {
  /** Abandons this call: the promise (or iteration) rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Where a batch is: counts so far. `total` is undefined while an iterable input is still being read. */
export interface BatchProgress {
  done: number;
  ok: number;
  failed: number;
  bytes: number;
  retries: number;
  total: number | undefined;
}

/** What a URL (or an item with its own name and metadata) may be given as. */
export type UrlInput = string | URL | { url: string | URL; name?: string; metadata?: unknown };

/** An image fetched into memory and checked (magic bytes, Content-Length). */
export interface ImageOk {
  ok: true;
  /** Position in the input. */
  index: number;
  url: string;
  finalUrl: string;
  /** The body. */
  data: Buffer;
  /** Size in bytes. */
  bytes: number;
  /** MIME type from the bytes, not from the server's Content-Type. */
  contentType: string;
  /** Extension from the bytes (`png`, `jpg`, `svg`, …). */
  ext: string;
  width: number | null;
  height: number | null;
  sha256: string;
  /** A safe file name for it: Content-Disposition, a `filePath`-like query parameter, else the URL path. */
  name: string;
  metadata?: unknown;
}

/** A URL that gave no image, with the stable reason code the CLI's failure report uses. */
export interface ImageFailed {
  ok: false;
  index: number;
  url: string;
  code: ReasonCode;
  status: number | null;
  message: string;
  error: DownloadError;
  metadata?: unknown;
}

export type ImageResult = ImageOk | ImageFailed;

/** An image saved into a folder by `saveAll` / `withImages`. */
export interface SavedImage extends Omit<ImageOk, 'data' | 'name'> {
  /** Full path of the file. */
  path: string;
  /** Its name in the folder. */
  file: string;
}

export type SavedResult = SavedImage | ImageFailed;

export interface DownloaderEvents {
  result: [result: ImageResult];
  retry: [info: { url: string; attempt: number; code: ReasonCode; status: number | undefined }];
  progress: [progress: BatchProgress];
}

interface Job {
  index: number;
  url: string;
  name?: string;
  metadata?: unknown;
}

/**
 * Downloads images into memory with bounded concurrency, per-host limits, retries with backoff, Retry-After,
 * timeouts and real image checks: one connection pool for its lifetime, so a service keeps one and reuses it.
 * A bad URL never throws: it becomes an `ImageFailed` result (like `gather(..., return_exceptions=True)`).
 *
 * @example
 * ```ts
 * import { Downloader } from 'imgdl';
 * await using dl = new Downloader({ concurrency: 16, timeout: 10 });
 * const [base, ...detections] = await dl.fetch([baseUrl, ...detectionUrls]);
 * if (base.ok) console.log(base.name, base.width, base.height, base.data.length);
 * ```
 */
export class Downloader extends EventEmitter<DownloaderEvents> {
  readonly options: EngineOptions;
  private readonly http: HttpClient;
  private readonly hosts: KeyedLimiter;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly closing = new AbortController();
  private readonly onProgress?: (progress: BatchProgress) => void;
  private closed = false;

  constructor(options: DownloaderOptions = {}) {
    super();
    const { signal, onProgress, http, ...download } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('Expected `onProgress` to be a function');
    this.options = resolveOptions(download);
    if (this.options.processing || this.options.dedupe || this.options.layout !== 'files') {
      throw new UsageError('Processing, `layout` and `dedupe` apply to runs into a folder (get, download, runPlugin), not to in-memory downloads');
    }
    this.onProgress = onProgress;
    this.http = createHttpClient(runClientOptions(this.options, httpOption(http)));
    this.hosts = new KeyedLimiter(this.options.perHost, { rate: this.options.rate, downAfterMs: this.options.timeoutMs });
    this.limit = pLimit(this.options.concurrency);
    setMaxListeners(0, this.closing.signal);
    if (signal) {
      if (signal.aborted) this.closing.abort(signal.reason);
      else signal.addEventListener('abort', () => this.closing.abort(signal.reason), { once: true });
    }
  }

  /** Fetches one image; throws a DownloadError (with `code`) when it cannot. */
  async fetchOne(url: string | URL, options: CallOptions = {}): Promise<ImageOk> {
    const [result] = await this.fetch([url], options);
    if (!result!.ok) throw result!.error;
    return result!;
  }

  /** Fetches every URL; resolves to one result per URL, in input order. Rejects only when aborted. */
  async fetch(urls: Iterable<UrlInput> | AsyncIterable<UrlInput>, options: CallOptions = {}): Promise<ImageResult[]> {
    const results: ImageResult[] = [];
    for await (const result of this.stream(urls, options)) results[result.index] = result;
    return results;
  }

  /**
   * Yields each result as soon as it is settled (not in input order; `index` says where it was). Reads the
   * input lazily, so a huge or endless iterable works; at most `concurrency` downloads run at once.
   */
  stream(urls: Iterable<UrlInput> | AsyncIterable<UrlInput>, options: CallOptions = {}): AsyncGenerator<ImageResult> {
    return this.settle(urls, options, async (job, url, ctx) => toImageOk(job, url, await fetchImage(url, ctx)));
  }

  /**
   * Saves every URL into `dir` (created if missing) under a safe, unique name; resolves to one result per URL,
   * in input order. No resume state is kept: for a run that must survive a crash, use `get` or `download`.
   * A file is only ever under its final name once it is complete and checked.
   */
  async saveAll(urls: Iterable<UrlInput> | AsyncIterable<UrlInput>, dir: string, options: CallOptions = {}): Promise<SavedResult[]> {
    await fs.promises.mkdir(dir, { recursive: true });
    const taken = new Set((await fs.promises.readdir(dir)).map((n) => n.toLowerCase()));
    const results: SavedResult[] = [];
    for await (const r of this.settle(urls, options, (job, url, ctx) => this.toFile(job, url, ctx, dir, taken))) results[r.index] = r;
    return results;
  }

  private async *settle<R extends { index: number; ok: boolean; bytes?: number }>(
    urls: Iterable<UrlInput> | AsyncIterable<UrlInput>,
    options: CallOptions,
    work: (job: Job, url: URL, ctx: FetchContext) => Promise<R | ImageFailed>,
  ): AsyncGenerator<R | ImageFailed> {
    if (this.closed) throw new Error('This Downloader is closed');
    // Aborted when the caller stops iterating early: its downloads still running are abandoned.
    const stop = new AbortController();
    const signals = [this.closing.signal, stop.signal, ...(options.signal ? [options.signal] : [])];
    const signal = AbortSignal.any(signals);
    setMaxListeners(0, signal);
    signal.throwIfAborted();
    const progress: BatchProgress = { done: 0, ok: 0, failed: 0, bytes: 0, retries: 0, total: Array.isArray(urls) ? urls.length : undefined };
    const ctx: FetchContext = {
      settings: this.options,
      http: this.http,
      hosts: this.hosts,
      signal,
      onRetry: (url, error, attempt) => {
        progress.retries++;
        this.emit('retry', { url, attempt, code: error.code, status: error.status });
      },
    };
    const source = toAsyncIterator(urls);
    const running = new Map<number, Promise<R | ImageFailed>>();
    let index = 0;
    let exhausted = false;
    try {
      for (;;) {
        while (!exhausted && running.size < this.options.concurrency) {
          const next = await source.next();
          if (next.done) {
            exhausted = true;
            progress.total = index;
            break;
          }
          const job = toJob(next.value, index++);
          running.set(job.index, this.limit(() => this.guard(job, ctx, work)));
        }
        if (running.size === 0) return;
        const result = await Promise.race(running.values());
        running.delete(result.index);
        signal.throwIfAborted();
        progress.done++;
        if (result.ok) {
          progress.ok++;
          progress.bytes += result.bytes ?? 0;
        } else progress.failed++;
        this.emit('result', result as unknown as ImageResult);
        this.emit('progress', { ...progress });
        this.onProgress?.({ ...progress });
        yield result;
      }
    } finally {
      if (running.size > 0) stop.abort(new DOMException('The caller stopped reading results', 'AbortError'));
      if (!exhausted) await source.return?.();
      // Results nobody will read: let them settle quietly.
      for (const pending of running.values()) pending.catch(() => {});
    }
  }

  private async toFile(job: Job, url: URL, ctx: FetchContext, dir: string, taken: Set<string>): Promise<SavedImage> {
    const tmp = path.join(dir, `.imgdl-${process.pid}-${job.index}-${shortHash(job.url, 6)}.part`);
    try {
      const fetched = await fetchImage(url, ctx, tmp);
      const size = await dimensions(fetched, tmp);
      const base = imageName(url, fetched, job.name);
      // The run's rule for names (firstFreeName) and for putting a file in place (never replacing one: a file
      // that appeared meanwhile keeps its name, and this image takes the next).
      for (;;) {
        const name = firstFreeName(base, job.url, (n) => !taken.has(n.toLowerCase()));
        if (name === undefined) throw new DownloadError('write_failed', `No free name near ${base}`);
        taken.add(name.toLowerCase());
        const file = path.join(dir, name);
        try {
          await placeNoReplace(tmp, file);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
          taken.delete(name.toLowerCase());
          throw new DownloadError('write_failed', `Could not save ${name}: ${(error as Error).message}`, { cause: error });
        }
        return { ...imageFacts(job, fetched, size), path: file, file: name };
      }
    } catch (error) {
      await fs.promises.rm(tmp, { force: true }).catch(() => {});
      throw error;
    }
  }

  /** Runs one job; whatever goes wrong becomes a failed result with a reason code. */
  private async guard<R>(job: Job, ctx: FetchContext, work: (job: Job, url: URL, ctx: FetchContext) => Promise<R>): Promise<R | ImageFailed> {
    try {
      // Results show the URL with its password as `***`; the password itself only goes into the request's header.
      const raw = job.url;
      job.url = redact(raw);
      if (ctx.signal.aborted) throw new Cancelled('stopped');
      const url = normalizeUrl(raw);
      if (url.username === '' && url.password === '') return await work(job, url, ctx);
      const { url: sent, authorization } = splitCredentials(url);
      return await work(job, sent, { ...ctx, authorization });
    } catch (error) {
      if (error instanceof Cancelled || ctx.signal.aborted) {
        // The caller sees the abort itself (from `stream`); this result is never yielded.
        return failed(job, new DownloadError('network', 'aborted'));
      }
      return failed(job, toDownloadError(error));
    }
  }

  /** Closes the connection pool; downloads still running are aborted. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort(new DOMException('The Downloader was closed', 'AbortError'));
    this.hosts.close();
    await this.http.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function toImageOk(job: Job, url: URL, fetched: Fetched): Promise<ImageOk> {
  return { ...imageFacts(job, fetched, await dimensions(fetched)), data: fetched.body!, name: imageName(url, fetched, job.name) };
}

/** What an image in memory and an image saved to a folder both report. */
function imageFacts(job: Job, fetched: Fetched, size: { width: number | null; height: number | null }): Omit<ImageOk, 'data' | 'name'> {
  return {
    ok: true,
    index: job.index,
    url: job.url,
    finalUrl: fetched.finalUrl.href,
    bytes: fetched.bytes,
    contentType: fetched.sniffed.mime,
    ext: fetched.sniffed.ext,
    width: size.width,
    height: size.height,
    sha256: fetched.sha256,
    ...(job.metadata === undefined ? {} : { metadata: job.metadata }),
  };
}

function failed(job: Job, error: DownloadError): ImageFailed {
  return {
    ok: false,
    index: job.index,
    url: job.url,
    code: error.code,
    status: error.status ?? null,
    message: error.message,
    error,
    ...(job.metadata === undefined ? {} : { metadata: job.metadata }),
  };
}

function toJob(input: UrlInput, index: number): Job {
  const item = asItem(input);
  // Not a URL at all: reported like a malformed list line, the batch goes on.
  return 'wrong' in item ? { index, url: String(input) } : { index, ...item };
}

function toAsyncIterator<T>(input: Iterable<T> | AsyncIterable<T>): AsyncIterator<T> {
  if (input !== null && typeof input === 'object' && Symbol.asyncIterator in input) return input[Symbol.asyncIterator]();
  if (input !== null && typeof input === 'object' && Symbol.iterator in input) {
    const it = input[Symbol.iterator]();
    return {
      next: async () => it.next(),
      return: async (value?: unknown) => it.return?.(value) ?? { done: true, value: undefined },
    };
  }
  throw new TypeError(`Expected an iterable of URLs, got ${input === null ? 'null' : typeof input}`);
}

/**
 * Fetches images into memory: one result per URL, in input order, never throwing for one bad URL.
 *
 * @example
 * ```ts
 * import { fetchImages } from 'imgdl';
 * const results = await fetchImages(urls, { concurrency: 20, timeout: 10 });
 * for (const r of results) console.log(r.url, r.ok ? `${r.bytes} bytes ${r.contentType}` : r.code);
 * ```
 */
export async function fetchImages(urls: Iterable<UrlInput> | AsyncIterable<UrlInput>, options: DownloaderOptions = {}): Promise<ImageResult[]> {
  const downloader = new Downloader(options);
  try {
    return await downloader.fetch(urls, { signal: options.signal });
  } finally {
    await downloader.close();
  }
}

/**
 * Yields each image (or failure) as soon as it is settled, for pipelines that process images while others
 * still download. Stopping the loop early (`break`) aborts the downloads still running.
 *
 * @example
 * ```ts
 * import { streamImages } from 'imgdl';
 * for await (const r of streamImages(urls, { concurrency: 32 })) {
 *   if (r.ok) await thumbnail(r.data);
 * }
 * ```
 */
export async function* streamImages(urls: Iterable<UrlInput> | AsyncIterable<UrlInput>, options: DownloaderOptions = {}): AsyncGenerator<ImageResult> {
  const downloader = new Downloader(options);
  try {
    yield* downloader.stream(urls, { signal: options.signal });
  } finally {
    await downloader.close();
  }
}

/**
 * Downloads the URLs into a fresh temporary folder, hands the results (in input order) to `fn`, and removes the
 * folder afterwards, whether `fn` returns or throws (download, process, delete: seed 000's OCR job).
 *
 * @example
 * ```ts
 * import { withImages } from 'imgdl';
 * const texts = await withImages(urls, async (images) => {
 *   return Promise.all(images.filter((i) => i.ok).map((i) => ocr(i.path)));
 * });
 * ```
 */
export async function withImages<T>(
  urls: Iterable<UrlInput> | AsyncIterable<UrlInput>,
  fn: (results: SavedResult[], dir: string) => T | Promise<T>,
  options: DownloaderOptions & { tmpDir?: string } = {},
): Promise<T> {
  if (typeof fn !== 'function') throw new TypeError('Expected `fn` to be a function (results, dir) => …');
  const { tmpDir, ...rest } = options;
  const downloader = new Downloader(rest);
  const dir = await fs.promises.mkdtemp(path.join(tmpDir ?? os.tmpdir(), 'imgdl-'));
  try {
    const results = await downloader.saveAll(urls, dir, { signal: options.signal });
    await downloader.close();
    return await fn(results, dir);
  } finally {
    await downloader.close();
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}
