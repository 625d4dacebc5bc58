import { DownloadError } from '../errors.ts';

/** What a password is replaced by wherever a URL is stored or shown. */
export const REDACTED = '***';

/** `scheme:` + `//` (or, for http and https, any run of slashes, as URL parsers accept), then the authority. */
const AUTHORITY = /\b(https?:[/\\]*|[a-z][a-z0-9+.-]*:\/\/)([^\s/\\?#]*)/gi;

/**
 * `text` with the password of every URL in it replaced by `***` (`http://alice:s3cret@host/` →
 * `http://alice:***@host/`); the user name is kept, and nothing else changes (the text is not normalised as a
 * URL would be, so an argv stays as it was typed). For URLs, command lines and messages alike.
 */
/**
 * A command's arguments as they may be shown or kept: URL passwords as `***` (see redact) and the value of every
 * header given with -H / --header as `***` (an API key or token in a header is as secret as a password).
 */
export function redactArgs(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    const previous = argv[i - 1];
    if (previous === '-H' || previous === '--header') return redactHeader(arg);
    const inline = /^(--header=|-H)(.+)$/.exec(arg);
    if (inline && arg !== '-H') return inline[1] + redactHeader(inline[2]!);
    return redact(arg);
  });
}

function redactHeader(header: string): string {
  const colon = header.indexOf(':');
  return colon < 0 ? header : `${header.slice(0, colon)}: ${REDACTED}`;
}

export function redact(text: string): string {
  if (!text.includes('@')) return text;
  return text.replace(AUTHORITY, (whole, scheme: string, authority: string) => {
    // The last `@` ends the userinfo (a password may hold a raw `@`); the first `:` in it starts the password.
    const at = authority.lastIndexOf('@');
    if (at < 0) return whole;
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    if (colon < 0 || colon === userinfo.length - 1) return whole;
    return `${scheme}${userinfo.slice(0, colon + 1)}${REDACTED}${authority.slice(at)}`;
  });
}

/** A URL split into what is sent (no userinfo) and what is kept secret. */
export interface SplitUrl {
  /** The URL to request: without user name and password. */
  url: URL;
  /** The URL to store and show: the password replaced by `***` (the user name kept). */
  redacted: string;
  /** `Basic …` for the user name and password (percent-decoded, as curl does), when the URL has a user or password. */
  authorization: string | undefined;
}

/** Splits the credentials off a URL (curl's rule: `http://user:pass@host/` is sent as Basic auth, never as userinfo). */
export function splitCredentials(input: URL | string): SplitUrl {
  const url = new URL(typeof input === 'string' ? input : input.href);
  if (url.username === '' && url.password === '') return { url, redacted: url.href, authorization: undefined };
  const authorization = basic(url.username, url.password);
  if (url.password !== '') url.password = REDACTED;
  const redacted = url.href;
  url.username = '';
  url.password = '';
  return { url, redacted, authorization };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${decode(user)}:${decode(password)}`, 'utf8').toString('base64')}`;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    // A stray `%` that is not an escape: taken as it is.
    return part;
  }
}

/**
 * The passwords of a run, in memory only: never written anywhere. Stored URLs carry `user:***@`; the real
 * Authorization header is looked up here by scheme, user and host (so every URL of that user on that origin
 * finds it), and a URL whose password was not given in this process fails with `credentials_missing`.
 */
export class Secrets {
  private readonly headers = new Map<string, string>();

  /**
   * Remembers the credentials of `url` (when it has a password) and returns the URL to store and dedupe on: its
   * href with the password replaced by `***`. A URL whose password is already `***` is taken as a redacted one
   * (from a shown command or a record): nothing is remembered, and fetching it needs the password given again.
   */
  add(url: URL): string {
    if (url.password === '' || url.password === REDACTED) return url.href;
    const split = splitCredentials(url);
    this.headers.set(key(url), split.authorization!);
    return split.redacted;
  }

  /**
   * What to request for a stored URL: the URL without userinfo and the Authorization header for it. Throws
   * DownloadError `credentials_missing` when the URL had a password that this process was not given.
   */
  resolve(stored: URL): { url: URL; authorization: string | undefined } {
    if (stored.username === '' && stored.password === '') return { url: stored, authorization: undefined };
    const split = splitCredentials(stored);
    if (stored.password === '') return { url: split.url, authorization: split.authorization };
    const header = this.headers.get(key(stored)) ?? (stored.password === REDACTED ? undefined : split.authorization);
    if (header === undefined) {
      throw new DownloadError('credentials_missing', `${split.redacted} had a password, which imgdl never stores; give the list or URL again to fetch it`);
    }
    return { url: split.url, authorization: header };
  }
}

/** Scheme, user and host: which stored URLs a password belongs to. */
function key(url: URL): string {
  return `${url.protocol}//${url.username}@${url.host}`;
}
