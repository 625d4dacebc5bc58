// A plugin's own HTTP settings (definePlugin's `http`): default headers and cookies, a Referer on images, default
// --per-host and --rate, non-2xx pages handed to the handler; the command line's flags win.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { tmpDir } from './helpers/cli.ts';
import { png } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { definePlugin, runPlugin } from '../src/plugin/index.ts';
import { validatePlugin } from '../src/plugin/options.ts';

const quiet = { info() {}, warn() {}, debug() {} };
let origin: Origin;
let dir: string;
const seen: Array<{ path: string; headers: IncomingHttpHeaders }> = [];
let inFlight = 0;
let most = 0;

before(async () => {
  origin = await startOrigin();
  dir = tmpDir('imgdl-plugin-http-');
  origin.route('/api/list', (req, res) => {
    seen.push({ path: '/api/list', headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ photos: Array.from({ length: 6 }, (_, i) => `/photo/${i}.png`), gone: '/api/gone' }));
  });
  origin.route('/api/gone', (req, res) => {
    seen.push({ path: '/api/gone', headers: req.headers });
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'gone', replacement: '/photo/replacement.png' }));
  });
  for (const name of [...Array.from({ length: 6 }, (_, i) => String(i)), 'replacement']) {
    origin.route(`/photo/${name}.png`, async (req, res) => {
      seen.push({ path: `/photo/${name}.png`, headers: req.headers });
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 60));
      inFlight--;
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(png(4, 4, { seed: name }));
    });
  }
});

after(async () => {
  await origin.close();
});

const api = definePlugin({
  name: 'api',
  description: 'A JSON API that wants a key, a cookie and a Referer',
  http: {
    headers: { 'X-Api-Key': 'plugin-key', 'User-Agent': 'ApiPlugin/1.0' },
    cookies: { [`http://127.0.0.1/`]: 'session=abc; consent=yes' },
    imageReferer: true,
    perHost: 1,
    acceptStatus: [404],
  },
  start: () => [{ url: origin.url('/api/list'), label: 'list' }],
  handlers: {
    list: ({ json }) => {
      const data = json<{ photos: string[]; gone: string }>();
      return { images: data.photos.map((url) => ({ url })), pages: [{ url: data.gone, label: 'gone' as const }] };
    },
    gone: ({ page, json }) => {
      assert.equal(page.status, 404);
      return { images: [{ url: json<{ replacement: string }>().replacement }] };
    },
  },
});

test("a plugin's headers, cookies, image Referer, per-host limit and accepted statuses are used", async () => {
  seen.length = 0;
  most = 0;
  const summary = await runPlugin(api, { out: path.join(dir, 'a'), storage: path.join(dir, 'storage'), log: quiet });
  assert.equal(summary.failed, 0);
  assert.equal(summary.pagesFailed, undefined, 'the 404 page is handed to its handler, not failed');
  assert.equal(summary.downloaded, 7, 'six photos and the one the 404 page named');
  for (const r of seen) {
    assert.equal(r.headers['x-api-key'], 'plugin-key', r.path);
    assert.equal(r.headers['user-agent'], 'ApiPlugin/1.0', r.path);
    assert.equal(r.headers['cookie'], 'session=abc; consent=yes', r.path);
  }
  const referer = (p: string) => seen.find((r) => r.path === p)?.headers['referer'];
  assert.equal(referer('/photo/0.png'), origin.url('/api/list'), 'an image is sent with the page it was found on as Referer');
  assert.equal(referer('/photo/replacement.png'), origin.url('/api/gone'));
  assert.equal(referer('/api/list'), undefined, 'pages get no Referer of their own');
  assert.equal(most, 1, "the plugin's perHost: 1 holds");
});

test('the command line wins over the plugin: -H, --user-agent, --per-host', async () => {
  seen.length = 0;
  most = 0;
  await runPlugin(api, { out: path.join(dir, 'b'), storage: path.join(dir, 'storage'), headers: ['X-Api-Key: user-key'], userAgent: 'Mine/2', perHost: 4, log: quiet });
  for (const r of seen) {
    assert.equal(r.headers['x-api-key'], 'user-key');
    assert.equal(r.headers['user-agent'], 'Mine/2');
  }
  assert.ok(most > 1, `--per-host 4 lets more than one in flight (${most})`);
});

