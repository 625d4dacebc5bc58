/**
 * Every way a download can fail, as a stable code. Codes reach the failure report, the summary and the
 * exit status; scripts may match on them, so a code is never renamed once released.
 */
export const REASON_CODES = {
  invalid_url: 'The line (or the row\'s URL column) is not a valid absolute URL, or the row has none.',
  invalid_row: 'A row of an input table could not be read: a JSON Lines line that is not a JSON object, a CSV record with an unclosed quote. Not retried.',
  unsupported_scheme: 'The URL (or a redirect) uses a scheme other than http or https.',
  http_status: 'The server answered with a non-2xx status (see `status`).',
  not_image: 'The body is not an image (checked by magic bytes, not by Content-Type).',
  truncated: 'The body ended before Content-Length bytes arrived, or the connection broke mid-body.',
  timeout: 'Connecting, waiting for headers, a stalled body or the whole download took too long.',
  too_large: 'The body is larger than --max-bytes, or (with image processing) the image declares more pixels than the limit (a pixel bomb).',
  too_many_redirects: 'More redirects than allowed, or a redirect loop.',
  network: 'The connection failed (refused, reset, DNS, TLS).',
  write_failed: 'The file could not be written (disk full, permissions, bad path).',
  bad_name: 'The name asked for (by a plugin) cannot be made safe.',
  plugin_error: 'A plugin handler threw or returned bad data for this page.',
  credentials_missing: 'The URL had a password, which imgdl never stores; give the list or URL again to fetch it.',
  proxy: 'The proxy could not be reached, asked for credentials (407) or refused them, or refused a tunnel (see `status`).',
  private_address: 'The host resolves to a loopback, private or otherwise non-public address and --block-private is on.',
  robots_disallowed: "The site's robots.txt disallows this plugin page for our user agent, or could not be fetched (5xx, 429, unreachable). Not retried.",
  opted_out: 'The image carries an X-Robots-Tag opting it out (noai, noimageai, none by default); nothing was saved. Not retried.',
  decode_failed: 'With image processing on (--resize, --format, --min-size…): the body could not be decoded (corrupt data, or a format sharp cannot read). Not retried.',
  too_small: 'With --min-size: the image is smaller than asked for. Not retried.',
  aspect_ratio: 'With --max-aspect: the ratio of the longer side to the shorter is over the limit. Not retried.',
  upload_failed: 'With an s3:// output: the image could not be uploaded (the store kept failing or refused it, see `status`) after --retries tries; nothing is left under its name. `--retry-failed` tries it again.',
  internal: 'An unexpected error inside imgdl (a bug, not the server or the network); the failure keeps its stack. Not retried.',
} as const;

export type ReasonCode = keyof typeof REASON_CODES;

/** An error with a stable `code`; `retryable` decides whether the retry loop tries again. */
export class DownloadError extends Error {
  override name = 'DownloadError';
  readonly code: ReasonCode;
  readonly status: number | undefined;
  readonly retryable: boolean;
  /** Milliseconds the server asked us to wait (Retry-After), if any. */
  readonly retryAfterMs: number | undefined;
  /** The stack of the error behind an `internal` or `plugin_error` failure, kept in the failure report. */
  readonly detail: string | undefined;

