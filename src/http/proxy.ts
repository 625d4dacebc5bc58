// Proxies (--proxy, $HTTP_PROXY / $HTTPS_PROXY / $NO_PROXY read by the CLI, the library's `proxy` option): which
// proxy a URL goes through, if any. Nothing here reads the environment: src/cli/common.ts does and passes it in.
import { DownloadError, UsageError } from '../errors.ts';
import { REDACTED, redact } from './credentials.ts';

/**
 * The library's `proxy` option: one proxy URL for http and https alike (`'http://proxy.lan:3128'`), or one per
 * scheme of the URL fetched and the hosts that bypass them (NO_PROXY's syntax: `'localhost,.internal.example,
 * 10.0.0.7:8080'`, or `'*'` for every host). An empty string or `false` means none (so `{ http: '' }` turns off the
 * proxy of http URLs).
 */
export type ProxyOption = string | false | { http?: string | false; https?: string | false; noProxy?: string | readonly string[] };

/** A proxy, split as it is used: where to connect, and the Proxy-Authorization for its `user:password@` if any. */
export interface Proxy {
  /** The proxy's origin, without credentials (`http://127.0.0.1:3128`). */
  origin: string;
  /** `Basic …` from the URL's user and password (percent-decoded, as curl does); never printed or stored. */
  authorization: string | undefined;
  /** The proxy's URL as it may be shown: the password as `***`. */
  label: string;
  /** The proxy's URL as given, credentials included (for Bun's fetch `proxy`); never printed or stored. */
  url: string;
}

/** A run's proxies, validated. */
export interface ProxySettings {
  http: Proxy | undefined;
  https: Proxy | undefined;
  /** NO_PROXY entries: a host (`example.com` also matches its subdomains), optionally with a port; `*` bypasses all. */
  noProxy: readonly NoProxyEntry[];
  /** NO_PROXY was `*`: no URL goes through a proxy. */
  bypassAll: boolean;
}

interface NoProxyEntry {
  /** Lower case, without a leading `.` or `*.`; an IPv6 address in brackets as URL.hostname has it. */
  host: string;
  /** 0: any port. */
  port: number;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * Validates the `proxy` option (named `name` in errors) and returns what the HTTP client needs, or undefined when
 * no proxy is set. A proxy URL must be http:// or https:// (a bare `host:port` is taken as http://, as curl does);
 * errors show it with its password as `***`.
 */
export function proxySettings(name: string, value: unknown): ProxySettings | undefined {
  if (value === undefined || value === false || value === '') return undefined;
  let http: unknown;
  let https: unknown;
  let noProxy: unknown;
  if (typeof value === 'string') {
    http = value;
    https = value;
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const unknown = Object.keys(value).filter((k) => !['http', 'https', 'noProxy'].includes(k));
    if (unknown.length > 0) throw new UsageError(`Expected \`${name}\` to have only http, https and noProxy, got ${JSON.stringify(unknown[0])}`);
    ({ http, https, noProxy } = value as Record<string, unknown>);
  } else {
    throw new UsageError(`Expected \`${name}\` to be a proxy URL or { http, https, noProxy }, got ${JSON.stringify(value)}`);
  }
  const settings: ProxySettings = {
    http: proxyUrl(name, http),
    https: proxyUrl(name, https),
    noProxy: [],
    bypassAll: false,
  };
  const entries = noProxyEntries(name, noProxy);
  settings.bypassAll = entries.some((e) => e.host === '*');
  settings.noProxy = entries.filter((e) => e.host !== '*');
  return settings.http === undefined && settings.https === undefined ? undefined : settings;
}

function proxyUrl(name: string, value: unknown): Proxy | undefined {
  if (value === undefined || value === false || value === '') return undefined;
  if (typeof value !== 'string') throw new UsageError(`Expected \`${name}\` to be a proxy URL, got ${JSON.stringify(value)}`);
  const text = value.trim();
  // curl's rule: no scheme means http://.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`Expected \`${name}\` to be a proxy URL like http://proxy.example:3128, got ${JSON.stringify(redact(withScheme))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Expected \`${name}\` to be an http:// or https:// proxy, got ${url.protocol}// (${redact(withScheme)})`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new UsageError(`Expected \`${name}\` to be a proxy's address (scheme, host, port), not a URL with a path: ${JSON.stringify(redact(withScheme))}`);
  }
  const authorization = url.username !== '' || url.password !== '' ? `Basic ${Buffer.from(`${decode(url.username)}:${decode(url.password)}`, 'utf8').toString('base64')}` : undefined;
  const label = new URL(url.href);
  if (label.password !== '') label.password = REDACTED;
  return { origin: url.origin, authorization, label: label.href.replace(/\/$/, ''), url: url.href };
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** NO_PROXY as curl and undici read it: entries split on commas and spaces; `.example.com` and `*.example.com` as `example.com`. */
function noProxyEntries(name: string, value: unknown): NoProxyEntry[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? value.split(/[,\s]+/) : Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
  if (list === undefined) throw new UsageError(`Expected \`${name}\`.noProxy to be a list of hosts like "localhost,.example.com", got ${JSON.stringify(value)}`);
  const entries: NoProxyEntry[] = [];
  for (const raw of list) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') {
      entries.push({ host: '*', port: 0 });
      continue;
    }
    // host:port, [v6]:port, [v6], or a bare host or IPv6 address.
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    let host = m ? m[1]! : entry;
    if (!host.startsWith('[') && host.includes(':')) host = `[${host}]`;
    entries.push({ host: host.replace(/^\*?\./, ''), port: m ? Number(m[2]) : 0 });
  }
  return entries;
}

