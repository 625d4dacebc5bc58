// What a saved image must be: SVGs with an XML prolog are images, a 206 is not a whole body, a body cut short behind
// a smaller Content-Length is caught by its format's end marker, a bug is `internal` (not a network error retried),
// and Retry-After replaces the backoff instead of adding to it. The real CLI against a local origin where it matters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors as undiciErrors } from 'undici';
import { bigPngLength, bigPngStream, gif, jpeg, png, svg, webp } from './helpers/images.ts';
import { startOrigin, type Origin, type RouteHandler } from './helpers/origin.ts';
import { listFiles, readJsonl, runCli, sha256File, tmpDir, type CliResult } from './helpers/cli.ts';
import { incompleteReason, Tail, TAIL_BYTES } from '../src/core/complete.ts';
import { isSvgHead, sniffImage } from '../src/core/sniff.ts';
import { fetchPage, type FetchContext } from '../src/core/download.ts';
import { DEFAULTS, Engine } from '../src/core/engine.ts';
import { DownloadError, REASON_CODES, toDownloadError, toPluginError } from '../src/errors.ts';
import { createHttpClient, type HttpClient } from '../src/http/client.ts';
import { KeyedLimiter } from '../src/http/limits.ts';
import { RunStore } from '../src/storage/state.ts';

interface FailureRecord {
  url: string;
  code: string;
  status: number | null;
  message: string;
  stack?: string;
}

interface Get {
  run: CliResult;
  out: string;
  /** Every file under the output folder, temporary ones included. */
  files: string[];
  failures: FailureRecord[];
  records: Array<{ url: string; file: string; bytes: number; sha256: string; contentType: string }>;
}

/** `imgdl get URLS --out out` in a fresh folder, bounded in time; what it left behind. */
async function get(urls: string[], extra: string[] = []): Promise<Get> {
  const dir = tmpDir('imgdl-validate-');
  const run = await runCli(['get', ...urls, '--out', 'out', '--storage', path.join(dir, 'storage'), '--quiet', ...extra], { cwd: dir, timeoutMs: 60_000 });
  assert.equal(run.timedOut, false, run.stderr);
  const out = path.join(dir, 'out');
  return {
    run,
    out,
    // The run's stats.json and report.html are checked in datasets.test.ts and report.test.ts.
    files: listFiles(out).filter((f) => f !== 'stats.json' && f !== 'report.html'),
    failures: readJsonl<FailureRecord>(path.join(out, 'failures.jsonl')),
    records: readJsonl(path.join(out, 'metadata.jsonl')),
  };
}

/** Sends `body` with the Content-Length and Content-Type given (the length need not be the body's). */
function serve(body: Buffer | (() => Buffer), type: string, length?: number): RouteHandler {
  return (_req, res) => {
    const bytes = typeof body === 'function' ? body() : body;
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': length ?? bytes.length });
    res.end(bytes);
  };
}

/** Requests whose path is exactly `p`. */
function hits(origin: Origin, p: string): number {
  return origin.log.filter((e) => e.path === p).length;
}

function failureOf(g: Get, url: string): FailureRecord | undefined {
  return g.failures.find((f) => f.url === url);
}

async function withOrigin(fn: (origin: Origin) => Promise<void>): Promise<void> {
  const origin = await startOrigin();
  try {
    await fn(origin);
  } finally {
    await origin.close();
  }
}

/** A fetch context over a real HTTP client, for fetchPage, stopped after 15 s whatever happens; `close` ends it. */
function pageContext(settings: Partial<FetchContext['settings']> = {}): FetchContext & { close: () => Promise<void> } {
  const http = createHttpClient({ connectionsPerHost: 4, connectTimeoutMs: 5000, stallTimeoutMs: 5000 });
  const hosts = new KeyedLimiter(4);
  return {
    settings: { ...DEFAULTS, ...settings },
    http,
    hosts,
    signal: AbortSignal.timeout(15_000),
    close: async () => {
      await http.close();
      hosts.close();
    },
  };
}

/** First request: 429 with `Retry-After: seconds`; then `then`. Records when each request came. */
function rateLimitedOnce(times: number[], seconds: string, then: RouteHandler): RouteHandler {
  return (req, res, url) => {
    times.push(Date.now());
    if (times.length > 1) return then(req, res, url);
    res.writeHead(429, { 'Retry-After': seconds, 'Content-Type': 'text/plain', 'Content-Length': 5 });
    res.end('slow\n');
  };
}

const XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n';
const SVG_BODY = svg(4, 4).toString();

// ---------------------------------------------------------------- SVG with a prolog

test('an SVG after a BOM, an XML declaration, processing instructions, comments and a DOCTYPE is an SVG', async () => {
  const prologs = [
    XML_DECL,
    `\uFEFF${XML_DECL}`,
    `${XML_DECL}<?xml-stylesheet href="style.css" type="text/css"?>\n<!-- Generator: Adobe Illustrator 27.0, SVG Export -->\n`,
    `${XML_DECL}<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n`,
    `${XML_DECL}<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "svg11.dtd" [\n  <!ENTITY ns_svg "http://www.w3.org/2000/svg">\n  <!-- a ] and a > in a comment -->\n  <!ENTITY gt "a > b">\n]>\n`,
    '<!-- no declaration --> <!DOCTYPE svg>',
  ];
  for (const prolog of prologs) {
    assert.ok(isSvgHead(prolog + SVG_BODY), JSON.stringify(prolog));
    assert.deepEqual(await sniffImage(Buffer.from(prolog + SVG_BODY)), { ext: 'svg', mime: 'image/svg+xml' }, JSON.stringify(prolog));
  }
  assert.deepEqual(await sniffImage(Buffer.from('<svg:svg xmlns:svg="http://www.w3.org/2000/svg"/>')), { ext: 'svg', mime: 'image/svg+xml' });
});

test('HTML, other XML, a prolog that never ends and a lookalike element are not SVG', async () => {
  const notSvg = [
    '<!DOCTYPE html>\n<html><body><svg></svg></body></html>',
    `${XML_DECL}<rss version="2.0"><channel/></rss>`,
    `${XML_DECL}<!-- <svg> in a comment --><feed/>`,
    `${XML_DECL}<!DOCTYPE svg [ <!ENTITY x "<svg>"> `,
    `${XML_DECL}<!-- ${'x'.repeat(5000)} --><svg/>`,
    '<svgfoo/>',
    'plain text <svg>',
  ];
  for (const text of notSvg) assert.equal(await sniffImage(Buffer.from(text)), undefined, JSON.stringify(text.slice(0, 80)));
});

test('imgdl get saves an XML-declared SVG as .svg, and fails an XML-declared RSS feed as not_image', async () => {
  await withOrigin(async (origin) => {
    const drawing = Buffer.from(`${XML_DECL}<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "svg11.dtd" [ <!ENTITY a "b"> ]>\n${SVG_BODY}`);
    origin.route('/art/drawing', serve(drawing, 'image/svg+xml'));
    origin.route('/art/feed.svg', serve(Buffer.from(`${XML_DECL}<rss version="2.0"/>`), 'image/svg+xml'));
    const g = await get([origin.url('/art/drawing'), origin.url('/art/feed.svg')]);
    assert.equal(g.run.code, 1, g.run.stderr);
    assert.deepEqual(g.files, ['drawing.svg', 'failures.jsonl', 'metadata.jsonl']);
    assert.equal(await sha256File(path.join(g.out, 'drawing.svg')), g.records[0]!.sha256);
    assert.equal(g.records[0]!.contentType, 'image/svg+xml');
    assert.deepEqual(g.failures.map((f) => [f.url, f.code]), [[origin.url('/art/feed.svg'), 'not_image']]);
  });
});

// ---------------------------------------------------------------- 206

test('a 206 Partial Content fails with http_status 206 after one request, not retried', async () => {
  await withOrigin(async (origin) => {
    origin.route('/part/p.png', (_req, res) => {
      const body = png(8, 8, { seed: 'part' });
      res.writeHead(206, { 'Content-Type': 'image/png', 'Content-Length': body.length, 'Content-Range': `bytes 0-${body.length - 1}/${body.length * 2}` });
      res.end(body);
    });
    const g = await get([origin.url('/part/p.png')], ['--retries', '3', '--retry-delay', '20']);
    assert.equal(g.run.code, 1, g.run.stderr);
    assert.equal(hits(origin, '/part/p.png'), 1);
    assert.deepEqual(g.files, ['failures.jsonl']);
    const f = g.failures[0]!;
    assert.deepEqual([f.code, f.status], ['http_status', 206]);
    assert.match(f.message, /206 Partial Content.*without Range/);
  });
});

