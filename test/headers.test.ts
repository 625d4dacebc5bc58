// -H / --referer / --location-trusted, --cookies (Netscape cookies.txt), and a plugin's per-image and per-page headers.
// Run: node --import tsx --test test/headers.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import { runCli, tmpDir, type CliResult } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { png } from './helpers/images.ts';
import { parseCookiesTxt } from '../src/http/headers.ts';
import { redactArgs } from '../src/http/credentials.ts';

let a: Origin;
let b: Origin;
before(async () => {
  [a, b] = await Promise.all([startOrigin(), startOrigin()]);
});
after(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

function imgdl(args: string[], cwd: string): Promise<CliResult> {
  return runCli(args, { cwd, env: { IMGDL_HTTP: '', IMGDL_DEBUG: '' }, timeoutMs: 30_000 });
}

/** A PNG route on `origin` that records the headers of each request it gets. */
function recording(origin: Origin, route: string): IncomingHttpHeaders[] {
  const seen: IncomingHttpHeaders[] = [];
  origin.route(route, (req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'image/png' }).end(png(4, 4));
  });
  return seen;
}

test('-H and --referer reach the origin; not the origin a redirect leads to, unless --location-trusted', async () => {
  const direct = recording(a, '/h/direct.png');
  const landed = recording(b, '/h/landed.png');
  const trusted = recording(b, '/h/trusted.png');
  a.route('/h/away.png', (_req, res) => void res.writeHead(302, { location: b.url('/h/landed.png') }).end());
  a.route('/h/away-trusted.png', (_req, res) => void res.writeHead(302, { location: b.url('/h/trusted.png') }).end());
  const dir = tmpDir('imgdl-headers-');
  const flags = ['-H', 'X-Token: s3cret', '--header', 'Accept-Language: fr', '--referer', 'https://ref.example/page', '--storage', 'state', '-q'];
  const [one, two] = await Promise.all([
    imgdl(['get', a.url('/h/direct.png'), a.url('/h/away.png'), '--out', 'o1', ...flags], dir),
    imgdl(['get', a.url('/h/away-trusted.png'), '--out', 'o2', '--location-trusted', ...flags], dir),
  ]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(two.code, 0, two.stderr);
  assert.equal(direct[0]?.['x-token'], 's3cret');
  assert.equal(direct[0]?.['accept-language'], 'fr');
  assert.equal(direct[0]?.['referer'], 'https://ref.example/page');
  assert.equal(landed.length, 1);
  assert.equal(landed[0]?.['x-token'], undefined, 'not sent to another origin after a redirect');
  assert.equal(landed[0]?.['referer'], undefined);
  assert.match(String(landed[0]?.['user-agent']), /^imgdl\//, 'the User-Agent still is');
  assert.equal(trusted[0]?.['x-token'], 's3cret', '--location-trusted sends them on');
});

test('a header imgdl sets, or one that is not Name: value, is refused: exit 2, one line, before any request', async () => {
  const dir = tmpDir('imgdl-headers-');
  const url = a.url('/h/never.png');
  const cases: Array<[string[], RegExp]> = [
    [['-H', 'Host: evil.example'], /^imgdl: Expected `--header` not to set Host: imgdl sets it\n$/],
    [['-H', 'Content-Length: 5'], /^imgdl: Expected `--header` not to set Content-Length/],
    [['-H', 'transfer-encoding: chunked'], /not to set transfer-encoding/],
    [['-H', 'Cookie: a=b'], /not to set Cookie: imgdl sets it \(use `--cookies`\)/],
    [['-H', 'no colon here'], /^imgdl: Expected `--header` to be 'Name: value', got "no colon here"\n$/],
    [['--referer', 'not a url'], /^imgdl: Expected `--referer` to be an absolute URL/],
  ];
  const runs = await Promise.all(cases.map(([flags]) => imgdl(['get', url, ...flags, '--storage', 'state'], dir)));
  runs.forEach((run, i) => {
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, cases[i]![1]);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  });
  assert.equal(a.count('/h/never.png'), 0);
});

test('parseCookiesTxt reads the Netscape format: comments, #HttpOnly_, subdomain flag, secure, session cookies', () => {
  const cookies = parseCookiesTxt(
    ['# Netscape HTTP Cookie File', '', '.example.com\tTRUE\t/\tTRUE\t2000000000\tsid\tab\tc', '#HttpOnly_host.test\tFALSE\t/p\tFALSE\t0\th\t1'].join('\n'),
  );
  assert.equal(cookies.length, 2);
  const [sid, h] = cookies;
  assert.deepEqual([sid!.domain, sid!.hostOnly, sid!.secure, sid!.key, sid!.value], ['example.com', false, true, 'sid', 'ab\tc']);
  assert.equal((sid!.expires as Date).getTime(), 2_000_000_000_000);
  assert.deepEqual([h!.domain, h!.hostOnly, h!.httpOnly, h!.path, h!.expires], ['host.test', true, true, '/p', 'Infinity']);
  assert.throws(() => parseCookiesTxt('example.com\tTRUE\t/'), /line 1 has 3 tab-separated fields/);
});

test('--cookies: each request and each redirect hop gets only the cookies whose domain matches it', async () => {
  const first = recording(a, '/c/a.png');
  const hop = recording(b, '/c/b.png');
  a.route('/c/away.png', (_req, res) => void res.writeHead(302, { location: b.url('/c/b.png').replace('127.0.0.1', 'localhost') }).end());
  const dir = tmpDir('imgdl-headers-');
  const far = Math.floor(Date.now() / 1000) + 3600;
  fs.writeFileSync(
    path.join(dir, 'cookies.txt'),
    [
      '# Netscape HTTP Cookie File',
      `127.0.0.1\tFALSE\t/\tFALSE\t${far}\tmine\tyes`,
      `#HttpOnly_127.0.0.1\tFALSE\t/c\tFALSE\t0\tsession\t1`,
      `127.0.0.1\tFALSE\t/elsewhere\tFALSE\t${far}\tpath\tno`,
      `127.0.0.1\tFALSE\t/\tFALSE\t1000\texpired\tno`,
      `.other.example\tTRUE\t/\tFALSE\t${far}\tother\tno`,
      `localhost\tFALSE\t/\tFALSE\t${far}\tlocal\tyes`,
      '',
    ].join('\n'),
  );
  const run = await imgdl(['get', a.url('/c/a.png'), a.url('/c/away.png'), '--out', 'o', '--cookies', 'cookies.txt', '--storage', 'state', '-q'], dir);
  assert.equal(run.code, 0, run.stderr);
  // The longer path first (RFC 6265 §5.4).
  assert.equal(first[0]?.['cookie'], 'session=1; mine=yes');
  assert.equal(hop[0]?.['cookie'], 'local=yes', 'the hop to localhost gets the localhost cookie only');
  const missing = await imgdl(['get', a.url('/c/a.png'), '--cookies', 'nope.txt', '--storage', 'state'], dir);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^imgdl: Cannot read the `--cookies` file nope\.txt: ENOENT\n$/);
});

