import crypto, { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { imageSize } from 'image-size';
import { imageSizeFromFile } from 'image-size/fromFile';
import { DownloadError, toDownloadError, type ReasonCode } from '../errors.ts';
import { checkLiteralHost } from '../http/address.ts';
import { header, type HttpClient, type HttpResponse } from '../http/client.ts';
import { redact, Secrets } from '../http/credentials.ts';
import { HostDown, type KeyedLimiter, type Outcome } from '../http/limits.ts';
import type { CookieJar } from 'tough-cookie';
import { normalizeUrl } from './urls.ts';
import { disambiguate, firstFreeName, nameFromResponse, nameFromUrl, parseNameTemplate, renderName, safeName, safePath, shortHash, splitExt, type NameTemplate } from './naming.ts';
import { FAILURES_FILE, METADATA_FILE, REPORT_FILE, STATS_FILE, type FoundOn } from './types.ts';
import { incompleteReason, Tail } from './complete.ts';
import { SNIFF_BYTES, sniffImage, type Sniffed } from './sniff.ts';
import { optOutDirective, ROBOTS_MAX_BYTES, ROBOTS_MAX_REDIRECTS, userAgentToken } from './robots.ts';
import type { Item, RunStore } from '../storage/state.ts';
import { sha256File } from '../storage/metadata.ts';
import type { Processed } from '../process/image.ts';
import { sampleFields } from '../output/fields.ts';

/** What is recorded for every saved image (one JSON line in the metadata file). */
export interface ImageRecord {
  url: string;
  finalUrl: string;
  file: string;
  bytes: number;
  sha256: string;
  contentType: string;
  width: number | null;
  height: number | null;
  /** The image's stable key: an input table's row number (`000000042`), else its id in the run, zero-padded;
   * webdataset sample names use it (src/output/fields.ts). */
  key?: string;
  /** An input table's row: its caption (--caption-col). */
  caption?: string;
  /** Metadata a plugin attached to the image, or an input table's columns (all but the URL's, or --save-cols). */
  metadata?: unknown;
  /**
   * With image processing that re-encodes (--resize, --format): the original as fetched (`file` set with
   * --keep-original); the record's own bytes, sha256, contentType, width and height are the saved output's.
   */
  original?: { bytes: number; sha256: string; contentType: string; width: number | null; height: number | null; file?: string };
  /** With --dedupe: the URL of the first image with these bytes; `file` (and sha256, bytes) are that image's. */
  duplicateOf?: string;
}

export interface DownloadSettings {
  retries: number;
  /** First backoff delay; doubles each retry, with jitter. */
  retryDelayMs: number;
  /** A Retry-After longer than this is not waited for: the image fails with `http_status`. */
  maxRetryAfterMs: number;
  /** Whole-attempt time limit. */
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
  userAgent: string;
  /** Refuse hosts that are or resolve to non-public addresses (checked at each hop). */
  blockPrivateNetwork: boolean;
  /** Save images whose X-Robots-Tag opts out (see optOutDirectives) all the same. */
  ignoreOptOut: boolean;
  /** X-Robots-Tag directives (lower case) that keep an image from being saved (`opted_out`). */
  optOutDirectives: readonly string[];
  /**
   * Headers sent with every request (names in lower case: -H, --referer), to the origin a download starts at only:
   * not after a redirect to another origin, unless `locationTrusted`.
   */
  headers: Readonly<Record<string, string>>;
  /** Send `headers` (and a plugin's) after a redirect to another origin too (curl's --location-trusted); never credentials. */
  locationTrusted: boolean;
  /**
   * Cookies (--cookies): each hop gets those whose domain, path and secure flag match its URL; Set-Cookie answers go
   * into it for the rest of the run (in memory only: the file is never written).
   */
  cookieJar?: CookieJar;
  /**
   * Where each image goes in the output folder and under what name (--name): a template of fields, `/` between
   * folders (see naming.ts NameTemplate). None: named as always (a plugin's `name`, else from the response and URL).
   */
  nameTemplate?: string;
}

/** What fetching needs: settings, a connection pool, per-host limits and a stop signal. */
export interface FetchContext {
  settings: DownloadSettings;
  http: HttpClient;
  hosts: KeyedLimiter;
  /**
   * The run's limit on attempts in flight (--concurrency), taken after the host's slot; none: no limit beyond the
   * hosts' (the caller bounds its own work).
   */
  slots?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Aborted when the run stops (Ctrl-C): the image stays pending, it does not fail. */
  signal: AbortSignal;
  /** Called before each retry (for progress and logs). */
  onRetry?: (url: string, error: DownloadError, attempt: number) => void;
  /**
   * The Authorization header of the URL being fetched (from its `user:password@`, see src/http/credentials.ts):
   * sent to that URL's origin only, never to another origin a redirect leads to. Set per image.
   */
  authorization?: string;
  /**
   * Checks each redirect hop before it is requested (plugin pages: the robots.txt of the hop's origin); throws a
   * DownloadError (`robots_disallowed`) to refuse it. None: hops are not checked beyond scheme, count and address.
   */
  checkHop?: (url: URL) => Promise<void>;
  /** The run's passwords (in memory only), for stored URLs that carry `user:***@`; none when unset. */
  secrets?: Secrets;
  /**
   * Headers of this image or page (a plugin's ImageRequest / PageRequest `headers`, names in lower case), on top of
   * the run's: sent under the same rule as those. Set per image or page.
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * Bodies up to this many bytes stay in memory (returned as `body`, no temporary file written); larger ones stream
   * to the temporary file past 512 KB as usual. Set for image processing, which decodes from memory.
   */
  bodyInMemory?: number;
  /** Pages only: non-2xx statuses answered as the page (a plugin's `http.acceptStatus`) rather than failing it. */
  acceptStatus?: readonly number[];
  /** Pages only: POST `body` instead of a GET (a plugin's API page); a 301, 302 or 303 redirect goes on with a GET. */
  post?: { body: string };
}

/** What saving into a run's folder needs on top of fetching. */
export interface DownloadContext extends FetchContext {
  store: RunStore;
  outDir: string;
  tmpDir: string;
  /** Claims file names for saved images (batched into one transaction every few milliseconds). */
  claims: NameClaims;
  /**
   * Dataset runs (processing, --dedupe, --layout webdataset: src/output/dataset.ts): takes each fetched, validated
   * image instead of save(). None: save() as fetched.
   */
  output?: {
    save(item: Item, url: URL, fetched: Fetched, tmpPath: string, ctx: DownloadContext): Promise<ImageRecord>;
    readonly bodyInMemory?: number;
    /** Bounds the images between the start of their download and the end of their processing (their bodies in memory). */
    gate<T>(fn: () => Promise<T>): Promise<T>;
  };
}

/** Files a run writes into its output folder besides images (lower case). */
const RUN_FILES = new Set([METADATA_FILE, FAILURES_FILE, STATS_FILE, REPORT_FILE]);

const CLAIM_BATCH_MS = 8;
const CLAIM_BATCH_MAX = 256;

/**
 * Chooses and claims a free, stable name for each image about to be saved. Claims made within a few
 * milliseconds share one SQLite transaction: the claim must be durable before the rename (so a crash
 * between the two never loses track of a file), but one commit per image would cost more than the download.
 */
export class NameClaims {
  private pending: Array<{ item: Item; base: string; record: ImageRecord; adoptable: string | undefined; resolve: (name: string) => void; reject: (e: unknown) => void }> = [];

  constructor(
    private readonly store: RunStore,
    /** Lower-cased names already in the output folder before the run: never overwritten. */
    private readonly existing: Set<string>,
  ) {}

  /**
   * Claims the first free name of `base` and its stable alternatives for `item`. Names of files in the folder that
   * this run did not write are skipped, except `adoptable`: a file there with exactly this image's bytes.
   */
  claim(item: Item, base: string, record: ImageRecord, adoptable?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const n = this.pending.push({ item, base, record, adoptable, resolve, reject });
      // One commit per few milliseconds rather than per event-loop turn: a turn often holds only one or two
      // finished downloads, and each commit costs more than the claim itself.
      if (n === 1) this.timer = setTimeout(() => this.flush(), CLAIM_BATCH_MS);
      else if (n >= CLAIM_BATCH_MAX) this.flush();
    });
  }

  private timer: NodeJS.Timeout | undefined;

  private flush(): void {
    clearTimeout(this.timer);
    const batch = this.pending;
    this.pending = [];
    const results: Array<string | DownloadError> = [];
    try {
      this.store.transaction(() => {
        for (const { item, base, record, adoptable } of batch) results.push(this.choose(item, base, record, adoptable));
      });
    } catch (error) {
      for (const p of batch) p.reject(new DownloadError('write_failed', `Could not record the image: ${(error as Error).message}`, { cause: error }));
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r instanceof DownloadError) p.reject(r);
      else p.resolve(r);
    });
  }

  /** A file named `name` is in the folder, not written by this run: never overwritten. */
  taken(name: string): void {
    this.existing.add(name.toLowerCase());
    this.foreign = true;
  }

  /** True when a file of that name was in the folder when the run started (or appeared since). */
  onDisk(name: string): boolean {
    return this.existing.has(name.toLowerCase());
  }

  /**
   * True when the folder had (or has since had) a file this run did not write that an image could be named as: a
   * fresh folder has none (the run's own files, `metadata.jsonl` and the like, never have an image's extension).
   */
  get anyOnDisk(): boolean {
    this.foreign ??= [...this.existing].some((name) => !RUN_FILES.has(name) && !name.startsWith('.imgdl'));
    return this.foreign;
  }

  private foreign: boolean | undefined;

  private choose(item: Item, base: string, record: ImageRecord, adoptable: string | undefined): string | DownloadError {
    const name = firstFreeName(base, item.url, (name) => {
      if (this.existing.has(name.toLowerCase()) && name !== adoptable) return false;
      record.file = name;
      return this.store.claim(item.id, name, JSON.stringify(record));
    });
    return name ?? new DownloadError('write_failed', `No free name near ${base}`);
  }
}

