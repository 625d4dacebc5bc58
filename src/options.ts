import bytes from 'bytes';
import { UsageError } from './errors.ts';
import { DEFAULTS, type EngineOptions } from './core/types.ts';
import { loadCookieJar, requestHeaders } from './http/headers.ts';
import { proxySettings, type ProxyOption } from './http/proxy.ts';
import { DEFAULT_MAX_PIXELS, OUTPUT_FORMATS, RESIZE_MODES, type ProcessSpec } from './process/image.ts';

/**
 * Options a user sets (CLI flags or library calls); times in seconds, sizes in bytes or with units ("20MB").
 * A number may also be given as its text ("8", "1.5"), as typed on a command line: it is validated the same way.
 */
export interface DownloadOptions {
  /** Downloads in flight at once. @default 64 */
  concurrency?: number | string;
  /**
   * Downloads in flight at once to one host: the ceiling of its adaptive limit. Each host starts there; its limit
   * drops on 429, 503, timeouts and broken connections from it, and grows back while its answers are good.
   * @default the concurrency (no tighter limit per host)
   */
  perHost?: number | string;
  /** Most requests per second to one host, evenly spaced (e.g. 2, or 0.5 for one every 2 s). @default no cap */
  rate?: number | string;
  /** Retries after the first attempt, for network errors, timeouts, 408, 429 and 5xx. @default 4 */
  retries?: number | string;
  /** First retry delay in milliseconds; doubles each retry, with jitter. @default 500 */
  retryDelay?: number | string;
  /** Time limit for one attempt, in seconds. @default 60 */
  timeout?: number | string;
  /** Longest wait for headers or between body chunks, in seconds. @default 20 */
  stallTimeout?: number | string;
  /** Connect time limit, in seconds. @default 10 */
  connectTimeout?: number | string;
  /** Largest body accepted: bytes, or a size like "100MB"; 0 for no limit. @default "100MB" */
  maxBytes?: number | string;
  /** Redirects followed per download. @default 10 */
  maxRedirects?: number | string;
  /** Longest Retry-After honoured, in seconds; a longer one fails the image. @default 120 */
  maxRetryAfter?: number | string;
  /** The User-Agent header. */
  userAgent?: string;
  /**
   * Refuse every request and redirect to a host that is or resolves to a loopback, private, link-local,
   * unique-local, CGNAT, unspecified, multicast or otherwise non-public address (`private_address`): for a
   * service that fetches URLs its users give. @default false
   */
  blockPrivateNetwork?: boolean;
  /**
   * Save images whose `X-Robots-Tag` opts them out all the same. By default an image with one of `optOutDirectives`
   * (for every user agent, or scoped to ours: `imgdl: noai`) is not saved: `opted_out`, decided on the headers,
   * before the body is read. @default false
   */
  ignoreOptOut?: boolean;
  /**
   * The `X-Robots-Tag` directives that opt an image out (case-insensitive); an array, or a comma list as the CLI
   * passes it (`"noai,noimageai"`). An empty list saves every image. @default ["noai", "noimageai", "none"]
   */
  optOutDirectives?: readonly string[] | string;
  /**
   * Headers sent with every request: an object, or `Name: value` lines as the CLI passes -H. Sent to the origin each
   * download starts at, not after a redirect to another origin (unless `locationTrusted`). Headers imgdl sets or
   * that would break it (Host, Content-Length, Connection, Transfer-Encoding, Accept-Encoding, Range, Cookie,
   * Authorization…) are refused; a User-Agent here is `userAgent` (which wins when both are given).
   * @example { Referer: 'https://example.com/', 'X-Requested-With': 'XMLHttpRequest' }
   */
  headers?: Readonly<Record<string, string>> | readonly string[] | string;
  /** The Referer header, sent like `headers` (and instead of a Referer among them). */
  referer?: string;
  /** Send `headers` and `referer` after a redirect to another origin too (curl's --location-trusted); credentials never. @default false */
  locationTrusted?: boolean;
  /**
   * A Netscape cookies.txt file (as curl, yt-dlp and gallery-dl read, and browser extensions export): each request
   * and redirect gets the cookies whose domain, path and secure flag match it. Set-Cookie answers join them for the
   * rest of the run, in memory only (the file is never written).
   */
  cookies?: string;
  /**
   * A proxy for every request (`'http://proxy.example:3128'`, `'http://user:password@proxy.example:3128'`), or one
   * per scheme and the hosts that bypass them: `{ http, https, noProxy: 'localhost,.internal.example' }` (NO_PROXY's
   * syntax; `'*'` bypasses every host). http:// and https:// proxies; http URLs are sent to the proxy as
   * absolute-URI requests, https URLs through a CONNECT tunnel. The library reads no environment variable: the CLI
   * passes `$HTTP_PROXY`, `$HTTPS_PROXY` and `$NO_PROXY` here. The proxy's password is never stored or shown.
   * @example { proxy: 'http://127.0.0.1:3128' }
   */
  proxy?: ProxyOption;
  /**
   * Resize each image (needs sharp: `npm install sharp`): the size in pixels that `resizeMode` gives meaning to.
   * Images are re-encoded as `format` (JPEG when none is given). @example 256
   */
  resize?: number | string;
  /**
   * How `resize` applies, as img2dataset means it: `keep-ratio` (the shorter side becomes `resize`, aspect kept),
   * `keep-ratio-largest` (the longer side does), `center-crop` (shorter side to `resize`, then the centre square),
   * `border` (fitted inside the square, padded with white to it), `no` (no resizing, only re-encoding).
   * @default "border"
   */
  resizeMode?: string;
  /** Re-encode each image as `jpeg` (also `jpg`), `webp`, `avif` or `png` (needs sharp). */
  format?: string;
  /** Encoder quality, 1-100 (re-encodes as JPEG unless `format` is given). @default sharp's (80 for JPEG and WebP, 50 for AVIF) */
  quality?: number | string;
  /** Images smaller than `WxH` (either side) fail with `too_small` (needs sharp). @example "256x256" */
  minSize?: string;
  /** Images whose longer side is more than this many times the shorter fail with `aspect_ratio` (needs sharp). @example 3 */
  maxAspect?: number | string;
  /** With `resize` or `format`: keep the original too (files: under `originals/`; webdataset: `KEY.orig.EXT`). */
  keepOriginal?: boolean;
  /**
   * `files` (one file per image) or `webdataset` (tar shards of `shardSize` samples: `00000.tar`…, each sample
   * `KEY.EXT` + `KEY.json` + `KEY.txt` when it has a caption, and an index `00000.jsonl` per shard). @default "files"
   */
  layout?: string;
  /** Samples per tar shard with `layout: "webdataset"`. @default 10000 */
  shardSize?: number | string;
  /** Save each distinct image (by the sha256 of its bytes) once: a later copy's record points to the first (`duplicateOf`). @default false */
  dedupe?: boolean;
}

