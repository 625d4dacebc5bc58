// --archive FILE: keys of saved images shared by runs and output folders; an image whose key is there is skipped.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { assertFolder } from './helpers/invariants.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { definePlugin, runPlugin } from '../src/plugin/index.ts';
import { Archive } from '../src/storage/archive.ts';
import { openSqlite } from '../src/storage/sqlite.ts';
import { startFixtureSite, type FixtureSite } from '../src/testing/index.ts';

const quiet = { info() {}, warn() {}, debug() {} };
let origin: Origin;
let fixture: FixtureSite;
let dir: string;
/** The ids the listing shows; tests change it between runs. */
let listing: number[] = [];

before(async () => {
  origin = await startOrigin();
  fixture = await startFixtureSite(path.join(import.meta.dirname, 'fixtures', 'site'), { replace: { '{{offsite}}': 'http://127.0.0.1:9' } });
  dir = tmpDir('imgdl-archive-');
  origin.route('/api/photos', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ photos: listing.map((id) => ({ id, src: `/img/photo-${id}.png?v=${id}` })) }));
  });
});

after(async () => {
  await Promise.all([origin.close(), fixture.close()]);
});

const photos = definePlugin({
  name: 'photos',
  description: 'Photos of a JSON listing, keyed by their id',
  start: () => [{ url: origin.url('/api/photos'), label: 'list' }],
  handlers: {
    list: ({ json }) => ({
      images: json<{ photos: Array<{ id: number; src: string }> }>().photos.map((p) => ({ url: p.src, key: `photos:${p.id}`, metadata: { id: p.id } })),
    }),
  },
});

const imageRequests = (from: number) => origin.log.slice(from).filter((e) => e.path.startsWith('/img/')).map((e) => e.path).sort();

test('two runs into two folders with one archive: the second fetches no image the first saved', async () => {
  const archive = path.join(dir, 'archive.sqlite');
  listing = [1, 2, 3];
  let from = origin.log.length;
  const first = await runPlugin(photos, { out: path.join(dir, 'a'), storage: path.join(dir, 'storage'), archive, log: quiet });
  assert.equal(first.downloaded, 3);
  assert.deepEqual(imageRequests(from), ['/img/photo-1.png', '/img/photo-2.png', '/img/photo-3.png']);
  const records = readJsonl<{ key?: string }>(path.join(dir, 'a', 'metadata.jsonl'));
  assert.deepEqual(records.map((r) => r.key).sort(), ['photos:1', 'photos:2', 'photos:3'], 'each record carries its key');

  listing = [1, 2, 3, 4, 5];
  from = origin.log.length;
  const second = await runPlugin(photos, { out: path.join(dir, 'b'), storage: path.join(dir, 'storage'), archive, log: quiet });
  assert.deepEqual(imageRequests(from), ['/img/photo-4.png', '/img/photo-5.png'], 'only the images the archive does not have');
  assert.equal(second.downloaded, 2);
  assert.equal(second.skipped, 3, 'skipped by the archive counts as skipped');
  assert.equal(second.failed, 0);
  await assertFolder(path.join(dir, 'b'), [origin.url('/img/photo-4.png?v=4'), origin.url('/img/photo-5.png?v=5')]);

  // Without --archive the same listing into a third folder fetches everything: the archive is opt-in.
  from = origin.log.length;
  await runPlugin(photos, { out: path.join(dir, 'c'), storage: path.join(dir, 'storage'), log: quiet });
  assert.equal(imageRequests(from).length, 5);

  const a = await Archive.open(archive);
  try {
    assert.equal(a.size(), 5);
    assert.ok(a.has('photos:5') && !a.has('photos:6'));
  } finally {
    a.close();
  }
});

test('an image that fails is not archived: a later run tries it again', async () => {
  const archive = path.join(dir, 'failing.sqlite');
  const failing = definePlugin({
    name: 'failing',
    description: 'One good image, one missing',
    start: () => [{ url: origin.url('/api/photos'), label: 'list' }],
    handlers: { list: () => ({ images: [{ url: '/img/ok.png', key: 'f:ok' }, { url: '/status/404', key: 'f:missing' }] }) },
  });
  const first = await runPlugin(failing, { out: path.join(dir, 'f1'), storage: path.join(dir, 'storage'), archive, retries: 0, log: quiet });
  assert.deepEqual([first.downloaded, first.failed], [1, 1]);
  const from = origin.log.length;
  const second = await runPlugin(failing, { out: path.join(dir, 'f2'), storage: path.join(dir, 'storage'), archive, retries: 0, log: quiet });
  assert.deepEqual(origin.log.slice(from).filter((e) => e.path !== '/api/photos' && e.path !== '/robots.txt').map((e) => e.path), ['/status/404']);
  assert.deepEqual([second.skipped, second.failed], [1, 1]);
});

test('concurrent runs share one archive: both finish, each key is there once, and a third run fetches no image', async () => {
  const archive = path.join(dir, 'shared.sqlite');
  const storage = path.join(dir, 'cli-storage');
  const run = (out: string) => runCli(['run', 'site', fixture.url('/'), '--archive', archive, '--out', path.join(dir, out), '--storage', storage, '--json', '-q'], { cwd: dir, timeoutMs: 120_000 });
  const [x, y] = await Promise.all([run('x'), run('y')]);
  assert.equal(x.code, 0, x.stderr);
  assert.equal(y.code, 0, y.stderr);
  const saved = (out: string) => readJsonl<{ url: string; key: string }>(path.join(dir, out, 'metadata.jsonl'));
  const keys = new Set([...saved('x'), ...saved('y')].map((r) => r.key));
  assert.equal(keys.size, 19, 'every image of the site saved by one run or the other');
  const db = await openSqlite(archive);
  try {
    assert.equal((db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
    const rows = db.prepare('SELECT key FROM archive').all().map((r) => String(r['key']));
    assert.deepEqual(rows.sort(), [...keys].sort(), 'each saved key once');
  } finally {
    db.close();
  }
  const from = fixture.requests.length;
  const z = await run('z');
  assert.equal(z.code, 0, z.stderr);
  const summary = JSON.parse(z.stdout) as { downloaded: number; skipped: number };
  assert.deepEqual([summary.downloaded, summary.skipped], [0, 19], 'each image the site shows counted once as skipped');
  assert.equal(fixture.requests.slice(from).filter((r) => /\.(jpe?g|png|gif|webp)$/.test(r.path)).length, 0, 'no image fetched');
});

test('--archive that is a folder is a usage error before any request', async () => {
  const before = origin.log.length;
  const r = await runCli(['run', 'site', origin.url('/api/photos'), '--archive', dir, '--out', path.join(dir, 'bad'), '--storage', path.join(dir, 'bad-storage')], { cwd: dir, timeoutMs: 60_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--archive .* is a folder/);
  assert.equal(origin.log.length, before);
  assert.ok(!fs.existsSync(path.join(dir, 'bad', 'metadata.jsonl')));
});
