// The one place where text becomes the URL imgdl fetches, stores and dedupes by.
import { DownloadError } from '../errors.ts';
import { REDACTED } from '../http/credentials.ts';

/**
 * Text (trimmed) resolved against `base` if given, without its #fragment (never sent to a server, so URLs that differ
 * only there are one image), any scheme; undefined when it does not parse.
 */
export function resolveUrl(raw: string | URL, base?: string): URL | undefined {
  try {
    const url = new URL(typeof raw === 'string' ? raw.trim() : raw.href, base);
    url.hash = '';
    return url;
  } catch {
    return undefined;
  }
}

/**
 * The one form of a URL that imgdl fetches, stores and dedupes by: resolveUrl's, http or https only (parsing also
 * lower-cases the scheme and host, so `HTTP://A.example/x` and `http://a.example/x` are one).
 * Throws DownloadError `invalid_url` or `unsupported_scheme`.
 */
export function normalizeUrl(raw: string | URL, base?: string): URL {
  const url = resolveUrl(raw, base);
  if (!url) throw new DownloadError('invalid_url', `Not a valid absolute URL: ${JSON.stringify(String(raw).slice(0, 200))}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DownloadError('unsupported_scheme', `Only http and https are fetched, not ${url.protocol}`);
  }
  return url;
}

/** A URL as a run stores and reports it: normalized, its password (if any) as `***`; undefined when not http(s). */
export function storedUrl(raw: string | URL): string | undefined {
  try {
    const url = normalizeUrl(raw);
    if (url.password !== '') url.password = REDACTED;
    return url.href;
  } catch {
    return undefined;
  }
}
