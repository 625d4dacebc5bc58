import { DownloadError, UsageError } from '../errors.ts';
import { runtime } from '../runtime.ts';
import { checkResolvedHost } from './address.ts';
import type { HttpClient, HttpClientOptions, HttpResponse } from './client.ts';
import { proxyError, proxyFor } from './proxy.ts';

/** Body bytes read (at most) to let a connection be reused when a body is discarded; past this it is cancelled. */
const DUMP_LIMIT = 64 * 1024;
/** An origin that answered within this long is taken to be reachable (no connect phase to allow for). */
const RECENT_MS = 60_000;

export interface FetchClientOptions extends HttpClientOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * An HttpClient over the runtime's own `fetch`, for runtimes where undici's Agent is missing or a stub (Bun's
 * `undici` module). What undici's Agent does for the engine is done here by hand:
 * - redirects are not followed (`redirect: 'manual'`: the engine follows them hop by hop);
 * - the headers timeout and the gap between two body chunks (`stallTimeoutMs`) are timers that abort the request;
 * - fetch has no connect timeout and does not say when it has connected, so the wait for headers is bounded by
 *   `connectTimeoutMs + stallTimeoutMs` (the longest undici can wait: connect, then headers) for an origin that
 *   has not answered lately, and by `stallTimeoutMs` alone (from the request's start) for one that has, or that
 *   answers another request meanwhile (its connection is most likely kept alive, and a new one to a host that
 *   answers connects in a round trip);
 * - `Accept-Encoding: identity` is asked for (as undici's `request` does by default), so Content-Length is the
 *   length of the bytes read; if a server compresses anyway, fetch decodes the body and the Content-Length
 *   header (of the encoded bytes) is dropped;
 * - `dump()` drains up to 64 KB (so the connection can be reused) and cancels the rest;
 * - connection pooling and keep-alive are the runtime's; the engine's per-host limiter bounds connections per host.
 * Errors are DownloadErrors (retryable): `timeout` for the timers, `truncated` when the body breaks off (after the
 * headers), `network` for everything else.
 */
export function createFetchClient(options: FetchClientOptions): HttpClient {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  // Bun's fetch takes a `proxy` per request; Node's and Deno's do not (there the undici client is used).
  if (options.proxy !== undefined && runtime !== 'bun') throw new UsageError(`A proxy needs the undici HTTP client on ${runtime} (not http: 'fetch' / IMGDL_HTTP=fetch)`);
  const stallMs = options.stallTimeoutMs;
  const origins = new Origins();
  // Requests in flight, so that close() can abort them.
  const open = new Set<AbortController>();

  return {
    async get(url, { signal, headers, method = 'GET', body: sent }) {
      if (signal.aborted) throw signal.reason;
      // fetch cannot be given a lookup, so the host is resolved and checked here, before each hop. This leaves a
      // DNS-rebinding window: fetch resolves the name again, and a hostile DNS server may answer differently then.
      // (The undici client has none: it checks the very addresses it connects to.)
      const proxy = proxyFor(options.proxy, url);
      if (options.blockPrivateNetwork) await checkResolvedHost(url, { strict: proxy !== undefined });
      const controller = new AbortController();
      open.add(controller);
      const forward = (): void => controller.abort(signal.reason);
      signal.addEventListener('abort', forward, { once: true });
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', forward);
        open.delete(controller);
      };

      const headersWait = new HeadersWait(origins.get(url.origin), options.connectTimeoutMs, stallMs, (error) => controller.abort(error));
      let res: Response;
      try {
        res = await fetchImpl(url.href, {
          method,
          ...(sent !== undefined ? { body: sent } : {}),
          redirect: 'manual',
          signal: controller.signal,
          headers: { 'accept-encoding': 'identity', ...headers },
          ...(proxy === undefined ? {} : { proxy: proxy.url }),
        } as RequestInit);
      } catch (error) {
        finish();
        if (signal.aborted) throw signal.reason;
        throw headersWait.timedOut ?? (proxy === undefined ? undefined : proxyError(error, proxy, url)) ?? networkError(error);
      } finally {
        headersWait.end();
      }
      origins.answered(url.origin);
      if (proxy !== undefined && res.status === 407) {
        // Bun's fetch hands the proxy's 407 on as the response: the proxy's refusal, not the host's.
        finish();
        await res.body?.cancel().catch(() => {});
        throw proxyError(new Error('Proxy response (407)'), proxy, url)!;
      }

      const body = res.body;
      const reader = body?.getReader();
      let stalled: DownloadError | undefined;
      let received = 0;
      let released = false;
      const release = async (): Promise<void> => {
        if (released) return;
        released = true;
        finish();
        await reader?.cancel().catch(() => {});
      };

      /** One chunk, or undefined at the end; a gap longer than stallMs aborts the request. */
      const read = async (): Promise<Uint8Array | undefined> => {
        if (!reader || released) return undefined;
        const stall = setTimeout(() => {
          stalled = new DownloadError('timeout', `The body stalled for over ${stallMs / 1000} s`, { retryable: true });
          controller.abort(stalled);
        }, stallMs);
        try {
          const step = await reader.read();
          if (step.done) {
            released = true;
            finish();
            return undefined;
          }
          received += step.value.byteLength;
          return step.value;
        } catch (error) {
          await release();
          if (signal.aborted) throw signal.reason;
          // The headers came, so the response was cut short (Bun may drop the bytes that came before the break).
          throw stalled ?? truncated(networkError(error), received);
        } finally {
          clearTimeout(stall);
        }
      };

      const iterable: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]: () => ({
          async next(): Promise<IteratorResult<Uint8Array>> {
            const value = await read();
            return value === undefined ? { done: true, value: undefined } : { done: false, value };
          },
          async return(): Promise<IteratorResult<Uint8Array>> {
            // Stopped reading early (a refused body): close this connection rather than drain it.
            await release();
            controller.abort();
            return { done: true, value: undefined };
          },
        }),
      };
      if (!reader) finish();

      return {
        status: res.status,
        headers: toRecord(res.headers),
        body: iterable,
        dump: async () => {
          try {
            let drained = 0;
            for (let chunk = await read(); chunk !== undefined; chunk = await read()) {
              drained += chunk.byteLength;
              if (drained > DUMP_LIMIT) break;
            }
          } catch {
            // Nothing to keep from a body we are discarding.
          }
          if (!released) {
            await release();
            controller.abort();
          }
        },
      } satisfies HttpResponse;
    },
    async close() {
      for (const controller of open) controller.abort();
      open.clear();
    },
  };
}