/** Thrown when the run is stopping; the image is left pending for the next run. */
export class Cancelled extends Error {
  override name = 'Cancelled';
}

const HEAD_KEEP = 64 * 1024;
const IN_MEMORY_LIMIT = 512 * 1024;

/** Downloads, validates, names and saves one image. Throws DownloadError (or Cancelled). */
export async function downloadItem(item: Item, ctx: DownloadContext): Promise<ImageRecord> {
  const tmpPath = path.join(ctx.tmpDir, `${item.id}-${process.pid}.part`);
  try {
    const url = normalizeUrl(item.url);
    const { url: sent, ctx: itemCtx } = withCredentials(url, item.headers ? { ...ctx, headers: JSON.parse(item.headers) as Record<string, string> } : ctx);
    const output = ctx.output;
    if (!output) return await save(item, sent, await fetchImage(sent, itemCtx, tmpPath), tmpPath, ctx);
    return await output.gate(async () => output.save(item, sent, await fetchImage(sent, itemCtx, tmpPath), tmpPath, ctx));
  } catch (error) {
    await fs.promises.rm(tmpPath, { force: true }).catch(() => {});
    if (ctx.signal.aborted) throw new Cancelled('stopped', { cause: error });
    throw toDownloadError(error);
  }
}

/**
 * Fetches and validates one image with retries (backoff with jitter; Retry-After honoured and the host paused).
 * With `tmpPath` the body goes to that file (streamed once it is large); without it the whole body is kept in
 * memory and returned as `body`. Throws DownloadError, or Cancelled when `ctx.signal` is aborted.
 */
export async function fetchImage(url: URL, ctx: FetchContext, tmpPath?: string): Promise<Fetched> {
  return retrieve(url, ctx, IMAGE_ACCEPT, (res, finalUrl) => readBody(res, finalUrl, tmpPath, ctx));
}

/**
 * Fetches `url` with the run's retries (withRetries), one attempt at a time (attempt), `read` taking the final
 * response: the one pipeline of images, pages and robots.txt. Throws DownloadError, or Cancelled when stopping.
 */
