// imgdl/testing: test a plugin offline, against pages saved from its site, served by a local origin on 127.0.0.1.
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { gif, jpeg, png, webp } from './images.ts';
import { closeServer } from './server.ts';

/** One request the fixture site answered. */
export interface FixtureRequest {
  method: string;
  /** The path, still percent-encoded, without the query string. */
  path: string;
  /** The query string with its `?`, or ''. */
  search: string;
  /** The status it was answered with. */
  status: number;
  headers: IncomingMessage['headers'];
  /** The request body (POST and PUT), as text. */
  body: string;
}

/** A route of your own: return true when it answered, false to fall through to the files. */
export type FixtureRoute = (req: IncomingMessage & { body: string }, res: ServerResponse, url: URL) => boolean | void | Promise<boolean | void>;

export interface FixtureSiteOptions {
  /**
   * Text replaced in every text file served (HTML, JSON, XML, CSS, JS, TXT), e.g. `{ 'https://www.example.org': '{{origin}}' }`
   * is not needed if the saved pages already use `{{origin}}`. `{{origin}}` always becomes this site's base URL
   * (`http://127.0.0.1:PORT`); give more placeholders here (`{ '{{cdn}}': other.base }`).
   */
  replace?: Record<string, string>;
  /** Routes tried before the files, by exact path (`/api/items`); for answers that depend on the query or body. */
  routes?: Record<string, FixtureRoute>;
  /**
   * Images with no file in the folder are made up (a valid image of the path's type: PNG, GIF, JPEG or WebP, distinct
   * per path), so saved pages need not come with their images. False: a missing file is a 404 like any other.
   * @default true
   */
  images?: boolean;
}

export interface FixtureSite {
  /** e.g. `http://127.0.0.1:41234` */
  readonly base: string;
  /** `base + path`. */
  url(path: string): string;
  /** Every request answered, in order. */
  readonly requests: FixtureRequest[];
  /** Requests whose path plus query string starts with `prefix`. */
  count(prefix: string): number;
  /** Adds or replaces a route (see `routes`). */
  route(path: string, handler: FixtureRoute): void;
  /** Stops the server and closes every connection. Never hangs. */
  close(): Promise<void>;
}

const TEXT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css',
  '.js': 'text/javascript',
};
const IMAGE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.gif': 'image/gif',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.svg': 'image/svg+xml',
};

/** The made-up image for a path: a valid image of its extension's type (PNG for other types), distinct per path. */
export function fixtureImage(urlPath: string): { body: Buffer; type: string } {
  const ext = path.posix.extname(urlPath).toLowerCase();
  const seed = urlPath;
  switch (ext) {
    case '.gif':
      return { body: gif(8, 8, { seed }), type: 'image/gif' };
    case '.jpg':
    case '.jpeg':
      return { body: jpeg(8, 8, { seed }), type: 'image/jpeg' };
    case '.webp':
      return { body: webp(8, 8, { seed }), type: 'image/webp' };
    default:
      return { body: png(8, 8, { seed }), type: 'image/png' };
  }
}

/**
 * Serves a folder of saved pages on 127.0.0.1 (a free port): `/a/b.html` is `<dir>/a/b.html`; `/a/` and `/` are their
 * `index.html`; `/a/b` is `<dir>/a/b`, else `<dir>/a/b.html`, else `<dir>/a/b.json`; a query string is ignored (give a
 * route for pages that depend on it). In text files `{{origin}}` becomes the site's base URL, so saved pages can link
 * to it. An image path with no file gets a made-up valid image. Nothing outside `dir` is ever served.
 *
 * @example
 * const site = await startFixtureSite('test/fixtures/my-site');
 * try {
 *   const summary = await runPlugin(plugin, { options: { startUrl: site.url('/photos/') }, out, storage });
 *   assert.equal(summary.downloaded, 12);
 * } finally {
 *   await site.close();
 * }
 */
export async function startFixtureSite(dir: string, options: FixtureSiteOptions = {}): Promise<FixtureSite> {
  const root = fs.realpathSync(dir);
  const routes = new Map<string, FixtureRoute>(Object.entries(options.routes ?? {}));
  const requests: FixtureRequest[] = [];
  const sockets = new Set<Socket>();
  let base = '';

  const fileFor = (urlPath: string): string | undefined => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return undefined;
    }
    if (decoded.includes('\0')) return undefined;
    const rel = path.posix.normalize(decoded).replace(/^\/+/, '');
    const candidates = decoded.endsWith('/') ? [path.join(rel, 'index.html')] : [rel, `${rel}.html`, `${rel}.json`, path.join(rel, 'index.html')];
    for (const c of candidates) {
      const file = path.resolve(root, c);
      if (file !== root && !file.startsWith(root + path.sep)) return undefined;
      try {
        const real = fs.realpathSync(file);
        if (!real.startsWith(root + path.sep)) continue;
        if (fs.statSync(real).isFile()) return real;
      } catch {
        // Not there: next candidate.
      }
    }
    return undefined;
  };

  const send = (res: ServerResponse, status: number, body: Buffer | string, type: string) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', base);
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: FixtureRequest = { method: req.method ?? 'GET', path: url.pathname, search: url.search, status: 0, headers: req.headers, body };
      requests.push(entry);
      const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
      res.writeHead = ((...args: unknown[]) => {
        entry.status = Number(args[0]);
        return writeHead(...args);
      }) as typeof res.writeHead;
      void (async () => {
        const route = routes.get(url.pathname);
        if (route && (await route(Object.assign(req, { body }), res, url)) !== false) return;
        const file = fileFor(url.pathname);
        const ext = path.extname(file ?? url.pathname).toLowerCase();
        if (file && TEXT_TYPES[ext]) {
          let text = fs.readFileSync(file, 'utf8');
          for (const [from, to] of Object.entries({ ...options.replace, '{{origin}}': base })) text = text.split(from).join(to);
          return send(res, 200, text, TEXT_TYPES[ext]);
        }
        if (file) return send(res, 200, fs.readFileSync(file), IMAGE_TYPES[ext] ?? 'application/octet-stream');
        if (IMAGE_TYPES[ext] && ext !== '.avif' && ext !== '.svg' && options.images !== false) {
          const { body: image, type } = fixtureImage(url.pathname);
          return send(res, 200, image, type);
        }
        send(res, 404, 'not found\n', 'text/plain; charset=utf-8');
      })().catch((error: unknown) => {
        if (!res.headersSent) send(res, 500, `fixture site error: ${String(error)}`, 'text/plain; charset=utf-8');
        else res.destroy();
      });
    });
  });
  server.keepAliveTimeout = 2000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;
  return {
    base,
    url: (p) => base + (p.startsWith('/') ? p : `/${p}`),
    requests,
    count: (prefix) => requests.filter((r) => (r.path + r.search).startsWith(prefix)).length,
    route: (p, handler) => void routes.set(p, handler),
    close() {
      closing ??= closeServer(server, sockets);
      return closing;
    },
  };
}