/** An integer option ≥ `min` (a string of digits is accepted, as the CLI passes it); a UsageError naming it otherwise. */
export function integer(name: string, value: unknown, min: number): number {
  if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new UsageError(`Expected \`${name}\` to be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A boolean option; a UsageError naming it otherwise. */
export function flag(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new UsageError(`Expected \`${name}\` to be a boolean, got ${JSON.stringify(value)}`);
  return value;
}

/** X-Robots-Tag directives: an array of names or a comma list, lower-cased; blanks in a comma list are dropped. */
function directives(name: string, value: unknown): string[] {
  const list = typeof value === 'string' ? value.split(',').map((d) => d.trim()).filter((d) => d !== '') : value;
  if (!Array.isArray(list) || !list.every((d) => typeof d === 'string' && /^[A-Za-z0-9_-]+$/.test(d))) {
    throw new UsageError(`Expected \`${name}\` to be a list of X-Robots-Tag directives like noai,noimageai, got ${JSON.stringify(value)}`);
  }
  return [...new Set(list.map((d: string) => d.toLowerCase()))];
}

function positive(name: string, value: unknown): number {
  if (typeof value === 'string' && /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`Expected \`${name}\` to be a number > 0 (requests per second per host), got ${JSON.stringify(value)}`);
  }
  return value;
}