test('fetchPage fails a 206 page the same way, after one request', async () => {
  await withOrigin(async (origin) => {
    origin.route('/part/page', (_req, res) => {
      res.writeHead(206, { 'Content-Type': 'text/html', 'Content-Length': 6 });
      res.end('<html>');
    });
    const ctx = pageContext({ retries: 3, retryDelayMs: 20 });
    try {
      await assert.rejects(fetchPage(origin.url('/part/page'), ctx), (e: unknown) => {
        assert.ok(e instanceof DownloadError);
        assert.deepEqual([e.code, e.status, e.retryable], ['http_status', 206, false]);
        return true;
      });
      assert.equal(hits(origin, '/part/page'), 1);
    } finally {
      await ctx.close();
    }
  });
});

// ---------------------------------------------------------------- completeness

test('the completeness check: PNG, JPEG, GIF and WebP whole pass, cut ones do not', () => {
  const check = (ext: string, body: Buffer) => incompleteReason(ext, body.subarray(0, 64), body.subarray(Math.max(0, body.length - TAIL_BYTES)), body.length);
  const wholes: Array<[string, Buffer]> = [['png', png(16, 16, { seed: 'a', padTo: 5000 })], ['jpg', jpeg(64, 64)], ['gif', gif(16, 16)], ['webp', webp(16, 16)]];
  for (const [ext, body] of wholes) {
    assert.equal(check(ext, body), undefined, `${ext} whole`);
    assert.equal(check(ext, Buffer.concat([body, Buffer.alloc(40)])), undefined, `${ext} with 40 bytes of padding`);
    assert.match(check(ext, body.subarray(0, body.length - 3)) ?? '', /cut short/, `${ext} cut`);
  }
  assert.match(check('png', png(16, 16, { seed: 'b', padTo: 5000 }).subarray(0, 1000)) ?? '', /no IEND chunk/);
  assert.match(check('jpg', jpeg(64, 64).subarray(0, -2)) ?? '', /no end-of-image marker/);
  assert.match(check('gif', Buffer.concat([gif(4, 4), Buffer.alloc(200)])) ?? '', /no trailer/, 'a GIF trailer far from the end is not taken');
  assert.equal(check('png', Buffer.concat([png(4, 4), Buffer.alloc(TAIL_BYTES - 12)])), undefined, 'PNG padding up to the tail');
  assert.equal(check('bmp', Buffer.from('BM')), undefined, 'formats without an end marker are not checked');
});

test('the rolling tail keeps the last bytes of a body fed in chunks of any size', () => {
  const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 251));
  for (const size of [1, 100, 1023, 1024, 3000, 5000]) {
    const tail = new Tail();
    for (let i = 0; i < body.length; i += size) tail.push(body.subarray(i, i + size));
    assert.deepEqual(tail.bytes, body.subarray(body.length - TAIL_BYTES), `chunks of ${size}`);
  }
  const short = new Tail();
  short.push(Buffer.from('ab'));
  short.push(Buffer.from('c'));
  assert.equal(short.bytes.toString(), 'abc');
});

test('imgdl get fails as truncated a PNG and a JPEG cut behind a smaller Content-Length, retried, with no file and no temp file left', async () => {
  await withOrigin(async (origin) => {
    const small = png(32, 32, { seed: 'small', padTo: 4000 });
    origin.route('/cut/small.png', serve(small.subarray(0, 1000), 'image/png'));
    // Over 512 KB: this one is streamed to the temporary file before it ends.
    const bigLength = bigPngLength(1024 * 1024);
    origin.route('/cut/big.png', (_req, res) => {
      const cut = 700 * 1024;
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': cut });
      let sent = 0;
      const stream = bigPngStream(1024 * 1024);
      stream.on('data', (chunk: Buffer) => {
        const part = chunk.subarray(0, Math.max(0, cut - sent));
        sent += part.length;
        if (part.length > 0) res.write(part);
        if (sent >= cut) {
          stream.destroy();
          res.end();
        }
      });
    });
    const photo = jpeg(256, 256, { seed: 'photo' });
    origin.route('/cut/photo.jpg', serve(photo.subarray(0, photo.length - 2), 'image/jpeg'));
    const g = await get([origin.url('/cut/small.png'), origin.url('/cut/big.png'), origin.url('/cut/photo.jpg')], ['--retries', '1', '--retry-delay', '20']);
    assert.ok(bigLength > 700 * 1024);
    assert.equal(g.run.code, 1, g.run.stderr);
    assert.deepEqual(g.files, ['failures.jsonl'], 'no image, no temp file');
    assert.equal(fs.existsSync(path.join(g.out, '.imgdl-tmp')), false);
    for (const p of ['/cut/small.png', '/cut/big.png', '/cut/photo.jpg']) {
      const f = failureOf(g, origin.url(p));
      assert.equal(f?.code, 'truncated', `${p}: ${JSON.stringify(f)}`);
      assert.equal(hits(origin, p), 2, `${p} is retried (once, with --retries 1)`);
    }
    assert.match(failureOf(g, origin.url('/cut/small.png'))!.message, /IEND/);
    assert.match(failureOf(g, origin.url('/cut/photo.jpg'))!.message, /FF D9/);
  });
});