/** Which origins answered lately, and the requests waiting for headers from each. */
class Origins {
  private readonly states = new Map<string, OriginState>();

  get(origin: string): OriginState {
    let state = this.states.get(origin);
    if (!state) {
      // Bounded: forget idle origins when there are many.
      if (this.states.size >= 10_000) for (const [key, s] of this.states) if (s.waiting.size === 0) this.states.delete(key);
      state = { answeredAt: 0, waiting: new Set() };
      this.states.set(origin, state);
    }
    return state;
  }

  answered(origin: string): void {
    const state = this.get(origin);
    state.answeredAt = Date.now();
    for (const wait of state.waiting) wait.reachable();
  }
}

interface OriginState {
  answeredAt: number;
  waiting: Set<HeadersWait>;
}

/**
 * The wait for one response's headers. Up to `connectMs + stallMs` while the origin is not known to be
 * reachable; `stallMs` from the start once it is (it answered lately, or answers another request meanwhile).
 */
class HeadersWait {
  timedOut: DownloadError | undefined;
  private readonly started = Date.now();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly origin: OriginState,
    connectMs: number,
    private readonly stallMs: number,
    private readonly abort: (error: DownloadError) => void,
  ) {
    const known = Date.now() - origin.answeredAt < RECENT_MS;
    this.arm(known ? stallMs : connectMs + stallMs);
    if (!known) origin.waiting.add(this);
  }

  /** The origin answered another request: it is reachable, so only the stall limit applies from now on. */
  reachable(): void {
    this.origin.waiting.delete(this);
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.arm(Math.max(0, this.started + this.stallMs - Date.now()));
  }

  end(): void {
    this.origin.waiting.delete(this);
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.origin.waiting.delete(this);
      this.timedOut = new DownloadError('timeout', `No response headers within ${Math.round((Date.now() - this.started) / 100) / 10} s`, { retryable: true });
      this.abort(this.timedOut);
    }, ms);
  }
}

/** fetch's Headers as the engine sees headers: lower-case names; `set-cookie` as a list. */
function toRecord(headers: Headers): HttpResponse['headers'] {
  const out: HttpResponse['headers'] = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  const cookies = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [];
  if (cookies.length > 0) out['set-cookie'] = cookies;
  const encoding = out['content-encoding'];
  if (typeof encoding === 'string' && encoding.trim() !== '' && encoding.trim().toLowerCase() !== 'identity') {
    // fetch decoded the body: the Content-Length of the encoded bytes does not describe what is read.
    delete out['content-length'];
  }
  return out;
}

function truncated(error: DownloadError, received: number): DownloadError {
  return new DownloadError('truncated', `Connection broke after ${received} bytes of the body: ${error.message}`, { retryable: true, cause: error.cause });
}

/** Whatever fetch threw (TypeError "fetch failed" with a cause on Node, other shapes on Bun and Deno). */
function networkError(error: unknown): DownloadError {
  if (error instanceof DownloadError) return error;
  const err = error as Error & { cause?: { code?: string; message?: string }; code?: string };
  const cause = err?.cause;
  const detail = [err?.message, cause?.code ?? err?.code, cause?.message].filter((s) => typeof s === 'string' && s !== '');
  return new DownloadError('network', [...new Set(detail)].join(': ') || 'network error', { retryable: true, cause: error });
}