/** The proxy `url` goes through, or undefined when it goes direct (no proxy for its scheme, or NO_PROXY matches it). */
export function proxyFor(settings: ProxySettings | undefined, url: URL): Proxy | undefined {
  if (settings === undefined || settings.bypassAll) return undefined;
  const proxy = url.protocol === 'https:' ? settings.https : settings.http;
  if (proxy === undefined) return undefined;
  const host = url.hostname.toLowerCase();
  const port = url.port === '' ? (DEFAULT_PORTS[url.protocol] ?? 0) : Number(url.port);
  for (const entry of settings.noProxy) {
    if (entry.port !== 0 && entry.port !== port) continue;
    if (host === entry.host || host.endsWith(`.${entry.host}`)) return undefined;
  }
  return proxy;
}

/** Errors of connecting to a proxy (its own connection: the target's are answered by the proxy as 502s and the like). */
const PROXY_CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * A request through `proxy` failed before any answer from `url`'s host: a DownloadError `proxy` when the proxy is the
 * cause (unreachable: retryable; 407, credentials missing or refused: not; a tunnel it refused: retryable on 5xx and
 * 429), else undefined (the error is the target's, mapped as usual). Messages show the proxy with its password as `***`.
 */
export function proxyError(error: unknown, proxy: Proxy, url: URL): DownloadError | undefined {
  const err = error as { code?: string; message?: string; cause?: { code?: string } };
  const message = redact(String(err?.message ?? error));
  const tunnel = /Proxy response \((\d+)\)/.exec(message);
  const status = tunnel ? Number(tunnel[1]) : /\b407\b/.test(message) && err?.code === 'UND_ERR_INVALID_ARG' ? 407 : undefined;
  if (status === 407) {
    const why = proxy.authorization === undefined ? 'it needs a user and password (http://user:password@host:port)' : 'it refused the user and password given';
    return new DownloadError('proxy', `The proxy ${proxy.label} answered 407 Proxy Authentication Required: ${why}`, { status, cause: error });
  }
  if (status !== undefined) {
    return new DownloadError('proxy', `The proxy ${proxy.label} refused a tunnel to ${url.host}: HTTP ${status}`, { status, retryable: status >= 500 || status === 429, cause: error });
  }
  const code = err?.code ?? err?.cause?.code ?? '';
  // Only failures to connect: a reset is ambiguous (the proxy may pass on its upstream's), so it stays `network`.
  if (!PROXY_CONNECT_CODES.has(code)) return undefined;
  return new DownloadError('proxy', `Could not reach the proxy ${proxy.label}: ${code} (${message})`, { retryable: true, cause: error });
}