test('imgdl get fails a GIF without its trailer and a WebP shorter than its RIFF size, and saves whole images with padding after their end', async () => {
  await withOrigin(async (origin) => {
    const anim = gif(16, 16, { seed: 'anim' });
    origin.route('/cut/anim.gif', serve(anim.subarray(0, anim.length - 1), 'image/gif'));
    const pic = webp(16, 16, { seed: 'pic' });
    origin.route('/cut/pic.webp', serve(pic.subarray(0, pic.length - 4), 'image/webp'));
    const padded = Buffer.concat([png(16, 16, { seed: 'padded', padTo: 3000 }), Buffer.alloc(300)]);
    origin.route('/ok/padded.png', serve(padded, 'image/png'));
    const paddedJpeg = Buffer.concat([jpeg(64, 64, { seed: 'pj' }), Buffer.from('\r\n\0\0junk after EOI')]);
    origin.route('/ok/padded.jpg', serve(paddedJpeg, 'image/jpeg'));
    origin.route('/ok/padded.gif', serve(Buffer.concat([gif(8, 8, { seed: 'pg' }), Buffer.alloc(10)]), 'image/gif'));
    origin.route('/ok/padded.webp', serve(Buffer.concat([webp(8, 8, { seed: 'pw' }), Buffer.alloc(10)]), 'image/webp'));
    const big = bigPngLength(800 * 1024);
    origin.route('/ok/big.png', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': big });
      bigPngStream(800 * 1024).pipe(res);
    });
    const urls = ['/cut/anim.gif', '/cut/pic.webp', '/ok/padded.png', '/ok/padded.jpg', '/ok/padded.gif', '/ok/padded.webp', '/ok/big.png'].map((p) => origin.url(p));
    const g = await get(urls, ['--retries', '0']);
    assert.equal(g.run.code, 1, g.run.stderr);
    assert.deepEqual(g.files, ['big.png', 'failures.jsonl', 'metadata.jsonl', 'padded.gif', 'padded.jpg', 'padded.png', 'padded.webp']);
    assert.deepEqual(g.failures.map((f) => [new URL(f.url).pathname, f.code]).sort(), [['/cut/anim.gif', 'truncated'], ['/cut/pic.webp', 'truncated']]);
    assert.equal(fs.statSync(path.join(g.out, 'padded.png')).size, padded.length, 'saved as sent, padding included');
    assert.equal(fs.statSync(path.join(g.out, 'big.png')).size, big);
  });
});

// ---------------------------------------------------------------- Retry-After

test('a 429 with Retry-After: 1 is retried after about 1 s, not 1 s plus the --retry-delay 3000 backoff', async () => {
  await withOrigin(async (origin) => {
    const times: number[] = [];
    origin.route('/rl/wait.png', rateLimitedOnce(times, '1', serve(() => png(8, 8, { seed: 'wait' }), 'image/png')));
    const g = await get([origin.url('/rl/wait.png')], ['--retries', '2', '--retry-delay', '3000']);
    assert.equal(g.run.code, 0, g.run.stderr);
    assert.deepEqual(g.files, ['metadata.jsonl', 'wait.png']);
    assert.equal(times.length, 2);
    const gap = times[1]! - times[0]!;
    assert.ok(gap >= 900, `Retry-After is honoured (${gap} ms)`);
    assert.ok(gap < 2500, `Retry-After replaces the backoff (${gap} ms)`);
  });
});