function seconds(name: string, value: unknown): number {
  if (typeof value === 'string' && /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`Expected \`${name}\` to be a number of seconds > 0, got ${JSON.stringify(value)}`);
  }
  return Math.round(value * 1000);
}

function size(name: string, value: unknown): number {
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? bytes.parse(value) : NaN;
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0 || !Number.isInteger(parsed)) {
    throw new UsageError(`Expected \`${name}\` to be a size in bytes (like 20MB) ≥ 0, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

/** One of `choices`, as a UsageError naming the option otherwise. */
function oneOf<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw new UsageError(`Expected \`${name}\` to be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** `WxH` (either may be 0) as two integers. */
function dimensionsOf(name: string, value: unknown): { width: number; height: number } {
  const m = typeof value === 'string' ? /^\s*(\d+)\s*[xX×]\s*(\d+)\s*$/.exec(value) : null;
  if (!m) throw new UsageError(`Expected \`${name}\` to be WIDTHxHEIGHT in pixels like 256x256, got ${JSON.stringify(value)}`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** The processing options (resize… dedupe) into `o`; sharp is needed only when `o.processing` is set. */
function resolveDataset(options: DownloadOptions, o: EngineOptions): void {
  const given = (k: keyof DownloadOptions) => options[k] !== undefined;
  const wantsProcessing = (['resize', 'resizeMode', 'format', 'quality', 'minSize', 'maxAspect', 'keepOriginal'] as const).some(given);
  if (wantsProcessing) {
    const spec: ProcessSpec = { mode: 'border', minWidth: 0, minHeight: 0, keepOriginal: false, maxPixels: DEFAULT_MAX_PIXELS };
    if (given('resize')) spec.resize = integer('resize', options.resize, 1);
    if (given('resizeMode')) spec.mode = oneOf('resizeMode', options.resizeMode, RESIZE_MODES);
    if (given('format')) spec.format = oneOf('format', options.format === 'jpg' ? 'jpeg' : options.format, OUTPUT_FORMATS);
    if (given('quality')) {
      spec.quality = integer('quality', options.quality, 1);
      if (spec.quality > 100) throw new UsageError(`Expected \`quality\` to be an integer from 1 to 100, got ${spec.quality}`);
    }
    if (given('minSize')) ({ width: spec.minWidth, height: spec.minHeight } = dimensionsOf('minSize', options.minSize));
    if (given('maxAspect')) {
      const r = typeof options.maxAspect === 'string' && /^\s*\d+(\.\d*)?\s*$/.test(options.maxAspect) ? Number(options.maxAspect) : options.maxAspect;
      if (typeof r !== 'number' || !Number.isFinite(r) || r < 1) throw new UsageError(`Expected \`maxAspect\` to be a ratio ≥ 1 like 3, got ${JSON.stringify(options.maxAspect)}`);
      spec.maxAspect = r;
    }
    if (given('keepOriginal')) spec.keepOriginal = flag('keepOriginal', options.keepOriginal);
    // Resizing or a quality means re-encoding; JPEG unless a format is given (img2dataset's default too).
    if (spec.format === undefined && ((spec.resize !== undefined && spec.mode !== 'no') || spec.quality !== undefined)) spec.format = 'jpeg';
    if (given('resizeMode') && spec.mode !== 'no' && spec.resize === undefined) throw new UsageError('`resizeMode` needs `resize` (the size in pixels)');
    if (spec.keepOriginal && spec.format === undefined) throw new UsageError('`keepOriginal` needs `resize` or `format` (else the original is what is saved)');
    o.processing = spec;
  }
  if (given('layout')) o.layout = oneOf('layout', options.layout, ['files', 'webdataset'] as const);
  if (given('shardSize')) o.shardSize = integer('shardSize', options.shardSize, 1);
  if (given('dedupe')) o.dedupe = flag('dedupe', options.dedupe);
}

const KNOWN = new Set(['concurrency', 'perHost', 'rate', 'retries', 'retryDelay', 'timeout', 'stallTimeout', 'connectTimeout', 'maxBytes', 'maxRedirects', 'maxRetryAfter', 'userAgent', 'blockPrivateNetwork', 'ignoreOptOut', 'optOutDirectives', 'headers', 'referer', 'locationTrusted', 'cookies', 'proxy', 'resize', 'resizeMode', 'format', 'quality', 'minSize', 'maxAspect', 'keepOriginal', 'layout', 'shardSize', 'dedupe']);

/** Validates user options up front (before any network work) and fills in defaults. */
export function resolveOptions(options: DownloadOptions = {}): EngineOptions {
  if (typeof options !== 'object' || options === null) throw new UsageError('Expected options to be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new UsageError(`Unknown option \`${key}\`; known: ${[...KNOWN].join(', ')}`);
  }
  const o: EngineOptions = { ...DEFAULTS };
  const given = (k: keyof DownloadOptions) => options[k] !== undefined;
  if (given('concurrency')) o.concurrency = integer('concurrency', options.concurrency, 1);
  o.perHost = given('perHost') ? integer('perHost', options.perHost, 1) : Math.max(o.perHost, o.concurrency);
  if (given('rate')) o.rate = positive('rate', options.rate);
  if (given('retries')) o.retries = integer('retries', options.retries, 0);
  if (given('retryDelay')) o.retryDelayMs = integer('retryDelay', options.retryDelay, 0);
  if (given('timeout')) o.timeoutMs = seconds('timeout', options.timeout);
  if (given('stallTimeout')) o.stallTimeoutMs = seconds('stallTimeout', options.stallTimeout);
  if (given('connectTimeout')) o.connectTimeoutMs = seconds('connectTimeout', options.connectTimeout);
  if (given('maxBytes')) o.maxBytes = size('maxBytes', options.maxBytes);
  if (given('maxRedirects')) o.maxRedirects = integer('maxRedirects', options.maxRedirects, 0);
  if (given('maxRetryAfter')) o.maxRetryAfterMs = seconds('maxRetryAfter', options.maxRetryAfter);
  if (given('userAgent')) {
    if (typeof options.userAgent !== 'string' || !options.userAgent) throw new UsageError('Expected `userAgent` to be a non-empty string');
    o.userAgent = options.userAgent;
  }
  if (given('blockPrivateNetwork')) {
    if (typeof options.blockPrivateNetwork !== 'boolean') throw new UsageError(`Expected \`blockPrivateNetwork\` to be a boolean, got ${JSON.stringify(options.blockPrivateNetwork)}`);
    o.blockPrivateNetwork = options.blockPrivateNetwork;
  }
  if (given('ignoreOptOut')) o.ignoreOptOut = flag('ignoreOptOut', options.ignoreOptOut);
  if (given('optOutDirectives')) o.optOutDirectives = directives('optOutDirectives', options.optOutDirectives);
  if (given('headers') || given('referer')) {
    const headers = given('headers') ? requestHeaders('headers', options.headers) : {};
    if (given('referer')) {
      if (typeof options.referer !== 'string' || !URL.canParse(options.referer)) throw new UsageError(`Expected \`referer\` to be an absolute URL, got ${JSON.stringify(options.referer)}`);
      headers['referer'] = requestHeaders('referer', { Referer: options.referer })['referer']!;
    }
    const { 'user-agent': userAgent, ...rest } = headers;
    if (userAgent !== undefined && !given('userAgent') && userAgent !== '') o.userAgent = userAgent;
    o.headers = rest;
  }
  if (given('locationTrusted')) o.locationTrusted = flag('locationTrusted', options.locationTrusted);
  if (given('cookies')) {
    if (typeof options.cookies !== 'string' || options.cookies === '') throw new UsageError(`Expected \`cookies\` to be the path of a cookies.txt file, got ${JSON.stringify(options.cookies)}`);
    o.cookieJar = loadCookieJar(options.cookies);
  }
  if (given('proxy')) o.proxy = proxySettings('proxy', options.proxy);
  resolveDataset(options, o);
  // A stall can never be allowed longer than the whole attempt.
  o.stallTimeoutMs = Math.min(o.stallTimeoutMs, o.timeoutMs);
  return o;
}