  constructor(
    code: ReasonCode,
    message: string,
    options: { status?: number; retryable?: boolean; retryAfterMs?: number; cause?: unknown; stack?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.detail = options.stack;
  }
}

/** Bad usage: wrong option values, unreadable input. The CLI prints the message and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The `code` of the error a connect-time address check raises for a refused (non-public) address. */
export const PRIVATE_ADDRESS_ERRNO = 'ERR_IMGDL_PRIVATE_ADDRESS';

/** Map anything thrown while downloading to a DownloadError with a stable code. */
export function toDownloadError(error: unknown): DownloadError {
  if (error instanceof DownloadError) return error;
  const err = error as NodeJS.ErrnoException & { code?: string; name?: string };
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = err instanceof Error ? err.message : String(error);
  // Refused by the connect-time address check (src/http/address.ts), whatever wrapped it on the way.
  if (code === PRIVATE_ADDRESS_ERRNO) return new DownloadError('private_address', message, { cause: error });
  if (err?.name === 'TimeoutError' || code.startsWith('UND_ERR_') && code.includes('TIMEOUT')) {
    return new DownloadError('timeout', message, { retryable: true, cause: error });
  }
  if (['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENAMETOOLONG', 'EISDIR', 'ENOTDIR'].includes(code)) {
    return new DownloadError('write_failed', `${code}: ${message}`, { cause: error });
  }
  // A network failure names itself by its `code` (on the error, or on its cause: Node's fetch throws a TypeError
  // whose cause has it). An AbortError that is not ours (our own aborts are settled before this) counts as one, and so
  // does undici's HTTPParserError (a malformed response), which may come without a code.
  const causeCode = (err?.cause as { code?: unknown } | undefined)?.code;
  if (isNetworkCode(code) || (typeof causeCode === 'string' && isNetworkCode(causeCode)) || err?.name === 'AbortError' || err?.name === 'HTTPParserError') {
    return new DownloadError('network', message || 'network error', { retryable: true, cause: error });
  }
  // Anything else (a TypeError, a RangeError, a string thrown) is a bug: retrying it would only repeat it.
  const name = err instanceof Error ? err.name : typeof error;
  return new DownloadError('internal', `${name}: ${message}`, { cause: error, stack: stackOf(error) });
}

/**
 * What a plugin handler threw, as a failure: a DownloadError as it is (with its stack if it has one); anything else
 * is a `plugin_error` that keeps the error's message (and its cause's, after it) and the stack of both.
 */
export function toPluginError(error: unknown): DownloadError {
  if (error instanceof DownloadError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error ? error.cause : undefined;
  const because = cause === undefined ? '' : ` (cause: ${cause instanceof Error ? cause.message : String(cause)})`;
  return new DownloadError('plugin_error', `${message}${because}`, { cause: error, stack: stackOf(error) });
}

/** OpenSSL's certificate verification codes, as Node reports them (e.g. DEPTH_ZERO_SELF_SIGNED_CERT). */
const CERT_CODE = /CERT|CRL_|^UNABLE_TO_|^ERROR_IN_|^INVALID_CA$|^INVALID_PURPOSE$|^PATH_LENGTH_EXCEEDED$|^HOSTNAME_MISMATCH$/;

/**
 * True for the `code` of an error from the network: a system errno (ECONNREFUSED, ECONNRESET, ENOTFOUND, EAI_AGAIN,
 * EPIPE, ETIMEDOUT, EHOSTUNREACH…), undici's (UND_ERR_*) and its HTTP parser's (HPE_*), TLS and certificate codes,
 * and Node's socket ones and a stream closed early. Node's other ERR_* codes (bad arguments and the like) are bugs.
 */
export function isNetworkCode(code: string): boolean {
  // undici's own argument checks fail the same way on every retry: a bug (or an input it refuses), not the network.
  if (code === '' || code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_INVALID_RETURN_VALUE' || code === 'UND_ERR_NOT_SUPPORTED') return false;
  if (/^E[A-Z0-9]+(?:_[A-Z0-9]+)*$/.test(code) && !code.startsWith('ERR_')) return true;
  if (/^(?:UND_ERR_|HPE_|ERR_TLS_|ERR_SSL_|ERR_SOCKET_|ERR_STREAM_PREMATURE_CLOSE$)/.test(code)) return true;
  return CERT_CODE.test(code);
}

const MAX_STACK = 8000;

/** The stack of an error and of its causes (a few levels), for the failure report; undefined for a non-error. */
export function stackOf(error: unknown): string | undefined {
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    parts.push((depth === 0 ? '' : 'Caused by: ') + (e.stack ?? `${e.name}: ${e.message}`));
    e = e.cause;
  }
  if (parts.length === 0) return undefined;
  const stack = parts.join('\n');
  return stack.length > MAX_STACK ? `${stack.slice(0, MAX_STACK)}…` : stack;
}
