import * as undici from 'undici';
import { UsageError } from '../errors.ts';
import { runtime, runtimeVersion } from '../runtime.ts';
import { checkResolvedHost, guardedLookup } from './address.ts';
import { createFetchClient } from './fetch-client.ts';
import { proxyError, proxyFor, type Proxy, type ProxySettings } from './proxy.ts';

type Undici = typeof undici;

/** A response whose body has not been read yet. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Uint8Array>;
  /**
   * The whole body in one read, for a small body of known length (no iterator step per chunk); instead of `body`,
   * never both. Clients without a cheaper way leave it out.
   */
  whole?(): Promise<Uint8Array>;
  /** Discards the rest of the body so the connection can be reused. */
  dump(): Promise<void>;
}

export interface HttpRequestOptions {
  signal: AbortSignal;
  headers?: Record<string, string>;
  /** GET unless said (plugin API pages may POST). */
  method?: 'GET' | 'POST';
  /** The request body (a POST's). */
  body?: string;
}

/** The one thing the engine asks of HTTP: GET a URL without following redirects (the engine does that). */
export interface HttpClient {
  get(url: URL, options: HttpRequestOptions): Promise<HttpResponse>;
  close(): Promise<void>;
}

export interface HttpClientOptions {
  /** Connections kept per origin (the per-host limit). */
  connectionsPerHost: number;
  connectTimeoutMs: number;
  /** Longest wait for headers, and longest gap between body chunks. */
  stallTimeoutMs: number;
  /** Connect only to public addresses (host names are checked as they are resolved, at connect time). */
  blockPrivateNetwork?: boolean;
  /** Which client; default: httpClientKind()'s pick for this runtime. */
  kind?: HttpClientKind;
  /** Proxies (see src/http/proxy.ts); none: every request goes direct. */
  proxy?: ProxySettings;
}

/** Which HTTP client a run uses: `undici` (an Agent with a keep-alive pool) or `fetch` (the runtime's own). */
export type HttpClientKind = 'undici' | 'fetch';

/**
 * True when undici's Agent really is undici's: a dispatcher that honours its pool and timeout options and can be
 * destroyed. Bun's built-in `undici` module, for one, has `request` but an Agent stub without `dispatch` or
 * `destroy` whose options are ignored.
 */
export function undiciUsable(mod: Partial<Undici> | undefined = undici): boolean {
  const proto = (mod?.Agent as { prototype?: Record<string, unknown> } | undefined)?.prototype;
  return proto !== undefined && ['dispatch', 'request', 'destroy', 'close'].every((k) => typeof proto[k] === 'function');
}

/**
 * The client to use: `wanted` when it says one (`fetch` or `undici`, in any case), else undici where its Agent is
 * usable (Node, and Deno with npm undici: faster), else one over the runtime's fetch (Bun). No environment variable
 * is read here: the CLI passes `$IMGDL_HTTP` as `wanted` (with `source` naming it in the error).
 */
export function httpClientKind(wanted?: string, source = `http: '${wanted}'`): HttpClientKind {
  const kind = wanted?.trim().toLowerCase();
  if (kind === 'fetch') return 'fetch';
  if (kind === 'undici' && !undiciUsable()) throw new Error(`${source}, but undici's Agent is not usable on ${runtime} ${runtimeVersion}`);
  return undiciUsable() ? 'undici' : 'fetch';
}

/** An HTTP client for a run: of `options.kind`, else of the kind httpClientKind() picks for this runtime. */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  return httpClientKind(options.kind) === 'undici' ? undiciClient(undici, options) : createFetchClient(options);
}

/** The `http` option of get() and runPlugin(): `undici`, `fetch` or not given; a UsageError otherwise. */
export function httpOption(value: unknown): HttpClientKind | undefined {
  if (value === undefined || value === 'undici' || value === 'fetch') return value;
  throw new UsageError(`Expected \`http\` to be "undici" or "fetch", got ${JSON.stringify(value)}`);
}

/** The client options of a run with these (resolved) engine options, as the engine sets them. */
export function runClientOptions(
  options: { perHost: number; connectTimeoutMs: number; stallTimeoutMs: number; blockPrivateNetwork: boolean; proxy?: ProxySettings },
  kind?: HttpClientKind,
): HttpClientOptions {
  return {
    connectionsPerHost: options.perHost,
    connectTimeoutMs: options.connectTimeoutMs,
    stallTimeoutMs: options.stallTimeoutMs,
    blockPrivateNetwork: options.blockPrivateNetwork,
    kind,
    proxy: options.proxy,
  };
}