test('fetchPage: Retry-After replaces the backoff, counts against --retries, and a long one fails with a clear message', { timeout: 20_000 }, async () => {
  await withOrigin(async (origin) => {
    const times: number[] = [];
    origin.route('/rl/page', rateLimitedOnce(times, '1', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': 6 });
      res.end('<html>');
    }));
    let always = 0;
    origin.route('/rl/always', (_req, res) => {
      always++;
      res.writeHead(429, { 'Retry-After': '0', 'Content-Length': 0 });
      res.end();
    });
    origin.route('/rl/long', (_req, res) => {
      res.writeHead(429, { 'Retry-After': '300', 'Content-Length': 0 });
      res.end();
    });
    const ctx = pageContext({ retries: 2, retryDelayMs: 3000, maxRetryAfterMs: 120_000 });
    try {
      const page = await fetchPage(origin.url('/rl/page'), ctx);
      assert.equal(page.body, '<html>');
      assert.equal(times.length, 2);
      assert.ok(times[1]! - times[0]! < 2500, `gap ${times[1]! - times[0]!} ms`);

      await assert.rejects(fetchPage(origin.url('/rl/always'), ctx), { code: 'http_status', status: 429 });
      assert.equal(always, 3, 'retries waited out by Retry-After still count: 1 + 2 requests');

      await assert.rejects(fetchPage(origin.url('/rl/long'), ctx), { code: 'http_status', status: 429, message: 'HTTP 429; Retry-After of 300 s is over the limit' });
      assert.equal(hits(origin, '/rl/long'), 1);
    } finally {
      await ctx.close();
    }
  });
});

// ---------------------------------------------------------------- internal

test('toDownloadError: a bug is internal (not retried, stack kept); network codes stay network and retryable', () => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
  const e = toDownloadError(bug);
  assert.deepEqual([e.code, e.retryable], ['internal', false]);
  assert.match(e.message, /^TypeError: Cannot read properties/);
  assert.equal(e.cause, bug);
  assert.ok(e.detail?.includes(bug.stack!), 'the stack is kept');
  assert.ok('internal' in REASON_CODES);
  assert.equal(toDownloadError('a string').code, 'internal');
  assert.equal(toDownloadError(Object.assign(new Error('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' })).code, 'internal');
  assert.equal(toDownloadError(new undiciErrors.InvalidArgumentError('invalid header')).code, 'internal');

  const networkErrors: unknown[] = [
    ...['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPROTO',
      'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED', 'SELF_SIGNED_CERT_IN_CHAIN',
      'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER', 'UND_ERR_SOCKET', 'HPE_INVALID_CONSTANT'].map((code) => Object.assign(new Error(code), { code })),
    new undiciErrors.SocketError('other side closed'),
    new undiciErrors.ClientClosedError(),
    new undiciErrors.ResponseContentLengthMismatchError(),
    new undiciErrors.HTTPParserError('Response does not match the HTTP/1.1 protocol'),
    new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }),
  ];
  for (const error of networkErrors) {
    const mapped = toDownloadError(error);
    assert.deepEqual([mapped.code, mapped.retryable], ['network', true], String((error as Error).message));
    assert.equal(mapped.detail, undefined);
  }
  assert.equal(toDownloadError(new undiciErrors.HeadersTimeoutError()).code, 'timeout');
  const own = new DownloadError('truncated', 'x', { retryable: true });
  assert.equal(toDownloadError(own), own, 'a DownloadError passes through');
});

test('toPluginError keeps a thrown error\'s message, its cause and both stacks', () => {
  const inner = new RangeError('inner problem');
  const e = toPluginError(new Error('kaboom', { cause: inner }));
  assert.equal(e.code, 'plugin_error');
  assert.equal(e.message, 'kaboom (cause: inner problem)');
  assert.match(e.detail ?? '', /^Error: kaboom\n[\s\S]*Caused by: RangeError: inner problem/);
  assert.equal(toPluginError(new Error('plain')).message, 'plain');
});

test('the run store keeps a failure\'s stack and lists it only where there is one', async () => {
  const store = await RunStore.open(tmpDir('imgdl-validate-store-'));
  try {
    store.addItems([
      { url: 'https://a.example/x', failure: { code: 'plugin_error', message: 'kaboom', stack: 'Error: kaboom\n    at handler' } },
      { url: 'https://a.example/y', failure: { code: 'invalid_url', message: 'nope' } },
      { url: 'https://a.example/z.png' },
    ]);
    const id = store.pendingIds()[0]!;
    store.markFailed(id, { code: 'internal', status: null, message: 'TypeError: x', stack: 'TypeError: x\n    at attempt' });
    assert.deepEqual(store.failures(), [
      { url: 'https://a.example/x', code: 'plugin_error', status: null, message: 'kaboom', stack: 'Error: kaboom\n    at handler' },
      { url: 'https://a.example/y', code: 'invalid_url', status: null, message: 'nope' },
      { url: 'https://a.example/z.png', code: 'internal', status: null, message: 'TypeError: x', stack: 'TypeError: x\n    at attempt' },
    ]);
  } finally {
    store.close();
  }
});

