/**
 * Every way a download can fail, as a stable code. Codes reach the failure report, the summary and the
 * exit status; scripts may match on them, so a code is never renamed once released.
 */
export const REASON_CODES = {
  invalid_url: 'The line is not a valid absolute URL.',
  unsupported_scheme: 'The URL (or a redirect) uses a scheme other than http or https.',
  http_status: 'The server answered with a non-2xx status (see `status`).',
  not_image: 'The body is not an image (checked by magic bytes, not by Content-Type).',
  truncated: 'The body ended before Content-Length bytes arrived, or the connection broke mid-body.',
  timeout: 'Connecting, waiting for headers, a stalled body or the whole download took too long.',
  too_large: 'The body is larger than --max-bytes.',
  too_many_redirects: 'More redirects than allowed, or a redirect loop.',
  network: 'The connection failed (refused, reset, DNS, TLS).',
  write_failed: 'The file could not be written (disk full, permissions, bad path).',
  bad_name: 'The name asked for (by a plugin) cannot be made safe.',
  plugin_error: 'A plugin handler threw or returned bad data for this page.',
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

  constructor(
    code: ReasonCode,
    message: string,
    options: { status?: number; retryable?: boolean; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Bad usage: wrong option values, unreadable input. The CLI prints the message and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Map anything thrown while downloading to a DownloadError with a stable code. */
export function toDownloadError(error: unknown): DownloadError {
  if (error instanceof DownloadError) return error;
  const err = error as NodeJS.ErrnoException & { code?: string; name?: string };
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = err instanceof Error ? err.message : String(error);
  if (err?.name === 'TimeoutError' || code.startsWith('UND_ERR_') && code.includes('TIMEOUT')) {
    return new DownloadError('timeout', message, { retryable: true, cause: error });
  }
  if (['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENAMETOOLONG', 'EISDIR', 'ENOTDIR'].includes(code)) {
    return new DownloadError('write_failed', `${code}: ${message}`, { cause: error });
  }
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'UND_ERR_CLOSED') {
    return new DownloadError('network', message, { retryable: true, cause: error });
  }
  return new DownloadError('network', message || 'network error', { retryable: true, cause: error });
}
