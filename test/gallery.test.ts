// The gallery plugin: images of every kind a page shows them, pagination, limits on where it goes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startOrigin, type Origin, type RouteHandler } from './helpers/origin.ts';
import { runPlugin } from '../src/plugin/index.ts';
import { largestCandidate, parseSrcset } from '../src/plugin/html.ts';
import gallery from '../plugins/gallery.ts';

const html = (title: string, body: string, head = ''): RouteHandler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>${title}</title>${head}</head><body>${body}</body></html>`);
};

let origin: Origin;
let other: Origin;
let dir: string;

before(async () => {
  [origin, other] = await Promise.all([startOrigin(), startOrigin()]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-gallery-'));
  // /img/<name>.<ext> is a built-in route: a valid image of that type.
  origin.route('/g/1', html('Page one', `
    <img src="/img/a.png" alt="A">
    <img src="/img/a.png" alt="A again">
    <img src="/img/b-small.png" srcset="/img/b-400.png 400w, /img/b-1200.png 1200w, /img/b-800.png 800w" alt="B">
    <img src="/img/c1.png" srcset="/img/c1.png 1x, /img/c2.png 2x" alt="C">
    <picture>
      <source type="image/webp" srcset="/img/p-480.webp 480w, /img/p-960.webp 960w">
      <source srcset="/img/p-800.jpg 800w">
      <img src="/img/p.jpg" alt="P">
    </picture>
    <img src="../img/relative.gif" alt="R">
    <img src="data:image/png;base64,iVBORw0KGgo=" alt="placeholder">
    <a href="/img/full.jpg#zoom" title="Full size">full</a>
    <a href="/about.html">about</a>
    <a rel="next" href="/g/2">next</a>`,
  '<meta property="og:image" content="/img/og.jpg"><meta property="og:image:alt" content="Cover">'));
  origin.route('/g/2', html('Page two', '<img src="/img/d.png" alt="D">', '<link rel="next" href="/g/3">'));
  origin.route('/g/3', html('Page three', `<img src="/img/e.png" alt="E"><a rel="prefetch next" href="${other.url('/g/4')}">next</a>`));
  other.route('/g/4', html('Elsewhere', '<img src="/img/f.png" alt="F">'));
  origin.route('/h/1', html('Custom', '<img src="/img/h1.png"><nav class="pager"><a href="/h/2">more</a></nav>'));
  origin.route('/h/2', html('Custom 2', '<img src="/img/h2.png">'));
});

after(async () => {
  await Promise.all([origin.close(), other.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Rec {
  url: string;
  file: string;
  metadata: { page: string; alt: string | null; title: string | null };
}

const quiet = { info() {}, warn() {}, debug() {} };

async function run(name: string, options: { urls: string[]; anyOrigin?: boolean; next?: string }, limits: { maxPages?: number; maxDepth?: number } = {}) {
  const out = path.join(dir, name);
  const summary = await runPlugin(gallery, { options, ...limits, out, storage: path.join(dir, 'storage'), log: quiet });
  const records = fs.readFileSync(path.join(out, 'metadata.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
  return { summary, records, byPath: new Map(records.map((r) => [new URL(r.url).pathname, r])) };
}

test('collects img, the largest srcset candidate, picture, og:image and image links; follows next pages; stays on the origin', async () => {
  const fetched = (p: string) => origin.count(p);
  const { summary, records, byPath } = await run('all', { urls: [origin.url('/g/1')] });
  assert.equal(summary.failed, 0);
  assert.deepEqual([...byPath.keys()].sort(), [
    '/img/a.png', '/img/b-1200.png', '/img/c2.png', '/img/d.png', '/img/e.png', '/img/full.jpg', '/img/og.jpg', '/img/p-960.webp', '/img/relative.gif',
  ]);
  assert.equal(records.length, 9, 'an image shown twice on a page is downloaded once');
  for (const small of ['/img/b-small.png', '/img/b-400.png', '/img/c1.png', '/img/p.jpg', '/img/p-480.webp']) assert.equal(fetched(small), 0, `${small} not fetched`);
  assert.equal(other.count('/g/4'), 0, 'a next link to another origin is not followed');

  assert.deepEqual(byPath.get('/img/a.png')!.metadata, { page: origin.url('/g/1'), alt: 'A', title: 'Page one' });
  assert.deepEqual(byPath.get('/img/og.jpg')!.metadata, { page: origin.url('/g/1'), alt: 'Cover', title: 'Page one' });
  assert.equal(byPath.get('/img/b-1200.png')!.metadata.alt, 'B');
  assert.equal(byPath.get('/img/p-960.webp')!.metadata.alt, 'P');
  assert.equal(byPath.get('/img/full.jpg')!.metadata.alt, 'Full size');
  assert.deepEqual(byPath.get('/img/d.png')!.metadata, { page: origin.url('/g/2'), alt: 'D', title: 'Page two' });
  assert.equal(byPath.get('/img/e.png')!.metadata.title, 'Page three');
  for (const r of records) assert.ok(fs.statSync(path.join(dir, 'all', r.file)).size > 0, `${r.file} saved`);
});

test('--max-pages 2 stops after two pages', async () => {
  const before = origin.count('/g/3');
  const { byPath, summary } = await run('two', { urls: [origin.url('/g/1')] }, { maxPages: 2 });
  assert.equal(summary.pagesNotVisited, 1, 'the page found past the limit is counted');
  assert.equal(origin.count('/g/3'), before, 'the third page is not fetched');
  assert.ok(byPath.has('/img/d.png'));
  assert.ok(!byPath.has('/img/e.png'));
});

test('--any-origin follows next links to other origins', async () => {
  const { byPath } = await run('any', { urls: [origin.url('/g/2')], anyOrigin: true });
  assert.equal(other.count('/g/4'), 1);
  assert.deepEqual([...byPath.keys()].sort(), ['/img/d.png', '/img/e.png', '/img/f.png']);
});

test('--next takes a CSS selector for the next-page link', async () => {
  const plain = await run('plain', { urls: [origin.url('/h/1')] });
  assert.deepEqual([...plain.byPath.keys()], ['/img/h1.png'], 'no rel=next: one page');
  const custom = await run('custom', { urls: [origin.url('/h/1')], next: 'nav.pager a' });
  assert.deepEqual([...custom.byPath.keys()].sort(), ['/img/h1.png', '/img/h2.png']);
});

test('srcset parsing keeps commas inside URLs and picks the largest candidate', () => {
  const parsed = parseSrcset('a.jpg?crop=1,2 300w,b.jpg 900w ,  c.jpg 600w');
  assert.deepEqual(parsed.map((c) => [c.url, c.width]), [['a.jpg?crop=1,2', 300], ['b.jpg', 900], ['c.jpg', 600]]);
  assert.equal(largestCandidate(parsed)?.url, 'b.jpg');
  assert.equal(largestCandidate(parseSrcset('x.png, y.png 1.5x, z.png 3x'))?.url, 'z.png');
  assert.equal(largestCandidate(parseSrcset('')), undefined);
});

test('a page is fetched by the same pipeline as images: its retries are reported like theirs', async () => {
  let calls = 0;
  origin.route('/flaky-page', (_req, res) => {
    calls++;
    if (calls === 1) res.writeHead(503, { 'retry-after': '0' }).end('busy');
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<img src="/img/fp.png">');
  });
  const retries: Array<{ url: string; code: string; status: number | undefined }> = [];
  const out = path.join(dir, 'flaky');
  const summary = await runPlugin(gallery, {
    options: { urls: [origin.url('/flaky-page')] },
    out,
    storage: path.join(dir, 'storage'),
    retryDelay: 10,
    log: quiet,
    onStart: (run) => run.on('retry', (r) => retries.push({ url: r.url, code: r.code, status: r.status })),
  });
  assert.equal(summary.downloaded, 1);
  assert.deepEqual(retries, [{ url: origin.url('/flaky-page'), code: 'http_status', status: 503 }]);
  assert.equal(summary.pagesFailed, undefined);
});

test('a plugin run fetches pages at the configured concurrency from the first second, and a found image starts at once', async () => {
  let inFlight = 0;
  let most = 0;
  origin.route('/slowp', async (req, res) => {
    inFlight++;
    most = Math.max(most, inFlight);
    const n = new URL(req.url!, 'http://x').searchParams.get('n');
    await new Promise((resolve) => setTimeout(resolve, 400));
    inFlight--;
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<img src="/img/slow-${n}.png">`);
  });
  const urls = Array.from({ length: 60 }, (_, i) => origin.url(`/slowp?n=${i}`));
  const from = origin.log.length;
  const summary = await runPlugin(gallery, { options: { urls }, concurrency: 16, out: path.join(dir, 'slow'), storage: path.join(dir, 'storage'), log: quiet });
  assert.equal(summary.downloaded, 60);
  assert.equal(most, 16, 'pages in flight: the concurrency, not the 4-8 an autoscaled pool starts with');
  const log = origin.log.slice(from);
  const firstImage = log.findIndex((e) => e.path.startsWith('/img/slow-'));
  const lastPage = log.map((e) => e.path).lastIndexOf('/slowp');
  assert.ok(firstImage < lastPage, `an image found is fetched before every page is (first image request #${firstImage}, last page request #${lastPage})`);
});

test('every picture of a <picture> is saved: one per media query (art direction), and the <img> with its formats', async () => {
  origin.route('/art', html('Art direction', `
    <picture>
      <source media="(min-width: 800px)" srcset="/img/wide.jpg">
      <source media="(min-width: 800px)" type="image/webp" srcset="/img/wide-s.webp 400w, /img/wide-l.webp 1600w">
      <source media="(max-width: 400px)" srcset="/img/narrow.jpg">
      <source type="image/avif" srcset="/img/crop.avif">
      <img src="/img/narrow.jpg" alt="Kite">
    </picture>`));
  const { byPath } = await run('art', { urls: [origin.url('/art')] });
  assert.deepEqual([...byPath.keys()].sort(), ['/img/crop.avif', '/img/narrow.jpg', '/img/wide-l.webp']);
  assert.equal(byPath.get('/img/wide-l.webp')!.metadata.alt, 'Kite');
});