async function retrieve<T>(url: URL, ctx: FetchContext, accept: string, read: (res: HttpResponse, finalUrl: URL) => Promise<T>): Promise<T> {
  try {
    return await withRetries(url, ctx, () => attempt(url, ctx, accept, read));
  } catch (error) {
    if (ctx.signal.aborted) throw new Cancelled('stopped', { cause: error });
    throw toDownloadError(error);
  }
}

/**
 * Runs `run` with the run's retries, for images and pages alike: retryable DownloadErrors are tried again after an
 * exponential backoff (factor 2 from retryDelayMs, at most 30 s, with jitter), up to `retries` times. A Retry-After
 * (within maxRetryAfterMs) replaces the backoff of that retry, with the host paused meanwhile; a longer one fails at
 * once. p-retry has no per-retry delay, and a wait slept in onFailedAttempt came on top of its backoff; a failure
 * for which shouldConsumeRetry says false is retried without backoff, but is not counted against `retries` either
 * (nor does it grow the backoff), so those retries are counted here, against the same budget.
 */
async function withRetries<T>(url: URL, ctx: FetchContext, run: () => Promise<T>): Promise<T> {
  const { settings } = ctx;
  let waitedOut = 0;
  const waitsOut = (error: unknown): error is DownloadError & { retryAfterMs: number } =>
    error instanceof DownloadError && error.retryable && error.retryAfterMs !== undefined;
  return pRetry(run, {
    retries: settings.retries,
    factor: 2,
    minTimeout: settings.retryDelayMs,
    maxTimeout: 30_000,
    randomize: true,
    signal: ctx.signal,
    shouldRetry: ({ error }) => error instanceof DownloadError && error.retryable && !ctx.signal.aborted,
    shouldConsumeRetry: ({ error }) => !waitsOut(error),
    onFailedAttempt: async ({ error, attemptNumber, retriesConsumed }) => {
      if (ctx.signal.aborted) throw new Cancelled('stopped');
      if (!(error instanceof DownloadError) || !error.retryable) return;
      if (retriesConsumed + waitedOut >= settings.retries) throw error;
      if (waitsOut(error) && error.retryAfterMs > settings.maxRetryAfterMs) {
        throw new DownloadError('http_status', `${error.message}; Retry-After of ${Math.round(error.retryAfterMs / 1000)} s is over the limit`, { status: error.status });
      }
      ctx.onRetry?.(url.href, error, attemptNumber);
      if (!waitsOut(error)) return;
      waitedOut++;
      ctx.hosts.pause(url.host, error.retryAfterMs);
      await sleep(error.retryAfterMs, undefined, { signal: ctx.signal }).catch(() => {});
    },
  });
}

/** A fetched page (HTML or JSON) for a plugin handler. */
export interface Page {
  url: string;
  finalUrl: string;
  status: number;
  contentType: string;
  body: string;
}

const MAX_PAGE_BYTES = 20 * 1024 * 1024;

/** Fetches a page as text, with the same redirects, timeouts and retries as images. Throws DownloadError. */
export async function fetchPage(rawUrl: string, ctx: FetchContext): Promise<Page> {
  const url = normalizeUrl(rawUrl);
  return retrieve(url, ctx, PAGE_ACCEPT, (res, finalUrl) => readPage(res, url, finalUrl));
}

