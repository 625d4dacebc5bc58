// A fixture HTTP origin on 127.0.0.1 that misbehaves on demand. See startOrigin() for the routes.
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { closeServer } from '../../src/testing/server.ts';
import { bigPngLength, bigPngStream, contentTypeFor, imageFor, png } from './images.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface LogEntry {
  method: string;
  /** URL path as received (still percent-encoded), without the query string. */
  path: string;
  /** Query string including the leading `?`, or ''. */
  search: string;
  /** Status code once headers are sent; 0 before that (or if they never were). */
  status: number;
  /** The whole response was written and ended. */
  completed: boolean;
  /** Body bytes handed to the socket (0 for HEAD). */
  bytes: number;
}

export interface Origin {
  /** e.g. `http://127.0.0.1:12345` */
  readonly base: string;
  /** `base + path` verbatim (no normalisation, so `..` and odd escapes reach the server as written). */
  url(path: string): string;
  readonly log: LogEntry[];
  /** Requests whose path (plus query string) starts with `prefix`. */
  count(prefix: string): number;
  /** Add a handler for an exact path; it wins over the built-in routes. */
  route(path: string, handler: RouteHandler): void;
  /** Closes the server, destroys open sockets, clears timers. Never hangs. */
  close(): Promise<void>;
}

/** Upper bound for every stall or delay, so nothing here can keep a test run alive for long. */
export const MAX_STALL_MS = 30_000;

const LOGIN_PAGE = `<!doctype html>
<html><head><title>Sign in</title></head>
<body><form action="/login" method="post">
<input name="user"><input name="password" type="password"><button>Sign in</button>
</form></body></html>
`;

/**
 * Built-in routes (all accept a query string; every response first waits `latencyMs + ?delay=`):
 * - `/img/<name>.<ext>?w=&h=&pad=&ct=&seed=`  valid image for ext (default 8x8). `pad` pads PNGs to
 *   N bytes, `ct` overrides Content-Type (`ct=` empty: no Content-Type). Bytes are seeded with the
 *   path, so different paths give different bytes; pass the same `seed` to get identical files.
 * - `/noext/<anything>`  PNG, image/png (same query options as /img).
 * - `/download?filePath=/a/b/x.jpg`  image for filePath's extension (JPEG if none/unknown).
 * - `/status/<code>`  that status with a short text body.
 * - `/flaky/<key>.png?fails=1&status=503`  first `fails` requests per path get `status`, then a PNG.
 * - `/ratelimit/<key>.png?fails=1&retryAfter=1&retryAfterDate=1`  first `fails` requests get 429 with
 *   Retry-After in seconds (or an HTTP-date with retryAfterDate=1), then a PNG.
 * - `/html-as-png/<name>.png`  an HTML login page served as image/png.
 * - `/wrongtype/<name>.png`  PNG bytes served as text/html.
 * - `/truncated/<name>.png?pad=4096`  full Content-Length, half the body, then the socket is destroyed.
 * - `/stall/<name>.png?pad=4096&stallMs=30000`  headers + first 100 bytes, then nothing until the
 *   client gives up or stallMs (<= 30 s) passes, when the socket is destroyed.
 * - `/stall-headers/<name>.png?stallMs=30000`  no headers at all, same bound.
 * - `/redirect/<n>/<rest>`  302 to `/redirect/<n-1>/<rest>`, and n=0 to `/<rest>` (so n+1 hops);
 *   the query string is kept. `/redirect-loop/<name>.png`  302 to itself.
 * - `/cd/<anything>?name=<value>&star=1`  PNG with `Content-Disposition: attachment; filename="<value>"`
 *   (non-ASCII sent as raw UTF-8 bytes, like many real servers), or with star=1
 *   `attachment; filename*=UTF-8''<percent-encoded>`. No `name`: just `attachment`.
 * - `/big/<name>.png?mb=20`  a streamed PNG of mb MiB with Content-Length.
 * - anything else: 404.
 */
