// --retry-failed on plugin runs: the pages and the images that failed are tried again, and only those; what a
// handler said about an image (its key, its place for a name template) survives the failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readJsonl, tmpDir } from './helpers/cli.ts';
import { assertFolder } from './helpers/invariants.ts';
import { png } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { definePlugin, runPlugin } from '../src/plugin/index.ts';
import { Archive } from '../src/storage/archive.ts';

const quiet = { info() {}, warn() {}, debug() {} };
let origin: Origin;
let dir: string;
let up = false;

before(async () => {
  origin = await startOrigin();
  dir = tmpDir('imgdl-plugin-retry-');
  origin.route('/list', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ images: ['/img/ok.png', '/flaky-img/late.png'], pages: ['/late-page'] }));
  });
  origin.route('/late-page', (_req, res) => {
    if (!up) return void res.writeHead(500).end('down');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ images: ['/img/from-late-page.png'], pages: [] }));
  });
  origin.route('/flaky-img/late.png', (_req, res) => {
    if (!up) return void res.writeHead(404).end('not yet');
    res.writeHead(200, { 'content-type': 'image/png' }).end(png(4, 4, { seed: 'late' }));
  });
});

after(async () => {
  await origin.close();
});

const plugin = definePlugin({
  name: 'retrying',
  description: 'A listing with a page and an image that fail at first',
  start: () => [{ url: origin.url('/list'), label: 'list' }],
  handlers: {
    list: ({ json }) => {
      const data = json<{ images: string[]; pages: string[] }>();
      return {
        images: data.images.map((url, i) => ({ url, key: `r:${url}`, metadata: { n: i + 1 } })),
        pages: data.pages.map((url) => ({ url, label: 'list' as const })),
      };
    },
  },
});

test('imgdl run --retry-failed fetches again the failed page and the failed image, and nothing else', async () => {
  const out = path.join(dir, 'out');
  const opts = { out, storage: path.join(dir, 'storage'), retries: 0, archive: path.join(dir, 'seen.sqlite'), name: '{label}/{index:02}-{name}.{ext}', log: quiet };
  const first = await runPlugin(plugin, opts);
  assert.deepEqual([first.downloaded, first.failed, first.pagesFailed], [1, 1, 1]);

  up = true;
  const plain = await runPlugin(plugin, opts);
  assert.deepEqual([plain.downloaded, plain.failed, plain.pagesFailed], [0, 1, 1], 'without --retry-failed what failed stays failed');

  const from = origin.log.length;
  const retried = await runPlugin(plugin, { ...opts, retryFailed: true });
  assert.deepEqual(origin.log.slice(from).map((e) => e.path).filter((p) => p !== '/robots.txt').sort(), ['/flaky-img/late.png', '/img/from-late-page.png', '/late-page'], 'only what failed, and what the retried page found');
  assert.deepEqual([retried.downloaded, retried.failed, retried.pagesFailed], [2, 0, undefined]);
  assert.deepEqual(retried.retried, { http_status: 2 });
  const records = await assertFolder(out, ['/img/ok.png', '/flaky-img/late.png', '/img/from-late-page.png'].map((p) => origin.url(p)));
  const byUrl = new Map(records.map((r) => [new URL(r.url).pathname, r as typeof r & { key?: string }]));
  // The failed image kept its key and its place on its page: named by the template, archived once saved.
  assert.equal(byUrl.get('/flaky-img/late.png')!.file, 'list/02-late.png');
  assert.equal(byUrl.get('/img/from-late-page.png')!.file, 'list/01-from-late-page.png');
  assert.equal(byUrl.get('/flaky-img/late.png')!.key, 'r:/flaky-img/late.png');
  const archive = await Archive.open(path.join(dir, 'seen.sqlite'));
  try {
    assert.equal(archive.size(), 3);
  } finally {
    archive.close();
  }
  assert.equal(readJsonl(path.join(out, 'metadata.jsonl')).length, 3);
});