/** Reads a page's body as text (at most MAX_PAGE_BYTES). */
async function readPage(res: HttpResponse, url: URL, finalUrl: URL): Promise<Page> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of res.body) {
    bytes += chunk.byteLength;
    if (bytes > MAX_PAGE_BYTES) throw new DownloadError('too_large', `Page is over ${MAX_PAGE_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return {
    url: url.href,
    finalUrl: finalUrl.href,
    status: res.status,
    contentType: header(res.headers, 'content-type') ?? '',
    body: Buffer.concat(chunks).toString('utf8'),
  };
}

/**
 * Fetches a robots.txt with the run's timeouts and retries (5xx, 429, network errors), at most ROBOTS_MAX_REDIRECTS
 * redirects, never with credentials; returns its text up to ROBOTS_MAX_BYTES (the rest is not read). Throws
 * DownloadError (a non-2xx answer as `http_status` with its status), or Cancelled when the run is stopping.
 */
export async function fetchRobotsTxt(url: URL, ctx: FetchContext): Promise<string> {
  const settings = { ...ctx.settings, maxRedirects: Math.min(ctx.settings.maxRedirects, ROBOTS_MAX_REDIRECTS) };
  const robotsCtx: FetchContext = { ...ctx, settings, authorization: undefined };
  return retrieve(url, robotsCtx, ROBOTS_ACCEPT, (res) => readCapped(res, ROBOTS_MAX_BYTES));
}

/** A body as text, its first `max` bytes only (cut at the last line break before them); the rest is not read. */
async function readCapped(res: HttpResponse, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const iterator = res.body[Symbol.asyncIterator]();
  try {
    for (;;) {
      const step = await iterator.next();
      if (step.done) return Buffer.concat(chunks).toString('utf8');
      chunks.push(Buffer.from(step.value));
      bytes += step.value.byteLength;
      if (bytes > max) {
        const head = Buffer.concat(chunks).subarray(0, max);
        const cut = head.lastIndexOf(0x0a);
        return head.subarray(0, cut < 0 ? max : cut + 1).toString('utf8');
      }
    }
  } finally {
    await iterator.return?.().catch(() => {});
  }
}

/**
 * The URL to request for `url` (without userinfo) and the context to fetch it with (carrying its Authorization
 * header). Throws DownloadError `credentials_missing` for a stored `user:***@` URL whose password this process
 * was not given. A URL without userinfo costs nothing: `ctx` itself is returned.
 */
export function withCredentials<C extends FetchContext>(url: URL, ctx: C): { url: URL; ctx: C } {
  if (url.username === '' && url.password === '') return { url, ctx };
  const { url: sent, authorization } = (ctx.secrets ?? NO_SECRETS).resolve(url);
  return { url: sent, ctx: authorization === undefined ? ctx : { ...ctx, authorization } };
}

const NO_SECRETS = new Secrets();

/** A fetched, validated image body (in `body` when fetched into memory, else in the temporary file). */
export interface Fetched {
  finalUrl: URL;
  disposition: string | undefined;
  servedType: string | undefined;
  sniffed: Sniffed;
  bytes: number;
  sha256: string;
  head: Buffer;
  /** The whole body, when fetched without a temporary file. */
  body?: Buffer;
}

const IMAGE_ACCEPT = 'image/avif,image/webp,image/*,*/*;q=0.8';
const PAGE_ACCEPT = 'text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8';
const ROBOTS_ACCEPT = 'text/plain,*/*;q=0.8';

/**
 * One attempt at `url`, for images and pages alike: a slot of the host's limit, a time limit, the redirects (each hop
 * checked), then `read` of the final response. Whatever fails becomes a DownloadError (a time-out `timeout`), or
 * Cancelled when the run is stopping.
 */
async function attempt<T>(url: URL, ctx: FetchContext, accept: string, read: (res: HttpResponse, finalUrl: URL) => Promise<T>): Promise<T> {
  if (ctx.signal.aborted) throw new Cancelled('stopped');
  const host = url.host;
  // The host's slot first, then the run's: an image waiting for its host (paused, backing off, at its limit or
  // rate) holds none of the run's slots, so a slow or angry host never holds up the others.
  let ticket: number;
  try {
    ticket = await ctx.hosts.acquire(host, ctx.signal);
  } catch (error) {
    // A host taken as down: this image fails now, with the code of the host's last failures, and is not retried.
    if (error instanceof HostDown) throw new DownloadError(error.code as ReasonCode, error.message);
    throw error;
  }
  let outcome: Outcome = 'neutral';
  let failure: DownloadError | undefined;
  const once = async (): Promise<T> => {
    if (ctx.signal.aborted) throw new Cancelled('stopped');
    const attempt = new AttemptSignal(ctx.signal, ctx.settings.timeoutMs);
    const { signal } = attempt;
    try {
      const { res, finalUrl } = await follow(url, ctx, signal, accept);
      const result = await read(res, finalUrl);
      outcome = 'good';
      return result;
    } catch (error) {
      if (ctx.signal.aborted) throw new Cancelled('stopped', { cause: error });
      const e = signal.aborted ? new DownloadError('timeout', `No complete response within ${ctx.settings.timeoutMs / 1000} s`, { retryable: true, cause: error }) : toDownloadError(error);
      outcome = outcomeOf(e);
      failure = e;
      throw e;
    } finally {
      attempt.done();
    }
  };
  try {
    return await (ctx.slots ? ctx.slots(once) : once());
  } finally {
    // Any status is an answer (a 500 too); a timeout or a broken connection is not.
    const answered = failure === undefined ? (outcome as Outcome) === 'good' : failure.status !== undefined;
    ctx.hosts.release(host, outcome, ticket, failure?.code, answered);
  }
}

/** What an attempt's failure says about its host's load (see KeyedLimiter). */
function outcomeOf(error: DownloadError): Outcome {
  // The proxy failed, not the host: nothing learnt about the host's load.
  if (error.code === 'proxy') return 'neutral';
  if (error.status === 429 || error.status === 503) return 'rejected';
  if (error.code === 'timeout' || (error.code === 'network' && error.retryable)) return 'trouble';
  // The host answered (a 404, a body that is not an image, too large…): it is not under strain.
  if (error.status !== undefined && error.status < 500) return 'good';
  return error.code === 'not_image' || error.code === 'too_large' ? 'good' : 'neutral';
}

/**
 * The signal of one attempt: aborted by the run's stop signal or after `ms`. Written out rather than
 * `AbortSignal.any([stop, AbortSignal.timeout(ms)])`, which on Node 20 costs a weak reference held by the
 * run-long stop signal per attempt (and a timer that outlives the attempt): measurable at thousands of images/s.
 * A class listening as an object (handleEvent), so that an attempt makes no closures.
 */
class AttemptSignal {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stop: AbortSignal,
    ms: number,
  ) {
    if (stop.aborted) this.controller.abort(stop.reason);
    else stop.addEventListener('abort', this, { once: true });
    this.timer = setTimeout(timeOut, ms, this.controller);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The run stopped. */
  handleEvent(): void {
    this.controller.abort(this.stop.reason);
  }

  done(): void {
    clearTimeout(this.timer);
    this.stop.removeEventListener('abort', this);
  }
}

function timeOut(controller: AbortController): void {
  controller.abort(new DOMException('The attempt timed out', 'TimeoutError'));
}

/** GETs `url`, following redirects by hand so that every hop is checked (scheme, count) and the final URL is known. */
async function follow(start: URL, ctx: FetchContext, signal: AbortSignal, accept: string): Promise<{ res: HttpResponse; finalUrl: URL }> {
  // Userinfo is never sent as such: the caller turned it into ctx.authorization (withCredentials).
  let url = withoutUserinfo(start);
  // curl's rule: the credentials go to the origin they were given for, never to another one a redirect leads to.
  const origin = url.origin;
  const seen = new Set<string>();
  let post = ctx.post;
  for (let hop = 0; ; hop++) {
    if (ctx.settings.blockPrivateNetwork) checkLiteralHost(url);
    const headers: Record<string, string> = { 'user-agent': ctx.settings.userAgent, accept };
    // The same rule for the headers given (-H, --referer, a plugin's), unless the user trusts every host redirected to.
    if (url.origin === origin || ctx.settings.locationTrusted) Object.assign(headers, ctx.settings.headers, ctx.headers);
    if (ctx.authorization !== undefined && url.origin === origin) headers['authorization'] = ctx.authorization;
    // Cookies go hop by hop to the hosts they match, whatever the origin the download started at.
    const jar = ctx.settings.cookieJar;
    const cookie = jar?.getCookieStringSync(url.href);
    if (cookie) headers['cookie'] = cookie;
    const res = await ctx.http.get(url, { signal, headers, ...(post ? { method: 'POST' as const, body: post.body } : {}) });
    if (jar) storeCookies(jar, url, res.headers['set-cookie']);
    if (res.status >= 300 && res.status < 400 && res.status !== 304) {
      const location = header(res.headers, 'location');
      await res.dump();
      if (!location) throw new DownloadError('http_status', `HTTP ${res.status} without a Location`, { status: res.status });
      seen.add(`${post ? 'POST ' : ''}${url.href}`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new DownloadError('invalid_url', `Redirect to an invalid URL: ${redact(location).slice(0, 200)}`, { status: res.status });
      }
      // A Location's own user and password are dropped, never used.
      next = withoutUserinfo(next);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new DownloadError('unsupported_scheme', `Redirect to ${next.protocol} refused`, { status: res.status });
      }
      if (seen.has(`${post && (res.status === 307 || res.status === 308) ? 'POST ' : ''}${next.href}`) || hop + 1 > ctx.settings.maxRedirects) {
        throw new DownloadError('too_many_redirects', `Gave up after ${hop + 1} redirects (last: ${next.href.slice(0, 200)})`, { status: res.status });
      }
      // A page redirected to a path its origin's robots.txt disallows is refused like the page itself would be.
      if (ctx.checkHop) await untilAborted(ctx.checkHop(next), signal);
      url = next;
      // As browsers do: 307 and 308 repeat the POST; 301, 302 and 303 go on with a GET (and no body).
      if (res.status !== 307 && res.status !== 308) post = undefined;
      continue;
    }
    if ((res.status < 200 || res.status >= 300) && !ctx.acceptStatus?.includes(res.status)) {
      await res.dump();
      throw httpError(res);
    }
    if (res.status === 206) {
      // We never send Range: a 206 is a part of the resource (a broken cache or proxy), never the image or page.
      await res.dump();
      throw new DownloadError('http_status', 'HTTP 206 Partial Content to a request without Range: only part of the body', { status: 206 });
    }
    return { res, finalUrl: url };
  }
}

/** `promise`, or the signal's reason as soon as `signal` aborts (the attempt's time limit, the run stopping). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/** A response's Set-Cookie headers, into the run's jar (those it refuses, e.g. for another domain, are dropped). */
function storeCookies(jar: CookieJar, url: URL, setCookie: string | string[] | undefined): void {
  if (setCookie === undefined) return;
  for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) jar.setCookieSync(line, url.href, { ignoreError: true });
}

function withoutUserinfo(url: URL): URL {
  if (url.username === '' && url.password === '') return url;
  const bare = new URL(url.href);
  bare.username = '';
  bare.password = '';
  return bare;
}

function httpError(res: HttpResponse): DownloadError {
  const status = res.status;
  const retryable = status === 408 || status === 429 || status >= 500;
  const retryAfterMs = retryable ? parseRetryAfter(header(res.headers, 'retry-after')) : undefined;
  return new DownloadError('http_status', `HTTP ${status}`, { status, retryable, retryAfterMs });
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

async function readBody(res: HttpResponse, finalUrl: URL, tmpPath: string | undefined, ctx: FetchContext): Promise<Fetched> {
  const { maxBytes } = ctx.settings;
  const robotsTag = res.headers['x-robots-tag'];
  if (robotsTag !== undefined && !ctx.settings.ignoreOptOut) {
    const directive = optOutDirective(robotsTag, ctx.settings.optOutDirectives, userAgentToken(ctx.settings.userAgent));
    if (directive !== undefined) {
      // Decided on the headers: the body is never read (destroying it closes the connection rather than draining it).
      await res.body[Symbol.asyncIterator]().return?.().catch(() => {});
      throw new DownloadError('opted_out', `X-Robots-Tag: ${directive}: the site opts this image out (--ignore-opt-out saves it)`);
    }
  }
  const lengthHeader = header(res.headers, 'content-length');
  const expected = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  if (maxBytes > 0 && expected !== undefined && expected > maxBytes) {
    await res.dump();
    throw new DownloadError('too_large', `Content-Length ${expected} is over --max-bytes ${maxBytes}`);
  }
  // A small body of known length (almost every image) is read in one go, without an iterator step per chunk (a
  // length over --max-bytes was refused above).
  const inMemory = ctx.bodyInMemory ?? IN_MEMORY_LIMIT;
  if (res.whole && expected !== undefined && expected <= inMemory) {
    let body: Buffer;
    try {
      const data = await res.whole();
      body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    } catch (error) {
      throw bodyError(error, expected);
    }
    if (body.length !== expected) throw new DownloadError('truncated', `Got ${body.length} of ${expected} bytes`, { retryable: true });
    const tail = new Tail();
    tail.push(body);
    return settle(res, finalUrl, tmpPath, ctx, { head: body, sniffed: await sniffOrThrow(body), tail, bytes: body.length, sha256: sha256Of(body), onDisk: false });
  }
  // Small bodies (almost all images) are hashed once, whole, at the end; a body that goes to disk is hashed as it streams.
  let hash: Hash | undefined;
  const chunks: Buffer[] = [];
  let buffered = 0;
  let bytes = 0;
  let sniffed: Sniffed | undefined;
  let file: fs.promises.FileHandle | undefined;
  // The body's last bytes, for the completeness check (a large body is on disk by then: not read back).
  const tail = new Tail();
  const iterator = res.body[Symbol.asyncIterator]();
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        step = await iterator.next();
      } catch (error) {
        throw bodyError(error, bytes);
      }
      if (step.done) break;
      const chunk = Buffer.from(step.value.buffer, step.value.byteOffset, step.value.byteLength);
      bytes += chunk.length;
      if (maxBytes > 0 && bytes > maxBytes) throw new DownloadError('too_large', `Body is over --max-bytes ${maxBytes}`);
      tail.push(chunk);
      if (file) {
        hash!.update(chunk);
        await write(file, chunk);
        continue;
      }
      chunks.push(chunk);
      buffered += chunk.length;
      if (!sniffed && buffered >= SNIFF_BYTES) sniffed = await sniffOrThrow(Buffer.concat(chunks));
      // A body announced (Content-Length) over the in-memory limit goes to disk as soon as it is sniffed, rather than
      // after buffering the limit first: at 64 large downloads that buffer is 64 × IN_MEMORY_LIMIT of memory at once.
      const large = buffered > inMemory || (sniffed !== undefined && expected !== undefined && expected > inMemory);
      if (large && tmpPath !== undefined) {
        // Large body: from here on it streams to disk, so memory stays flat whatever the image size.
        file = await openTmp(tmpPath);
        hash = createHash('sha256');
        for (const c of chunks.splice(0)) {
          hash.update(c);
          await write(file, c);
        }
      }
    }
    if (expected !== undefined && bytes !== expected) {
      throw new DownloadError('truncated', `Got ${bytes} of ${expected} bytes`, { retryable: true });
    }
    const head = file ? await readHead(tmpPath!) : Buffer.concat(chunks);
    return await settle(res, finalUrl, tmpPath, ctx, { head, sniffed: sniffed ?? (await sniffOrThrow(head)), tail, bytes, sha256: hash ? hash.digest('hex') : sha256Of(head), onDisk: file !== undefined });
  } catch (error) {
    // Stop reading: destroying the body closes this connection instead of draining a body we refused.
    await iterator.return?.().catch(() => {});
    throw error;
  } finally {
    await file?.close().catch(() => {});
  }
}

/**
 * The end of a body read: its completeness checked, then the Fetched result, with the body in memory (`body`) or in
 * the temporary file (written here unless it streamed there already: `onDisk`). `head` is the whole body unless
 * onDisk (then its first HEAD_KEEP bytes).
 */
async function settle(
  res: HttpResponse,
  finalUrl: URL,
  tmpPath: string | undefined,
  ctx: FetchContext,
  read: { head: Buffer; sniffed: Sniffed; tail: Tail; bytes: number; sha256: string; onDisk: boolean },
): Promise<Fetched> {
  const { head, sniffed, tail, bytes } = read;
  // Content-Length only says the server sent what it announced; the format's end marker says the image is whole.
  const incomplete = incompleteReason(sniffed.ext, head, tail.bytes, bytes, tail.jpegEndSeen);
  if (incomplete) throw new DownloadError('truncated', incomplete, { retryable: true });
  const fetched: Fetched = {
    finalUrl,
    disposition: header(res.headers, 'content-disposition'),
    servedType: header(res.headers, 'content-type'),
    sniffed,
    bytes,
    sha256: read.sha256,
    head: head.length > HEAD_KEEP ? head.subarray(0, HEAD_KEEP) : head,
  };
  // Fetched into memory: the whole body is the result, nothing goes to disk.
  if (tmpPath === undefined) return { ...fetched, body: head };
  // Kept in memory for the caller (image processing reads it from there), which writes it if it needs a file.
  if (!read.onDisk && ctx.bodyInMemory !== undefined) return { ...fetched, body: head };
  if (!read.onDisk) {
    // Written on libuv's threads, not the main one: creating a file waits on the file system's journal, which on a
    // busy or slow disk takes milliseconds during which a synchronous call would stop every download.
    try {
      await writeFileAsync(tmpPath, head);
    } catch (error) {
      throw new DownloadError('write_failed', `Could not write the temporary file: ${(error as Error).message}`, { cause: error });
    }
  }
  return fetched;
}

/** crypto.hash (Node 20.12+, 21.7+): one call for a whole small body, several times cheaper than a Hash object. */
const oneShot = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'hex') => string }).hash;

/** The sha256 of a body held whole in memory, in hex. */
function sha256Of(body: Buffer): string {
  return oneShot ? oneShot('sha256', body, 'hex') : createHash('sha256').update(body).digest('hex');
}

async function write(file: fs.promises.FileHandle, chunk: Buffer): Promise<void> {
  try {
    await file.write(chunk);
  } catch (error) {
    throw new DownloadError('write_failed', `Could not write the temporary file: ${(error as Error).message}`, { cause: error });
  }
}

async function openTmp(tmpPath: string): Promise<fs.promises.FileHandle> {
  try {
    await fs.promises.mkdir(path.dirname(tmpPath), { recursive: true });
    return await fs.promises.open(tmpPath, 'w');
  } catch (error) {
    throw new DownloadError('write_failed', `Could not create ${tmpPath}: ${(error as Error).message}`, { cause: error });
  }
}

async function readHead(file: string): Promise<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const buffer = Buffer.alloc(HEAD_KEEP);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_KEEP, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function bodyError(error: unknown, bytes: number): DownloadError {
  const mapped = toDownloadError(error);
  if (mapped.code === 'network' && bytes > 0) {
    return new DownloadError('truncated', `Connection broke after ${bytes} bytes: ${mapped.message}`, { retryable: true, cause: error });
  }
  return mapped;
}

async function sniffOrThrow(head: Buffer): Promise<Sniffed> {
  const sniffed = await sniffImage(head);
  if (!sniffed) {
    const hint = head.subarray(0, 64).toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 40);
    throw new DownloadError('not_image', `The body is not an image${hint ? ` (starts with "${hint}")` : ''}`);
  }
  return sniffed;
}

export async function dimensions(fetched: Fetched, tmpPath?: string): Promise<{ width: number | null; height: number | null }> {
  try {
    const size = imageSize(fetched.body ?? fetched.head);
    return { width: size.width ?? null, height: size.height ?? null };
  } catch {
    if (fetched.bytes <= fetched.head.length || tmpPath === undefined) return { width: null, height: null };
    try {
      const size = await imageSizeFromFile(tmpPath);
      return { width: size.width ?? null, height: size.height ?? null };
    } catch {
      return { width: null, height: null };
    }
  }
}

/**
 * The safe name for a fetched image: the name asked for, else Content-Disposition, a `filePath`-like parameter
 * or the path of the requested URL, else those of the URL redirected to; the extension comes from the bytes.
 */
export function imageName(requested: URL, fetched: Fetched, asked?: string | null): string {
  const wanted = asked ?? (nameFromResponse(requested, fetched.disposition) || nameFromUrl(fetched.finalUrl));
  // A plugin's name may have folders (`album/x.jpg`); the core checked it has no `..`, no absolute path.
  return (asked?.includes('/') ? safePath : safeName)(wanted, fetched.sniffed, () => `image-${shortHash(requested.href)}`);
}

const templates = new Map<string, NameTemplate>();

/**
 * The image's name under the output folder: with a name template (--name), the template rendered with this image's
 * fields (see docs/plugins.md, "Names"); else imageName.
 */
function nameOf(item: Item, url: URL, fetched: Fetched, settings: DownloadSettings, size: { width: number | null; height: number | null }): string {
  const plain = imageName(url, fetched, item.name);
  if (!settings.nameTemplate) return plain;
  let template = templates.get(settings.nameTemplate);
  if (!template) templates.set(settings.nameTemplate, (template = parseNameTemplate(settings.nameTemplate)));
  const found = item.found ? (JSON.parse(item.found) as FoundOn) : undefined;
  const metadata = item.info ? (JSON.parse(item.info) as unknown) : undefined;
  const builtins: Record<string, unknown> = {
    name: splitExt(plain.slice(plain.lastIndexOf('/') + 1)).stem,
    ext: fetched.sniffed.ext,
    url: item.url,
    host: url.hostname,
    key: item.key,
    index: found?.index,
    label: found?.label,
    'page.url': found?.page.url,
    'page.title': found?.page.title,
    'page.host': found ? new URL(found.page.url).hostname : undefined,
    width: size.width,
    height: size.height,
    sha256: fetched.sha256,
  };
  const lookup = (field: string): unknown => {
    if (Object.hasOwn(builtins, field)) return builtins[field];
    let value: unknown = metadata;
    for (const key of (field.startsWith('metadata.') ? field.slice(9) : field).split('.')) {
      value = typeof value === 'object' && value !== null && Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
    }
    return value;
  };
  return renderName(template, lookup, fetched.sniffed, () => `image-${shortHash(url.href)}`);
}

/** A processed image to save instead of the fetched bytes (see src/process/image.ts), and whether to keep the original. */
export interface SaveAs {
  processed: Processed;
  keepOriginal: boolean;
}

/**
 * Where save() puts an image once its name is claimed: the output folder (folderPlacer), or an object store
 * (src/output/s3.ts). Each never replaces what is there under a name.
 */
export interface Placer {
  /** The name (of those this image may get) of what is there already with exactly its bytes, taken over unwritten. */
  adoptable(ctx: DownloadContext, base: string, url: string, fetched: { bytes: number; sha256: string }): Promise<string | undefined>;
  /**
   * Puts the finished temporary file `source` under `name` (the record's `file`), never replacing anything there: an
   * error with code EEXIST when the name is taken. Other failures: a DownloadError (or an error save() reports as
   * write_failed).
   */
  put(ctx: DownloadContext, source: string, name: string, record: ImageRecord): Promise<void>;
  /**
   * The original as fetched (in `tmpPath`), with --keep-original, under `name`: what is there with the same bytes is
   * this image's; other bytes: an error with code EEXIST and `original: true`. `placed`: where an earlier attempt for
   * this image put it (the output's name was taken since). Returns where it is now.
   */
  putOriginal(ctx: DownloadContext, tmpPath: string, placed: string | undefined, name: string, fetched: Fetched): Promise<string>;
}

/** The output folder: hard links (never replacing a file), folders checked to stay inside it. */
export const folderPlacer: Placer = {
  adoptable: (ctx, base, url, fetched) => sameFileInFolder(ctx, base, url, fetched),
  async put(ctx, source, name) {
    if (name.includes('/')) await folderInside(ctx.outDir, path.dirname(name));
    await placeNoReplace(source, path.join(ctx.outDir, name));
  },
  putOriginal: (ctx, tmpPath, placed, name, fetched) => placeOriginal(tmpPath, placed, name, fetched.sha256, ctx.outDir),
};

/**
 * Names the image, claims the name in the store, then puts the file in place (never replacing one). With `as`, the
 * processed image is what is saved (its name takes the output's extension) and the record keeps the original's
 * figures; with `as.keepOriginal` the original goes to `originals/` under the same stem, before the output is placed.
 * `placer`: where it goes (default: the output folder).
 */
export async function save(item: Item, url: URL, fetched: Fetched, tmpPath: string, ctx: DownloadContext, as?: SaveAs, placer: Placer = folderPlacer): Promise<ImageRecord> {
  const output = as?.processed.output;
  const { width, height } = as ? as.processed.original : await dimensions(fetched, tmpPath);
  const asked = nameOf(item, url, fetched, ctx.settings, { width, height });
  const base = output ? withExtension(asked, output.ext) : asked;
  const record: ImageRecord = {
    url: item.url,
    finalUrl: fetched.finalUrl.href,
    file: base,
    bytes: output ? output.data.length : fetched.bytes,
    sha256: output ? output.sha256 : fetched.sha256,
    contentType: output ? output.mime : fetched.sniffed.mime,
    width: output ? output.width : width,
    height: output ? output.height : height,
  };
  if (item.info) record.metadata = JSON.parse(item.info) as unknown;
  Object.assign(record, sampleFields(item));
  // A plugin's own id of the image (its archive key) is the record's key.
  if (item.key !== undefined) record.key = item.key;
  let source = tmpPath;
  let placed = false;
  let original: string | undefined;
  if (output) {
    const keep = as!.keepOriginal;
    // The original's name follows the name claimed for the output (a getter: the record is serialised at the claim).
    record.original = { bytes: fetched.bytes, sha256: fetched.sha256, contentType: fetched.sniffed.mime, width, height };
    if (keep) Object.defineProperty(record.original, 'file', { enumerable: true, get: () => originalName(record.file, fetched.sniffed.ext) });
    source = `${tmpPath}.out`;
    try {
      await writeFileAsync(source, output.data);
    } catch (error) {
      throw new DownloadError('write_failed', `Could not write the temporary file: ${(error as Error).message}`, { cause: error });
    }
  }
  try {
    // The same bytes already in the folder under the name this image would get (saved by a run whose state was lost
    // in a crash): that file is this image's, and no second copy is written.
    const adoptable = await placer.adoptable(ctx, base, item.url, record);
    for (let attempt = 0; attempt < 3; attempt++) {
      record.file = await ctx.claims.claim(item, base, record, adoptable);
      if (record.file === adoptable) return record;
      try {
        if (record.original?.file !== undefined) original = await placer.putOriginal(ctx, tmpPath, original, record.original.file, fetched);
        await placer.put(ctx, source, record.file, record);
        // The folder's link moved the temporary file into place (linked and unlinked, or renamed): nothing left to
        // remove. An upload (S3) leaves it, and the finally below removes it.
        if (source === tmpPath && placer === folderPlacer) placed = true;
        return record;
      } catch (error) {
        ctx.store.unclaim(item.id);
        // A file of that name appeared since the run looked (not one of its own): it is never replaced; next name.
        if ((error as NodeJS.ErrnoException).code === 'EEXIST' && !(error as { original?: boolean }).original) {
          ctx.claims.taken(record.file);
          continue;
        }
        if (error instanceof DownloadError) throw error;
        throw new DownloadError('write_failed', `Could not save ${record.file}: ${(error as Error).message}`, { cause: error });
      }
    }
    throw new DownloadError('write_failed', `Files kept appearing under the names chosen for this image (last: ${record.file})`);
  } finally {
    if (source !== tmpPath) await fs.promises.rm(source, { force: true }).catch(() => {});
    if (!placed) await fs.promises.rm(tmpPath, { force: true }).catch(() => {});
  }
}

/** `name` with its extension replaced by `ext`. */
function withExtension(name: string, ext: string): string {
  const dot = name.lastIndexOf('.');
  return `${dot > 0 ? name.slice(0, dot) : name}.${ext}`;
}

/** Where --keep-original puts the original of the image saved as `file`: `originals/` + its stem + the original's extension. */
function originalName(file: string, ext: string): string {
  return `originals/${withExtension(file, ext)}`;
}

/**
 * Puts the original (the fetched body in `tmpPath`) under `name` in the folder, never replacing a file: one already
 * there with the same bytes is this image's (a run stopped between the original and the output). `placed` is where
 * an earlier attempt for this image put it (the output's name was taken since): moved to the new name.
 */
async function placeOriginal(tmpPath: string, placed: string | undefined, name: string, sha256: string, outDir: string): Promise<string> {
  const target = path.join(outDir, name);
  if (placed === target) return target;
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  try {
    await placeNoReplace(placed ?? tmpPath, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if ((await sha256File(target)) !== sha256) {
      throw Object.assign(new Error(`${name} is there already, with other bytes (never replaced)`), { code: 'EEXIST', original: true });
    }
  }
  return target;
}

/**
 * Makes the folder `rel` (a safe relative path, see safePath) in `outDir`, and checks that it really is inside it: a
 * folder there that is a symbolic link to elsewhere is refused (`write_failed`), so no image is written outside.
 */
async function folderInside(outDir: string, rel: string): Promise<void> {
  const dir = path.join(outDir, rel);
  await fs.promises.mkdir(dir, { recursive: true });
  const [root, real] = await Promise.all([fs.promises.realpath(outDir), fs.promises.realpath(dir)]);
  if (real !== root && !real.startsWith(root + path.sep)) {
    throw new DownloadError('write_failed', `The folder ${rel} leads out of the output folder (to ${real}); not writing there`);
  }
}

/** link(2) is missing on some file systems (FAT, exFAT, some network and FUSE mounts). */
const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/**
 * Puts the finished temporary file under its final name, never replacing a file there: a hard link fails with
 * EEXIST where rename(2) would silently replace (Node has no renameat2 RENAME_NOREPLACE), so there is no
 * check-then-rename race with another program writing into the folder. Where links are not supported, an
 * exclusive create claims the name, then the rename replaces that empty placeholder.
 */
export async function placeNoReplace(tmpPath: string, final: string): Promise<void> {
  try {
    await linkAsync(tmpPath, final);
  } catch (error) {
    if (!NO_LINK.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    await (await fs.promises.open(final, 'wx')).close();
    await fs.promises.rename(tmpPath, final);
    return;
  }
  // Waited for: the source is not always in the temporary folder (a WebDataset shard's part file, a moved original),
  // and a process that exits first would leave it behind. A failure is harmless: the file is in place.
  await unlinkAsync(tmpPath).catch(() => {});
}

// fs's callback forms for the two calls every saved image makes: fs.promises allocates a stats array (native memory,
// freed only by a garbage collection) for each call, which at thousands of images a second adds up.
function linkAsync(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => fs.link(from, to, (error) => (error ? reject(error) : resolve())));
}

function unlinkAsync(file: string): Promise<void> {
  return new Promise((resolve, reject) => fs.unlink(file, (error) => (error ? reject(error) : resolve())));
}

/** fs.writeFile with callbacks (open, write, close on libuv's threads): lighter than a FileHandle per small body. */
function writeFileAsync(file: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => fs.writeFile(file, data, (error) => (error ? reject(error) : resolve())));
}

/** The name (of those this image may get) of a file already in the folder with exactly its bytes, if any. */
async function sameFileInFolder(ctx: DownloadContext, base: string, url: string, fetched: { bytes: number; sha256: string }): Promise<string | undefined> {
  // A fresh folder (the usual case) has nothing to adopt, and a name in a subfolder is checked with stat below.
  if (!base.includes('/') && !ctx.claims.anyOnDisk) return undefined;
  for (let i = -1; i < 2; i++) {
    const name = i < 0 ? base : disambiguate(base, url, i);
    // Names in folders are not in the folder's listing: stat tells.
    if (!name.includes('/') && !ctx.claims.onDisk(name)) continue;
    const file = path.join(ctx.outDir, name);
    try {
      if ((await fs.promises.stat(file)).size !== fetched.bytes) continue;
      if ((await sha256File(file)) === fetched.sha256) return name;
    } catch {
      // Gone or unreadable: not this image's.
    }
  }
  return undefined;
}
