// examples/plugins/photo-api.ts, the complete example of docs/plugins.md, against a local API and CDN: the cursor
// walk, the CDN's Referer check, names from the template, an archive shared by two folders, --update.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { png } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { runPlugin } from '../src/plugin/index.ts';
import photoApi from '../examples/plugins/photo-api.ts';

const quiet = { info() {}, warn() {}, debug() {} };
const PER_PAGE = 2;
let api: Origin;
let cdn: Origin;
let dir: string;
/** Photo ids, newest first. */
let ids: number[] = [];
const title = (id: number) => (id === 3 ? 'Owl / "night" shot' : `Bird ${id}`);

before(async () => {
  [api, cdn] = await Promise.all([startOrigin(), startOrigin()]);
  dir = tmpDir('imgdl-example-api-');
  api.route('/v1/albums/birds/photos', (_req, res, url) => {
    const from = Number(url.searchParams.get('cursor') ?? '0');
    const shown = ids.slice(from, from + PER_PAGE);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      album: { title: 'Birds of 2026' },
      photos: shown.map((id) => ({ id, title: title(id), taken: `2026-05-${String(id).padStart(2, '0')}T10:00:00Z`, url: cdn.url(`/p/${id}.png`) })),
      next: from + PER_PAGE < ids.length ? String(from + PER_PAGE) : null,
    }));
  });
  for (let id = 1; id <= 9; id++) {
    cdn.route(`/p/${id}.png`, (req, res) => {
      if (req.headers['referer'] !== 'http://site.test/albums/birds') return void res.writeHead(403).end('hotlinking refused');
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(png(4, 4, { seed: String(id) }));
    });
  }
});

after(async () => {
  await Promise.all([api.close(), cdn.close()]);
});

const options = () => ({ album: 'birds', baseUrl: api.base, site: 'http://site.test' });
const cdnRequests = (from: number) => cdn.log.slice(from).filter((e) => e.path !== '/robots.txt').map((e) => e.path).sort();
const apiPages = (from: number) => api.log.slice(from).filter((e) => e.path !== '/robots.txt').map((e) => e.search || '(first)');

test('walks the cursor, sends the Referer the CDN wants, names files by album and date', async () => {
  ids = [5, 4, 3, 2, 1];
  const out = path.join(dir, 'a');
  const from = api.log.length;
  const summary = await runPlugin(photoApi, { options: options(), out, storage: path.join(dir, 'storage'), archive: path.join(dir, 'seen.sqlite'), log: quiet });
  assert.equal(summary.failed, 0, fs.existsSync(path.join(out, 'failures.jsonl')) ? fs.readFileSync(path.join(out, 'failures.jsonl'), 'utf8') : '');
  assert.equal(summary.downloaded, 5);
  assert.deepEqual(apiPages(from), ['(first)', '?cursor=2', '?cursor=4']);
  const files = fs.readdirSync(path.join(out, 'Birds of 2026')).sort();
  assert.deepEqual(files, [
    '2026-05-01-photo-api_1-Bird 1.png',
    '2026-05-02-photo-api_2-Bird 2.png',
    '2026-05-03-photo-api_3-Owl _ _night_ shot.png',
    '2026-05-04-photo-api_4-Bird 4.png',
    '2026-05-05-photo-api_5-Bird 5.png',
  ]);
  const records = readJsonl<{ key: string; metadata: { title: string } }>(path.join(out, 'metadata.jsonl'));
  assert.deepEqual(records.map((r) => r.key).sort(), ['photo-api:1', 'photo-api:2', 'photo-api:3', 'photo-api:4', 'photo-api:5']);
});

test('another folder with the same archive fetches only new photos; --update stops at the first known one', async () => {
  ids = [7, 6, 5, 4, 3, 2, 1];
  // Into another folder, sharing the archive: the listing is walked, only photos 6 and 7 are fetched.
  let from = cdn.log.length;
  const other = await runPlugin(photoApi, { options: options(), out: path.join(dir, 'b'), storage: path.join(dir, 'storage'), archive: path.join(dir, 'seen.sqlite'), log: quiet });
  assert.deepEqual(cdnRequests(from), ['/p/6.png', '/p/7.png']);
  assert.deepEqual([other.downloaded, other.skipped], [2, 2], 'the archive knew photo 5 and 4 on the pages read; page 2 reached known photos: no third page');

  // The first folder's run, again with --update: the first page again, the second (it reaches known photos), no more.
  from = api.log.length;
  const cdnFrom = cdn.log.length;
  const updated = await runPlugin(photoApi, { options: options(), out: path.join(dir, 'a'), storage: path.join(dir, 'storage'), archive: path.join(dir, 'seen.sqlite'), update: true, log: quiet });
  assert.deepEqual(apiPages(from), ['(first)']);
  assert.deepEqual(cdnRequests(cdnFrom), [], 'photos 6 and 7 are in the archive already (saved into the other folder)');
  assert.equal(updated.failed, 0);
});

test('from the command line, by path, with --name overriding the template', async () => {
  ids = [2, 1];
  const r = await runCli(['run', path.join(import.meta.dirname, '..', 'examples', 'plugins', 'photo-api.ts'), '--album', 'birds', '--base-url', api.base, '--site', 'http://site.test',
    '--name', '{key}.{ext}', '--out', path.join(dir, 'cli'), '--storage', path.join(dir, 'cli-storage'), '--json', '-q'], { cwd: dir, timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'cli')).filter((f) => f.endsWith('.png')).sort(), ['photo-api_1.png', 'photo-api_2.png']);
});
