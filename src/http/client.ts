import { Agent, request } from 'undici';

/** A response whose body has not been read yet. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Uint8Array>;
  /** Discards the rest of the body so the connection can be reused. */
  dump(): Promise<void>;
}

export interface HttpRequestOptions {
  signal: AbortSignal;
  headers?: Record<string, string>;
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
}

/** undici with keep-alive connection reuse; one Agent for the whole run. */
export function createUndiciClient(options: HttpClientOptions): HttpClient {
  const agent = new Agent({
    connections: options.connectionsPerHost,
    pipelining: 1,
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: options.stallTimeoutMs,
    bodyTimeout: options.stallTimeoutMs,
    connect: { timeout: options.connectTimeoutMs },
  });
  return {
    async get(url, { signal, headers }) {
      const res = await request(url, { method: 'GET', dispatcher: agent, signal, headers });
      return {
        status: res.statusCode,
        headers: res.headers as Record<string, string | string[] | undefined>,
        body: res.body,
        dump: async () => {
          try {
            await res.body.dump({ limit: 64 * 1024 });
          } catch {
            // Nothing to keep from a body we are discarding.
          }
        },
      };
    },
    async close() {
      await agent.destroy();
    },
  };
}

export function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