test('a bug while downloading fails the image as internal after one attempt, with its stack in failures.jsonl', async () => {
  const dir = tmpDir('imgdl-validate-internal-');
  let calls = 0;
  const http: HttpClient = {
    get: async () => {
      calls++;
      return (undefined as unknown as { status: number }).status as never;
    },
    close: async () => {},
  };
  const engine = await Engine.open({
    stateDir: path.join(dir, 'state'),
    outDir: path.join(dir, 'out'),
    options: { ...DEFAULTS, retries: 3, retryDelayMs: 20 },
    items: [{ url: 'http://127.0.0.1:9/never.png' }],
    http,
  });
  const summary = await engine.run();
  assert.equal(calls, 1, 'not retried');
  assert.equal(summary.failed, 1);
  const [f] = readJsonl<FailureRecord>(path.join(dir, 'out', 'failures.jsonl'));
  assert.equal(f?.code, 'internal');
  assert.match(f?.message ?? '', /^TypeError: /);
  assert.match(f?.stack ?? '', /TypeError[\s\S]*validate\.test\.ts/);
  assert.deepEqual(listFiles(path.join(dir, 'out')), ['failures.jsonl', 'report.html', 'stats.json']);
});

test('a plugin handler\'s error keeps its message, cause and stack in failures.jsonl (plugin_error)', async () => {
  await withOrigin(async (origin) => {
    origin.route('/page', (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html></html>');
    });
    const { definePlugin, runPlugin } = await import('../src/plugin/index.ts');
    const plugin = definePlugin({
      name: 'thrower',
      description: 'Throws with a cause',
      start: () => [{ url: origin.url('/page'), label: 'page' }],
      handlers: {
        page: () => {
          throw new Error('handler failed', { cause: new Error('root cause') });
        },
      },
    });
    const dir = tmpDir('imgdl-validate-plugin-');
    const out = path.join(dir, 'out');
    const summary = await runPlugin(plugin, { out, storage: path.join(dir, 'storage'), log: { info() {}, warn() {}, debug() {} } });
    assert.equal(summary.failed, 0);
    assert.equal(summary.pagesFailed, 1);
    const [f] = readJsonl<FailureRecord>(path.join(out, 'failures.jsonl'));
    assert.equal(f?.code, 'plugin_error');
    assert.equal(f?.message, 'handler failed (cause: root cause)');
    assert.match(f?.stack ?? '', /^Error: handler failed\n[\s\S]*validate\.test\.ts[\s\S]*Caused by: Error: root cause/);
  });
});

test('a JPEG with data after its end marker (a motion photo carries its video there) is whole; one cut mid-scan is not', () => {
  const image = jpeg(8, 8);
  const eoiAt = image.lastIndexOf(Buffer.from([0xff, 0xd9]));
  // A large JPEG: its main image ends past the first 64 KiB (thumbnail segments come before), then 200 KB of video.
  const big = Buffer.concat([image.subarray(0, eoiAt), Buffer.alloc(70 * 1024, 0x11), Buffer.from([0xff, 0xd9]), Buffer.alloc(200 * 1024, 0x22)]);
  const feed = (body: Buffer, size: number) => {
    const tail = new Tail();
    for (let i = 0; i < body.length; i += size) tail.push(body.subarray(i, i + size));
    return tail;
  };
  for (const size of [1, 7, 1000, 65_536, 1 << 20]) {
    const tail = feed(big, size);
    assert.equal(incompleteReason('jpg', big.subarray(0, 64), tail.bytes, big.length, tail.jpegEndSeen), undefined, `chunks of ${size}`);
    const cut = big.subarray(0, eoiAt + 60 * 1024);
    const cutTail = feed(cut, size);
    assert.match(incompleteReason('jpg', cut.subarray(0, 64), cutTail.bytes, cut.length, cutTail.jpegEndSeen) ?? '', /cut short/, `cut, chunks of ${size}`);
  }
});