test("a plugin's image and page headers (a Referer) are sent with them, and kept out of the handler's userData", async () => {
  const image = recording(a, '/p/img.png');
  const pageHeaders: IncomingHttpHeaders[] = [];
  a.route('/p/start', (_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<p>start</p>'));
  a.route('/p/next', (req, res) => {
    pageHeaders.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<p>next</p>');
  });
  const dir = tmpDir('imgdl-headers-');
  fs.writeFileSync(
    path.join(dir, 'refs.mts'),
    `export default {
  name: 'refs',
  description: 'headers test',
  start: () => [{ url: ${JSON.stringify(a.url('/p/start'))}, label: 'start' }],
  handlers: {
    start({ page }) {
      return { pages: [{ url: '/p/next', label: 'next', userData: { k: 1 }, headers: { 'X-Page': 'p1' } }] };
    },
    next({ page, request }) {
      if (JSON.stringify(request.userData) !== '{"k":1}') throw new Error('userData ' + JSON.stringify(request.userData));
      return { images: [{ url: '/p/img.png', headers: { Referer: page.finalUrl } }] };
    },
  },
};
`,
  );
  const run = await imgdl(['run', './refs.mts', '--out', 'out', '--storage', 'state', '-q', '-H', 'X-Run: r'], dir);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(pageHeaders[0]?.['x-page'], 'p1');
  assert.equal(pageHeaders[0]?.['x-run'], 'r');
  assert.equal(image[0]?.['referer'], a.url('/p/next'));
  assert.equal(image[0]?.['x-run'], 'r');
});

test('a header value is a secret like a password: never kept in run.json nor printed in a resume command', async () => {
  assert.deepEqual(redactArgs(['get', 'x.txt', '-H', 'X-Api-Key: s3cret', '--header=Auth-Token:t0ken', '-HX-One: v', 'https://u:pw@h/x.png']), [
    'get', 'x.txt', '-H', 'X-Api-Key: ***', '--header=Auth-Token: ***', '-HX-One: ***', 'https://u:***@h/x.png',
  ]);
  const dir = tmpDir('imgdl-headers-');
  const run = await runCli(['get', a.url('/img/secret-h.png'), '-H', 'X-Api-Key: s3cret', '--storage', 'state', '--quiet'], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  const [runName] = fs.readdirSync(path.join(dir, 'state', 'runs'));
  const info = fs.readFileSync(path.join(dir, 'state', 'runs', runName!, 'run.json'), 'utf8');
  assert.ok(info.includes('X-Api-Key: ***'), info);
  assert.ok(!info.includes('s3cret'));
  const runs = await runCli(['runs', '--storage', 'state'], { cwd: dir });
  assert.ok(!runs.stdout.includes('s3cret') && runs.stdout.includes('X-Api-Key: ***'), runs.stdout);
});