export async function startOrigin(opts: { latencyMs?: number } = {}): Promise<Origin> {
  const latencyMs = opts.latencyMs ?? 0;
  const routes = new Map<string, RouteHandler>();
  const counters = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const log: LogEntry[] = [];
  let closing: Promise<void> | undefined;

  /** Runs fn after ms, unless the response closes or the origin shuts down first. */
  function after(res: ServerResponse, ms: number, fn: () => void): void {
    if (closing) return;
    const cancel = (): void => {
      clearTimeout(timer);
      timers.delete(timer);
    };
    const timer = setTimeout(() => {
      cancel();
      res.off('close', cancel);
      fn();
    }, Math.min(Math.max(0, ms), MAX_STALL_MS));
    timers.add(timer);
    res.once('close', cancel);
  }

  // A cancelled wait never resolves: the handler chain is simply dropped.
  const wait = (res: ServerResponse, ms: number): Promise<void> =>
    new Promise((resolve) => (ms > 0 ? after(res, ms, resolve) : resolve()));

  const server = http.createServer((req, res) => {
    if (closing) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', base);
    const entry: LogEntry = {
      method: req.method ?? 'GET',
      path: url.pathname,
      search: url.search,
      status: 0,
      completed: false,
      bytes: 0,
    };
    log.push(entry);
    track(res, entry, req.method === 'HEAD');

    wait(res, latencyMs + num(url, 'delay', 0))
      .then(() => {
        const custom = routes.get(url.pathname);
        return custom ? custom(req, res, url) : builtin(req, res, url);
      })
      .catch((err: unknown) => {
        if (res.headersSent) res.destroy();
        else send(res, 500, `origin error: ${String(err)}`);
      });
  });

  async function builtin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const parts = url.pathname.split('/').slice(1);
    const kind = parts[0] ?? '';
    const rest = parts.slice(1).join('/');
    const q = url.searchParams;

    switch (kind) {
      case 'img':
        return sendImage(res, url, path.posix.extname(rest));
      case 'noext':
        return sendImage(res, url, 'png');
      case 'download': {
        const filePath = q.get('filePath') ?? '';
        const ext = path.posix.extname(filePath);
        return sendImage(res, url, imageFor(ext, 1, 1) ? ext : 'jpg', filePath);
      }
      case 'status': {
        const code = Number(rest);
        if (!Number.isInteger(code) || code < 200 || code > 999) return send(res, 404, 'bad status code');
        return send(res, code, `${code} ${http.STATUS_CODES[code] ?? ''}\n`);
      }
      case 'flaky':
      case 'ratelimit': {
        const n = (counters.get(url.pathname) ?? 0) + 1;
        counters.set(url.pathname, n);
        if (n > num(url, 'fails', 1)) return sendImage(res, url, 'png');
        if (kind === 'flaky') {
          const status = num(url, 'status', 503);
          return send(res, status, `${status} ${http.STATUS_CODES[status] ?? ''}\n`);
        }
        const seconds = num(url, 'retryAfter', 1);
        const retryAfter =
          q.get('retryAfterDate') === '1' ? new Date(Date.now() + seconds * 1000).toUTCString() : String(seconds);
        return send(res, 429, 'slow down\n', { 'Retry-After': retryAfter });
      }
      case 'html-as-png':
        return send(res, 200, LOGIN_PAGE, { 'Content-Type': 'image/png' });
      case 'wrongtype':
        return send(res, 200, png(8, 8, { seed: url.pathname }), { 'Content-Type': 'text/html; charset=utf-8' });
      case 'truncated': {
        const body = png(num(url, 'w', 8), num(url, 'h', 8), { padTo: num(url, 'pad', 4096), seed: url.pathname });
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': body.length });
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
        return;
      }
      case 'stall': {
        const body = png(num(url, 'w', 8), num(url, 'h', 8), { padTo: num(url, 'pad', 4096), seed: url.pathname });
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': body.length });
        res.write(body.subarray(0, 100));
        after(res, num(url, 'stallMs', MAX_STALL_MS), () => res.socket?.destroy());
        return;
      }
      case 'stall-headers':
        after(res, num(url, 'stallMs', MAX_STALL_MS), () => res.socket?.destroy());
        return;
      case 'redirect': {
        const hops = Number(parts[1]);
        const target = parts.slice(2).join('/');
        if (!Number.isInteger(hops) || hops < 0) return send(res, 404, 'bad redirect count');
        const location = (hops > 0 ? `/redirect/${hops - 1}/${target}` : `/${target}`) + url.search;
        return send(res, 302, `redirecting to ${location}\n`, { Location: location });
      }
      case 'redirect-loop':
        return send(res, 302, 'round and round\n', { Location: url.pathname + url.search });
      case 'cd': {
        const name = q.get('name');
        let disposition = 'attachment';
        if (name !== null && q.get('star') === '1') disposition += `; filename*=UTF-8''${rfc5987(name)}`;
        // Node writes header strings as latin1, so this puts the raw UTF-8 bytes on the wire.
        else if (name !== null) disposition += `; filename="${Buffer.from(name).toString('latin1')}"`;
        // setHeader, not writeHead's object: Node 20's writeHead rejects bytes >= 0x80 after a Content-Length.
        res.setHeader('Content-Disposition', disposition);
        return send(res, 200, png(8, 8, { seed: url.pathname + url.search }), { 'Content-Type': 'image/png' });
      }
      case 'big': {
        const total = Math.round(num(url, 'mb', 20) * 1024 * 1024);
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': bigPngLength(total) });
        if (req.method === 'HEAD') return void res.end();
        pipeline(bigPngStream(total), res, () => {}); // errors = client went away
        return;
      }
      default:
        return send(res, 404, 'not found\n');
    }
  }

  server.keepAliveTimeout = 3000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    base,
    log,
    url: (p) => base + (p.startsWith('/') ? p : `/${p}`),
    count: (prefix) => log.filter((e) => (e.path + e.search).startsWith(prefix)).length,
    route: (p, handler) => void routes.set(p, handler),
    close() {
      if (!closing) {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        closing = closeServer(server, sockets);
      }
      return closing;
    },
  };
}