/** undici with keep-alive connection reuse; one Agent for the whole run (and one ProxyAgent per proxy). */
function undiciClient({ Agent, Pool, ProxyAgent }: Undici, options: HttpClientOptions): HttpClient {
  const pool = {
    pipelining: 1,
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: options.stallTimeoutMs,
    bodyTimeout: options.stallTimeoutMs,
  };
  const agent = new Agent({
    connections: options.connectionsPerHost,
    ...pool,
    // With blockPrivateNetwork, the lookup of every connection drops non-public addresses: the address checked is
    // the address connected to. (Literal IP hosts are never looked up: follow() checks those before each hop.)
    connect: { timeout: options.connectTimeoutMs, ...(options.blockPrivateNetwork ? { lookup: guardedLookup } : {}) },
  });
  // One dispatcher per proxy (http and https URLs may share one). http URLs are sent to the proxy as absolute-URI
  // requests (`GET http://host/x.png`), as curl does, not tunnelled: proxies such as Squid refuse CONNECT to port 80
  // by default. https URLs go through a CONNECT tunnel. The proxy's pools get the run's stall limits (undici's
  // default factory would not), and the connection to the proxy its connect timeout.
  const proxies = new Map<Proxy, undici.Dispatcher>();
  const dispatchers: undici.Dispatcher[] = [agent];
  for (const proxy of [options.proxy?.http, options.proxy?.https]) {
    if (proxy === undefined || proxies.has(proxy)) continue;
    const same = [...proxies.keys()].find((p) => p.origin === proxy.origin && p.authorization === proxy.authorization);
    const dispatcher = same
      ? proxies.get(same)!
      : new ProxyAgent({
          uri: proxy.origin,
          ...(proxy.authorization === undefined ? {} : { token: proxy.authorization }),
          proxyTunnel: false,
          connections: options.connectionsPerHost,
          ...pool,
          proxyTls: { timeout: options.connectTimeoutMs },
          factory: (origin: string | URL, opts: object) => new Pool(origin, { ...pool, ...opts }),
        });
    if (!same) dispatchers.push(dispatcher);
    proxies.set(proxy, dispatcher);
  }
  return {
    async get(url, { signal, headers, method = 'GET', body }) {
      const proxy = proxyFor(options.proxy, url);
      // Through a proxy, the proxy resolves the name and connects, so the address cannot be checked at connect time:
      // the name is resolved here and refused unless every address is public, and a name that does not resolve here
      // is refused too (the proxy might resolve it to an internal address). See checkResolvedHost.
      if (proxy !== undefined && options.blockPrivateNetwork) await checkResolvedHost(url, { strict: true });
      let res: undici.Dispatcher.ResponseData;
      try {
        // Dispatcher's own request() (undici's `request(url, { dispatcher })` is a wrapper that parses the URL again).
        const dispatcher = proxy === undefined ? agent : proxies.get(proxy)!;
        res = await dispatcher.request({ origin: url.origin, path: url.pathname + url.search, method, signal, headers, ...(body !== undefined ? { body } : {}) });
      } catch (error) {
        throw proxy === undefined || signal.aborted ? error : (proxyError(error, proxy, url) ?? error);
      }
      return new UndiciResponse(res);
    },
    async close() {
      await Promise.all(dispatchers.map((d) => d.destroy()));
    },
  };
}

/** A response of undici's: a class rather than an object of closures made for every response (thousands a second). */
class UndiciResponse implements HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: undici.Dispatcher.ResponseData['body'];

  constructor(res: undici.Dispatcher.ResponseData) {
    this.status = res.statusCode;
    this.headers = res.headers as Record<string, string | string[] | undefined>;
    this.body = res.body;
  }

  async whole(): Promise<Uint8Array> {
    return new Uint8Array(await this.body.arrayBuffer());
  }

  async dump(): Promise<void> {
    try {
      await this.body.dump({ limit: 64 * 1024 });
    } catch {
      // Nothing to keep from a body we are discarding.
    }
  }
}

export function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
