// Request headers a user or a plugin adds (-H, --referer, ImageRequest.headers), and cookies from a cookies.txt file.
import fs from 'node:fs';
import { Cookie, CookieJar } from 'tough-cookie';
import { UsageError } from '../errors.ts';

/**
 * Headers imgdl sets or that would break how it reads responses: refused when given. Host, lengths and framing are
 * the HTTP client's; Accept-Encoding would ask for compressed bodies imgdl does not decode; Range would make a 206,
 * which imgdl refuses; Cookie comes from --cookies; Authorization from a URL's `user:password@` (per origin).
 */
const FORBIDDEN = new Set([
  'host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer',
  'proxy-connection', 'proxy-authorization', 'expect', 'accept-encoding', 'range', 'if-range', 'cookie', 'authorization',
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** One header checked: its name lower-cased; a UsageError naming `option` when it is forbidden or malformed. */
function checkHeader(option: string, name: string, value: unknown): [string, string] {
  if (!TOKEN.test(name)) throw new UsageError(`Expected \`${option}\` header names to be HTTP tokens, got ${JSON.stringify(name)}`);
  const lower = name.toLowerCase();
  if (FORBIDDEN.has(lower)) {
    const hint = lower === 'cookie' ? ' (use `cookies`)' : lower === 'authorization' ? ' (put user:password@ in the URL)' : '';
    throw new UsageError(`Expected \`${option}\` not to set ${name}: imgdl sets it${hint}`);
  }
  if (typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new UsageError(`Expected \`${option}\` ${name} to be a one-line string, got ${JSON.stringify(value)}`);
  return [lower, value.trim()];
}

/**
 * Headers as given: an object `{ Name: value }`, or `Name: value` lines (an array, or one string, as the CLI passes
 * -H); names lower-cased. A UsageError naming `option` for a forbidden or malformed one.
 */
export function requestHeaders(option: string, value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (lines) {
    for (const line of lines) {
      const m = typeof line === 'string' ? /^([^:\s]+)\s*:(.*)$/.exec(line) : null;
      if (!m) throw new UsageError(`Expected \`${option}\` to be 'Name: value', got ${JSON.stringify(line)}`);
      const [name, v] = checkHeader(option, m[1]!, m[2]!);
      out[name] = v;
    }
    return out;
  }
  if (typeof value !== 'object' || value === null) throw new UsageError(`Expected \`${option}\` to be an object of header names and values, got ${JSON.stringify(value)}`);
  for (const [name, v] of Object.entries(value)) {
    const [lower, checked] = checkHeader(option, name, v);
    out[lower] = checked;
  }
  return out;
}

/**
 * Cookies of a Netscape cookies.txt file (curl, wget, yt-dlp, gallery-dl, browser extensions): one cookie a line,
 * seven tab-separated fields (domain, include-subdomains, path, secure, expiry, name, value); `#HttpOnly_` before the
 * domain marks an HttpOnly cookie; other lines starting with `#`, and blank lines, are skipped. Expiry 0 is a session
 * cookie. Throws a UsageError naming `option` for a line that is not a cookie.
 */
export function parseCookiesTxt(text: string, option = 'cookies'): Cookie[] {
  const cookies: Cookie[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    let line = raw;
    let httpOnly = false;
    if (line.startsWith('#HttpOnly_')) {
      httpOnly = true;
      line = line.slice('#HttpOnly_'.length);
    } else if (line.startsWith('#') || line.trim() === '') return;
    const fields = line.split('\t');
    if (fields.length < 7) throw new UsageError(`Expected \`${option}\` to be a Netscape cookies.txt file: line ${i + 1} has ${fields.length} tab-separated fields, not 7`);
    const [domainField, subdomains, path, secure, expiry, name, ...rest] = fields as [string, string, string, string, string, string, ...string[]];
    const expires = Number(expiry);
    if (!/^\d+$/.test(expiry.trim())) throw new UsageError(`Expected \`${option}\`: line ${i + 1} has expiry ${JSON.stringify(expiry)}, not a number of seconds`);
    const domain = domainField.trim().toLowerCase().replace(/^\./, '');
    if (domain === '') throw new UsageError(`Expected \`${option}\`: line ${i + 1} has no domain`);
    cookies.push(
      new Cookie({
        key: name,
        value: rest.join('\t'),
        domain,
        // FALSE: that host only (tough-cookie's hostOnly); TRUE: it and its subdomains.
        hostOnly: subdomains.trim().toUpperCase() !== 'TRUE',
        path: path || '/',
        secure: secure.trim().toUpperCase() === 'TRUE',
        httpOnly,
        expires: expires === 0 ? 'Infinity' : new Date(expires * 1000),
      }),
    );
  });
  return cookies;
}

/**
 * `jar` (or a new one) with cookies given as `Cookie:` lines per URL (`{ 'https://example.org/': 'a=1; b=2' }`, a
 * plugin's `http.cookies`). A UsageError naming `where` when one cannot be set.
 */
export function addCookieLines(jar: CookieJar | undefined, cookies: Readonly<Record<string, string>>, where: string): CookieJar {
  const into = jar ?? new CookieJar(undefined, { rejectPublicSuffixes: false, allowSpecialUseDomain: true });
  for (const [url, line] of Object.entries(cookies)) {
    for (const pair of line.split(';').map((p) => p.trim()).filter(Boolean)) {
      try {
        into.setCookieSync(pair, url);
      } catch (error) {
        throw new UsageError(`${where}[${JSON.stringify(url)}]: ${(error as Error).message}`);
      }
    }
  }
  return into;
}

/** A cookie jar holding the cookies of a cookies.txt file (expired ones left out). A UsageError when unreadable. */
export function loadCookieJar(file: string, option = 'cookies'): CookieJar {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`Cannot read the \`${option}\` file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const jar = new CookieJar(undefined, { rejectPublicSuffixes: false, allowSpecialUseDomain: true });
  const now = Date.now();
  for (const cookie of parseCookiesTxt(text, option)) {
    if (cookie.expires instanceof Date && cookie.expires.getTime() <= now) continue;
    const scheme = cookie.secure ? 'https' : 'http';
    jar.setCookieSync(cookie, `${scheme}://${cookie.domain}${cookie.path ?? '/'}`, { ignoreError: false });
  }
  return jar;
}