// ---------------------------------------------------------------- helpers

function num(url: URL, key: string, fallback: number): number {
  const raw = url.searchParams.get(key);
  const n = raw === null || raw === '' ? NaN : Number(raw);
  return Number.isFinite(n) ? n : fallback;
}

function send(res: ServerResponse, status: number, body: Buffer | string, headers: OutgoingHttpHeaders = {}): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  // 1xx/204/304 must not carry a body or Content-Length.
  const bodyless = status < 200 || status === 204 || status === 304;
  const all: OutgoingHttpHeaders = {
    ...(bodyless ? {} : { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': buf.length }),
    ...headers,
  };
  for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k]; // undefined = omit
  res.writeHead(status, all);
  res.end(bodyless ? undefined : buf);
}

function sendImage(res: ServerResponse, url: URL, ext: string, seed = url.pathname): void {
  const q = url.searchParams;
  const w = num(url, 'w', 8);
  const h = num(url, 'h', 8);
  const imgOpts = { seed: q.get('seed') ?? seed };
  let body: Buffer | undefined;
  try {
    body = ext.replace(/^\./, '').toLowerCase() === 'png'
      ? png(w, h, { ...imgOpts, padTo: num(url, 'pad', 0) })
      : imageFor(ext, w, h, imgOpts);
  } catch (err) {
    return send(res, 400, `bad image request: ${String(err)}\n`);
  }
  if (!body) return send(res, 404, `no fixture for extension "${ext}"\n`);
  const ct = q.get('ct') ?? contentTypeFor(ext);
  send(res, 200, body, { 'Content-Type': ct === '' ? undefined : ct });
}

function rfc5987(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Records status, completion and body bytes of a response in its log entry. */
function track(res: ServerResponse, entry: LogEntry, isHead: boolean): void {
  const count = (chunk: unknown): void => {
    if (isHead || chunk == null || typeof chunk === 'function') return;
    entry.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Uint8Array).byteLength;
  };
  type Fn = (...args: unknown[]) => unknown;
  const writeHead = res.writeHead as unknown as Fn;
  const write = res.write as unknown as Fn;
  const end = res.end as unknown as Fn;
  // Node's implicit-header path also goes through this.writeHead, so this sees every status.
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    entry.status = Number(args[0]);
    return writeHead.apply(this, args);
  } as unknown as typeof res.writeHead;
  res.write = function (this: ServerResponse, ...args: unknown[]) {
    count(args[0]);
    return write.apply(this, args);
  } as unknown as typeof res.write;
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    count(args[0]);
    return end.apply(this, args);
  } as unknown as typeof res.end;
  res.once('finish', () => {
    entry.completed = true;
  });
}
