// --update: a finished run looks again. Start pages (and pages a handler marks `refresh`) are fetched again, and a
// listing is walked only until it reaches items the run already has.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { definePlugin, runPlugin } from '../src/plugin/index.ts';

const quiet = { info() {}, warn() {}, debug() {} };
const PER_PAGE = 3;
let origin: Origin;
let dir: string;
/** Item ids, newest first: the listing's order. Tests add items between runs. */
let items: number[] = [];

before(async () => {
  origin = await startOrigin();
  dir = tmpDir('imgdl-update-');
  origin.route('/list', (_req, res, url) => {
    const page = Number(url.searchParams.get('page') ?? '1');
    const shown = items.slice((page - 1) * PER_PAGE, page * PER_PAGE);
    const more = items.length > page * PER_PAGE;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ items: shown.map((id) => ({ id, src: `/img/item-${id}.png` })), next: more ? `/list?page=${page + 1}` : null }));
  });
});

after(async () => {
  await origin.close();
});

/** A listing plugin written the way docs/plugins.md shows: it stops at the first page holding an item it knows. */
const listing = definePlugin({
  name: 'listing',
  description: 'A newest-first listing, walked until known items',
  start: () => [{ url: origin.url('/list?page=1'), label: 'list' }],
  handlers: {
    list: ({ json, known }) => {
      const { items: found, next } = json<{ items: Array<{ id: number; src: string }>; next: string | null }>();
      const images = found.map((item) => ({ url: item.src, key: `listing:${item.id}` }));
      // Older pages hold only older items: once this page has one we have, there is nothing new further on.
      const reachedKnown = images.some((image) => known(image.key));
      return { images, pages: next && !reachedKnown ? [{ url: next, label: 'list' as const, refresh: true }] : [] };
    },
  },
});

const requests = (from: number) => origin.log.slice(from).filter((e) => e.path !== '/robots.txt').map((e) => e.path + e.search);

test('--update fetches only the new images and the listing pages needed to find them', async () => {
  const out = path.join(dir, 'out');
  const storage = path.join(dir, 'storage');
  items = [7, 6, 5, 4, 3, 2, 1];
  let from = origin.log.length;
  const first = await runPlugin(listing, { out, storage, log: quiet });
  assert.equal(first.downloaded, 7);
  assert.deepEqual(requests(from).filter((r) => r.startsWith('/list')), ['/list?page=1', '/list?page=2', '/list?page=3']);

  // Four new items: the first listing page is all new, the second reaches known ones.
  items = [11, 10, 9, 8, ...items];
  from = origin.log.length;
  const plain = await runPlugin(listing, { out, storage, log: quiet });
  assert.deepEqual(requests(from), [], 'without --update a finished run looks at nothing again');
  assert.equal(plain.downloaded, 0);

  from = origin.log.length;
  const updated = await runPlugin(listing, { out, storage, update: true, log: quiet });
  const seen = requests(from);
  assert.deepEqual(seen.filter((r) => r.startsWith('/list')), ['/list?page=1', '/list?page=2'], 'stops at the page holding known items');
  assert.deepEqual(seen.filter((r) => r.startsWith('/img/')).sort(), ['/img/item-10.png', '/img/item-11.png', '/img/item-8.png', '/img/item-9.png'], 'only the new images');
  assert.equal(updated.downloaded, 4);
  assert.equal(updated.failed, 0);
  assert.equal(readJsonl(path.join(out, 'metadata.jsonl')).length, 11);

  // Nothing new: one request, the first page.
  from = origin.log.length;
  const again = await runPlugin(listing, { out, storage, update: true, log: quiet });
  assert.deepEqual(requests(from), ['/list?page=1']);
  assert.equal(again.downloaded, 0);
});

test('imgdl run site --update fetches the start page again and follows only links it has not visited', async () => {
  const pages: Record<string, string> = { '/s/': '<a href="/s/a">a</a><img src="/img/s-home.png">' };
  for (const [p, body] of [['/s/a', '<img src="/img/s-a.png">'], ['/s/b', '<img src="/img/s-b.png">']] as const) pages[p] = body;
  for (const p of ['/s/', '/s/a', '/s/b']) {
    origin.route(p, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>${p}</title>${pages[p]}`);
    });
  }
  const args = ['run', 'site', origin.url('/s/'), '--out', path.join(dir, 'site'), '--storage', path.join(dir, 'site-storage'), '--json', '-q'];
  const first = await runCli(args, { cwd: dir, timeoutMs: 90_000 });
  assert.equal(first.code, 0, first.stderr);
  pages['/s/'] += '<a href="/s/b">b</a><img src="/img/s-new.png">';
  const from = origin.log.length;
  const second = await runCli([...args, '--update'], { cwd: dir, timeoutMs: 90_000 });
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(requests(from).sort(), ['/img/s-b.png', '/img/s-new.png', '/s/', '/s/b']);
  assert.equal((JSON.parse(second.stdout) as { downloaded: number }).downloaded, 2);
});