test('bad http settings are refused when the plugin is loaded', () => {
  const base = { name: 'x', description: 'x', start: () => [], handlers: { a: () => undefined } };
  for (const [http, why] of [
    [{ perHost: 0 }, /perHost/],
    [{ rate: -1 }, /rate/],
    [{ acceptStatus: [42] }, /acceptStatus/],
    [{ cookies: { 'not a url': 'a=1' } }, /cookies/],
    [{ imageReferer: 'yes' }, /imageReferer/],
    [{ proxy: 'x' }, /http\.proxy/],
  ] as const) {
    assert.throws(() => validatePlugin({ ...base, http }, 'x.ts'), why);
  }
});

test('API pages by POST: a GraphQL cursor walk, each page known by its body, a 303 answered with a GET', async () => {
  const bodies: Array<{ method: string; type: string | undefined; body: string }> = [];
  origin.route('/graphql', async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    bodies.push({ method: req.method!, type: req.headers['content-type'], body });
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const { variables } = JSON.parse(body) as { variables: { cursor: string | null } };
    const page = Number(variables.cursor ?? '0');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data: { photos: { nodes: [{ src: `/img/gql-${page}.png` }], next: page < 2 ? String(page + 1) : null } } }));
  });
  origin.route('/form', (req, res) => void res.writeHead(303, { location: '/api/list' }).end());
  const query = 'query($cursor: String) { photos(after: $cursor) { nodes { src } next } }';
  const gql = definePlugin({
    name: 'gql',
    description: 'GraphQL with a cursor',
    start: () => [
      { url: origin.url('/graphql'), label: 'photos', json: { query, variables: { cursor: null } } },
      { url: origin.url('/form'), label: 'form', method: 'POST', body: 'a=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
    ],
    handlers: {
      photos: ({ json, request }) => {
        const { nodes, next } = json<{ data: { photos: { nodes: Array<{ src: string }>; next: string | null } } }>().data.photos;
        return {
          images: nodes.map((n) => ({ url: n.src })),
          pages: next ? [{ url: request.url, label: 'photos' as const, json: { query, variables: { cursor: next } } }] : [],
        };
      },
      form: ({ page }) => {
        assert.equal(page.finalUrl, origin.url('/api/list'));
        return {};
      },
    },
  });
  seen.length = 0;
  const out = path.join(dir, 'gql');
  const summary = await runPlugin(gql, { out, storage: path.join(dir, 'storage'), log: quiet });
  assert.equal(summary.pagesFailed, undefined);
  assert.equal(summary.downloaded, 3, 'one image per cursor page: 0, 1, 2');
  assert.deepEqual(bodies.map((b) => [b.method, b.type, (JSON.parse(b.body) as { variables: { cursor: string | null } }).variables.cursor]), [
    ['POST', 'application/json', null],
    ['POST', 'application/json', '1'],
    ['POST', 'application/json', '2'],
  ]);
  assert.equal(seen.filter((r) => r.path === '/api/list').length, 1, 'the 303 after the form POST is followed with one GET');
  // Run again: every POST page is known by its body, none is fetched twice.
  bodies.length = 0;
  await runPlugin(gql, { out, storage: path.join(dir, 'storage'), log: quiet });
  assert.equal(bodies.length, 0);
  // The fetch client (Bun's) sends the same POSTs.
  const viaFetch = await runPlugin(gql, { out: path.join(dir, 'gql-fetch'), storage: path.join(dir, 'storage'), http: 'fetch', log: quiet });
  assert.equal(viaFetch.downloaded, 3);
  assert.deepEqual(bodies.map((b) => [b.method, b.type]), [['POST', 'application/json'], ['POST', 'application/json'], ['POST', 'application/json']]);
});
