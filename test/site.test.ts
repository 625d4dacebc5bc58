// The site plugin on saved pages of a small photography site (test/fixtures/site/), served by a local origin; a
// second local origin stands for another site, and must never be asked for anything.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runPlugin } from '../src/plugin/index.ts';
import { startFixtureSite, type FixtureSite } from '../src/testing/index.ts';
import { runCli } from './helpers/cli.ts';
import site from '../plugins/site.ts';

const FIXTURES = path.join(import.meta.dirname, 'fixtures');
let origin: FixtureSite;
let offsite: FixtureSite;
let dir: string;

before(async () => {
  offsite = await startFixtureSite(path.join(FIXTURES, 'site-offsite'));
  origin = await startFixtureSite(path.join(FIXTURES, 'site'), { replace: { '{{offsite}}': offsite.base } });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-site-'));
});

after(async () => {
  await Promise.all([origin.close(), offsite.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Rec {
  url: string;
  file: string;
  metadata: { page: string; title: string | null; alt: string | null };
}

const quiet = { info() {}, warn() {}, debug() {} };

async function crawl(name: string, options: { urls: string[]; include?: string[]; exclude?: string[]; anyOrigin?: boolean }, limits: { maxPages?: number; maxDepth?: number } = {}) {
  const out = path.join(dir, name);
  const from = origin.requests.length;
  const summary = await runPlugin(site, { options, ...limits, out, storage: path.join(dir, 'storage'), log: quiet });
  const records = fs.readFileSync(path.join(out, 'metadata.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
  const requests = origin.requests.slice(from);
  const pages = requests.filter((r) => !/\.(jpe?g|png|gif|webp)$/.test(r.path) && r.path !== '/robots.txt').map((r) => r.path);
  return { summary, records, byPath: new Map(records.map((r) => [new URL(r.url).pathname, r])), pages, requests };
}

const ALL_PAGES = ['/', '/about.html', '/blog/', '/blog/page/2', '/blog/swifts-return.html', '/gallery/', '/gallery/index.html', '/index.html', '/tag/owls/'];

test('crawls the site from its home page: every image the pages show, each page fetched once, nothing off-site', async () => {
  const { summary, records, byPath, pages, requests } = await crawl('all', { urls: [origin.url('/')] });
  assert.equal(summary.failed, 0);
  assert.equal(summary.pagesFailed, undefined);
  assert.deepEqual([...byPath.keys()].sort(), [
    '/media/blog/geese.jpg',
    '/media/blog/swift-og.jpg',
    '/media/blog/swift.webp',
    '/media/cards/kite.png', // background-image: url(...) in a style attribute
    '/media/cards/owl.jpg', // background: … url("…") shorthand, quotes as &quot;
    '/media/feature/heron-1280.jpg', // the <picture>'s <img>: its largest srcset candidate (w)
    '/media/feature/heron-full.jpg', // a link to an image file
    '/media/feature/heron-square-600.jpg', // art direction: the small-screen crop
    '/media/feature/heron-wide-1600.webp', // art direction: the wide crop, largest candidate
    '/media/hero/dawn-2400.jpg',
    '/media/logo.png',
    '/media/logo@3x.png', // srcset with x descriptors: the densest
    '/media/og/cover-1200x630.jpg',
    '/media/team/ana.jpg', // lazy-loaded: data-src behind a data: placeholder
    '/media/tags/owl-tag.png',
    '/gallery/photos/robin-1024.jpg', // <base href> and w descriptors
    '/gallery/photos/robin-full.jpg',
    '/gallery/photos/tit.gif',
    '/gallery/photos/wren-2x.jpg',
  ].sort());
  assert.equal(records.length, byPath.size, 'one record per image, though several pages show some of them');
  for (const small of ['/media/feature/heron-640.jpg', '/media/feature/heron-wide-800.webp', '/media/feature/heron-wide-1600.jpg', '/gallery/photos/robin-320.jpg', '/gallery/photos/wren-1.5x.jpg', '/media/logo@2x.png']) {
    assert.equal(origin.count(small), 0, `${small} (a smaller candidate or another format of the same picture) is not fetched`);
  }

  // Each page once, though they link to each other in loops (home ↔ about, journal ↔ page 2).
  assert.deepEqual([...pages].sort(), ALL_PAGES);
  assert.equal(requests.filter((r) => r.path === '/robots.txt').length, 1, 'robots.txt read once');
  assert.ok(!pages.some((p) => p.startsWith('/files/') || p.startsWith('/assets/') || p === '/favicon.ico'), 'no PDF, stylesheet, script or icon fetched as a page');
  assert.equal(offsite.requests.length, 0, 'the other site is never asked for anything');

  const home = origin.url('/');
  assert.deepEqual(byPath.get('/media/feature/heron-square-600.jpg')!.metadata, { page: home, title: 'Kestrel & Co — Bird photography', alt: 'Grey heron in the reeds' });
  assert.equal(byPath.get('/media/og/cover-1200x630.jpg')!.metadata.alt, 'A kestrel hovering over a field');
  assert.equal(byPath.get('/media/hero/dawn-2400.jpg')!.metadata.alt, 'Dawn over the marsh');
  assert.equal(byPath.get('/media/team/ana.jpg')!.metadata.title, 'About — Kestrel & Co');
  assert.equal(byPath.get('/gallery/photos/robin-full.jpg')!.metadata.alt, 'Robin');
  for (const r of records) assert.ok(fs.statSync(path.join(dir, 'all', r.file)).size > 0, `${r.file} saved`);
});

test('--exclude and --include choose the links followed (globs on the path, or the whole URL with ://)', async () => {
  const excluded = await crawl('exclude', { urls: [origin.url('/')], exclude: ['/tag/**', '/gallery/index.html'] });
  assert.deepEqual(excluded.pages.sort(), ALL_PAGES.filter((p) => p !== '/tag/owls/' && p !== '/gallery/index.html'));
  assert.ok(!excluded.byPath.has('/media/tags/owl-tag.png'));

  const included = await crawl('include', { urls: [origin.url('/')], include: [`${origin.base}/blog/**`] });
  assert.deepEqual(included.pages.sort(), ['/', '/blog/', '/blog/page/2', '/blog/swifts-return.html'], 'the start page, then blog pages only');
});

test('--max-depth 1 visits the start page and the pages it links to; --max-pages bounds the whole crawl', async () => {
  const shallow = await crawl('depth', { urls: [origin.url('/')] }, { maxDepth: 1 });
  assert.deepEqual(shallow.pages.sort(), ['/', '/about.html', '/blog/', '/gallery/', '/gallery/index.html', '/tag/owls/']);
  assert.ok((shallow.summary.pagesNotVisited ?? 0) > 0);
  const few = await crawl('few', { urls: [origin.url('/')] }, { maxPages: 3 });
  assert.equal(few.pages.length, 3);
});

test('--any-origin follows links to other sites; a bad glob is a usage error before any request', async () => {
  const any = await crawl('any', { urls: [origin.url('/')], anyOrigin: true, include: ['/', '/partners/**'] });
  assert.deepEqual(offsite.requests.map((r) => r.path).sort(), ['/offsite-only.png', '/partners/birdlife.html', '/robots.txt']);
  assert.ok(any.byPath.has('/offsite-only.png'));
  offsite.requests.length = 0;

  const before = origin.requests.length;
  await assert.rejects(runPlugin(site, { options: { urls: [origin.url('/')], include: ['/blog/[abc'] }, out: path.join(dir, 'bad'), storage: path.join(dir, 'storage'), log: quiet }), /--include/);
  assert.equal(origin.requests.length, before);
});

test('imgdl run site from the command line: --exclude twice, --max-depth, --json', async () => {
  const out = path.join(dir, 'cli');
  const r = await runCli(['run', 'site', origin.url('/'), '--exclude', '/tag/**', '--exclude', '/blog/**', '--max-depth', '1', '--out', out, '--storage', path.join(dir, 'cli-storage'), '--json', '-q'], { cwd: dir, timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { downloaded: number; failed: number };
  assert.equal(summary.failed, 0);
  const files = fs.readdirSync(out).filter((f) => !f.endsWith('.jsonl') && f !== 'stats.json' && f !== 'report.html');
  assert.ok(files.includes('robin-1024.jpg') && files.includes('ana.jpg') && !files.includes('geese.jpg') && !files.includes('owl-tag.png'), files.join(' '));
  assert.equal(summary.downloaded, files.length);
});
