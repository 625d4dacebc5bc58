// Robots and opt-out: plugin pages checked against robots.txt (once per origin), images with an X-Robots-Tag opt-out
// not saved. Every origin is on 127.0.0.1 and closed at the end; every CLI run is bounded by runCli's timeout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { OutgoingHttpHeaders } from 'node:http';
import { listFiles, readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { png } from './helpers/images.ts';
import { startOrigin, type Origin, type RouteHandler } from './helpers/origin.ts';
import { runPlugin } from '../src/plugin/index.ts';
import { get } from '../src/get.ts';
import { optOutDirective, userAgentToken, OPT_OUT_DIRECTIVES } from '../src/core/robots.ts';
import gallery from '../plugins/gallery.ts';

const CLI_TIMEOUT_MS = 90_000;

const html = (body: string, head = ''): RouteHandler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>t</title>${head}</head><body>${body}</body></html>`);
};
const text = (status: number, body: string): RouteHandler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
};
const image = (headers: OutgoingHttpHeaders, seed: string): RouteHandler => (_req, res) => {
  const body = png(4, 4, { seed });
  res.writeHead(200, { 'content-type': 'image/png', 'content-length': body.length, ...headers });
  res.end(body);
};

const ROBOTS = 'User-agent: otherbot\nDisallow: /\n\nUser-agent: imgdl\nDisallow: /private\n\nUser-agent: *\nDisallow: /nobody\n';

/** One origin per case, so that each counts its own robots.txt requests. */
const origins: Origin[] = [];
async function site(robots: RouteHandler | undefined): Promise<Origin> {
  const o = await startOrigin();
  origins.push(o);
  if (robots) o.route('/robots.txt', robots);
  // A start page that links (rel=next) to a page under /private; a second start page on the same origin.
  o.route('/g/1', html('<img src="/img/one.png">', '<link rel="next" href="/private/2">'));
  o.route('/g/other', html('<img src="/img/other.png">'));
  o.route('/private/2', html('<img src="/img/secret.png">'));
  return o;
}

let dir: string;
before(() => {
  dir = tmpDir('imgdl-robots-');
});
after(async () => {
  await Promise.all(origins.map((o) => o.close()));
});

interface Failure {
  url: string;
  code: string;
  status: number | null;
  message: string;
  page?: boolean;
}

const quiet = { info() {}, warn() {}, debug() {} };

async function cli(name: string, args: string[]) {
  const out = path.join(dir, name);
  const result = await runCli([...args, '--out', out, '--storage', path.join(dir, `${name}-state`), '--quiet'], { cwd: dir, timeoutMs: CLI_TIMEOUT_MS });
  assert.equal(result.timedOut, false, result.stderr);
  return { result, out, files: listFiles(out), failures: readJsonl<Failure>(path.join(out, 'failures.jsonl')) };
}

async function plugin(name: string, urls: string[], extra: Record<string, unknown> = {}) {
  const out = path.join(dir, name);
  const summary = await runPlugin(gallery, { options: { urls }, out, storage: path.join(dir, `${name}-state`), log: quiet, retries: 0, ...extra });
  return { summary, files: listFiles(out), failures: readJsonl<Failure>(path.join(out, 'failures.jsonl')) };
}

test('robots.txt: a page disallowed for imgdl fails robots_disallowed unrequested; robots.txt fetched once per host', async () => {
  const o = await site(text(200, ROBOTS));
  const { result, files, failures } = await cli('disallowed', ['run', 'gallery', o.url('/g/1'), o.url('/g/other')]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(o.count('/private'), 0, 'the disallowed page is never requested');
  assert.equal(o.count('/robots.txt'), 1, 'robots.txt is requested once for the host');
  assert.equal(o.count('/g/1'), 1);
  assert.equal(o.count('/g/other'), 1);
  assert.deepEqual(files.filter((f) => f.endsWith('.png')), ['one.png', 'other.png']);
  assert.equal(failures.length, 1, JSON.stringify(failures));
  const [failure] = failures;
  assert.equal(failure!.url, o.url('/private/2'));
  assert.equal(failure!.code, 'robots_disallowed');
  assert.equal(failure!.page, true);
  assert.match(failure!.message, /robots\.txt disallows \/private\/2 for imgdl/);
});

test('robots.txt: --ignore-robots fetches the disallowed page, and robots.txt is not requested', async () => {
  const o = await site(text(200, ROBOTS));
  const { result, files, failures } = await cli('ignored', ['run', 'gallery', o.url('/g/1'), '--ignore-robots']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(o.count('/private/2'), 1);
  assert.equal(o.count('/robots.txt'), 0);
  assert.deepEqual(failures, []);
  assert.deepEqual(files.filter((f) => f.endsWith('.png')), ['one.png', 'secret.png']);
});

test('robots.txt: the token is the User-Agent\'s first product name (--user-agent "OtherBot/2.0" matches its group)', async () => {
  assert.equal(userAgentToken('imgdl/0.1 (+https://www.npmjs.com/package/imgdl)'), 'imgdl');
  assert.equal(userAgentToken('OtherBot/2.0'), 'otherbot');
  assert.equal(userAgentToken('  '), 'imgdl', 'no product name: imgdl');
  const o = await site(text(200, ROBOTS));
  const { summary, failures } = await plugin('token', [o.url('/g/1')], { userAgent: 'OtherBot/2.0 (+https://example.org)' });
  assert.equal(o.count('/g/1'), 0, 'otherbot is disallowed everywhere');
  assert.equal(summary.pagesFailed, 1);
  assert.deepEqual(failures.map((f) => f.code), ['robots_disallowed']);
});

test('robots.txt: a 404 allows every page', async () => {
  const o = await site(undefined);
  const { summary, files, failures } = await plugin('robots-404', [o.url('/g/1'), o.url('/g/other')]);
  assert.deepEqual(failures, []);
  assert.equal(summary.pagesFailed ?? 0, 0);
  assert.equal(o.count('/robots.txt'), 1);
  assert.equal(o.count('/private/2'), 1);
  assert.deepEqual(files.filter((f) => f.endsWith('.png')), ['one.png', 'other.png', 'secret.png']);
});

test('robots.txt: a 500 (after the run\'s retries) disallows every page of that origin for the run', async () => {
  const o = await site(text(500, 'down'));
  const { summary, files, failures } = await plugin('robots-500', [o.url('/g/1'), o.url('/g/other')], { retries: 1, retryDelay: 10 });
  assert.equal(o.count('/robots.txt'), 2, 'one retry, then the answer is kept for the run');
  assert.equal(o.count('/g/'), 0, 'no page of the origin is requested');
  assert.equal(summary.pagesFailed, 2);
  assert.deepEqual(failures.map((f) => f.code), ['robots_disallowed', 'robots_disallowed']);
  assert.match(failures[0]!.message, /robots\.txt could not be fetched \(HTTP 500\)/);
  assert.deepEqual(files.filter((f) => f.endsWith('.png')), []);
});

test('robots.txt: a redirect is followed; a robots.txt is not consulted for images from a list', async () => {
  const o = await site((_req, res) => {
    res.writeHead(301, { location: '/real-robots.txt' });
    res.end();
  });
  o.route('/real-robots.txt', text(200, 'User-agent: *\nDisallow: /private\nDisallow: /img/\n'));
  const { failures } = await plugin('robots-redirect', [o.url('/g/1')]);
  assert.deepEqual(failures.map((f) => [f.url, f.code]), [[o.url('/private/2'), 'robots_disallowed']]);
  assert.equal(o.count('/private'), 0);
  // `imgdl get` (a list of images): robots.txt is not read, and /img/ is fetched.
  const before = o.count('/robots.txt');
  const summary = await get({ items: [o.url('/img/listed.png')], out: path.join(dir, 'list'), storage: path.join(dir, 'list-state') });
  assert.equal(summary.downloaded, 1);
  assert.equal(o.count('/robots.txt'), before);
});

test('robots.txt: only its first 500 KiB is read; more than 5 redirects mean no rules', async () => {
  // Rules for imgdl past the cap are not read: /private is allowed, /nobody (before the cap) is not.
  const big = await site(text(200, `User-agent: *\nDisallow: /nobody\n${'# filler\n'.repeat(60_000)}User-agent: imgdl\nDisallow: /private\n`));
  big.route('/nobody', html('<img src="/img/nobody.png">'));
  const capped = await plugin('robots-big', [big.url('/g/1'), big.url('/nobody')]);
  assert.equal(big.count('/private/2'), 1);
  assert.equal(big.count('/nobody'), 0);
  assert.deepEqual(capped.failures.map((f) => [f.url, f.code]), [[big.url('/nobody'), 'robots_disallowed']]);

  const loop = await site(undefined);
  for (let i = 0; i < 7; i++) {
    loop.route(i === 0 ? '/robots.txt' : `/robots-${i}.txt`, (_req, res) => {
      res.writeHead(302, { location: `/robots-${i + 1}.txt` });
      res.end();
    });
  }
  loop.route('/robots-7.txt', text(200, 'User-agent: *\nDisallow: /\n'));
  const { failures } = await plugin('robots-redirects', [loop.url('/g/1')]);
  assert.deepEqual(failures, []);
  assert.equal(loop.count('/robots-7.txt'), 0, 'redirects past the fifth are not followed');
  assert.equal(loop.count('/private/2'), 1);
});

// X-Robots-Tag: which headers opt an image out.
const TAGGED: Array<[name: string, headers: OutgoingHttpHeaders, optedOut: boolean]> = [
  ['noai', { 'x-robots-tag': 'noai' }, true],
  ['noimageai', { 'x-robots-tag': 'noimageai' }, true],
  ['none', { 'x-robots-tag': 'none' }, true],
  ['scoped', { 'x-robots-tag': 'imgdl: noai' }, true],
  ['otherbot', { 'x-robots-tag': 'otherbot: noai' }, false],
  ['mixed-case', { 'X-Robots-Tag': 'NoAI' }, true],
  ['scoped-case', { 'x-robots-tag': 'IMGDL: NoImageAI' }, true],
  ['comma-list', { 'x-robots-tag': 'noindex, noai' }, true],
  ['two-headers', { 'x-robots-tag': ['otherbot: noai', 'noimageai'] }, true],
  ['two-headers-other', { 'x-robots-tag': ['otherbot: noai', 'otherbot: noimageai'] }, false],
  ['unrelated', { 'x-robots-tag': 'noindex, nofollow' }, false],
  ['untagged', {}, false],
];

async function taggedSite(): Promise<Origin> {
  const o = await site(undefined);
  for (const [name, headers] of TAGGED) o.route(`/t/${name}.png`, image(headers, name));
  // Headers that opt out, then a body that never ends: reading it would wait for the time-out.
  o.route('/t/stalled.png', (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': 100_000, 'x-robots-tag': 'noai' });
    res.write(png(4, 4).subarray(0, 16));
  });
  o.route('/t/', html([...TAGGED.map(([name]) => name), 'stalled'].map((n) => `<img src="/t/${n}.png">`).join('')));
  return o;
}

test('X-Robots-Tag: noai, noimageai, none and ones scoped to imgdl (any case, comma lists, several headers) are not saved', async () => {
  const o = await taggedSite();
  const { result, out, files, failures } = await cli('opt-out', ['run', 'gallery', o.url('/t/'), '--timeout', '20']);
  assert.equal(result.code, 1, result.stderr);
  const saved = TAGGED.filter(([, , optedOut]) => !optedOut).map(([name]) => `${name}.png`);
  assert.deepEqual(files.filter((f) => f.endsWith('.png')), saved.sort());
  const expected = [...TAGGED.filter(([, , optedOut]) => optedOut).map(([name]) => name), 'stalled'];
  assert.deepEqual(failures.map((f) => new URL(f.url).pathname).sort(), expected.map((n) => `/t/${n}.png`).sort());
  for (const f of failures) assert.equal(f.code, 'opted_out', JSON.stringify(f));
  for (const name of expected) assert.equal(o.count(`/t/${name}.png`), 1, `${name}: not retried`);
  assert.ok(!fs.existsSync(path.join(out, '.imgdl-tmp')) || listFiles(path.join(out, '.imgdl-tmp')).length === 0, 'no temporary file left');
  assert.ok(result.ms < 20_000, `decided on the headers, the stalled body is never waited for (${result.ms} ms)`);
});

test('X-Robots-Tag: --ignore-opt-out saves them; --opt-out-directives picks which directives count', async () => {
  const o = await taggedSite();
  o.route('/t/', html(TAGGED.map(([name]) => `<img src="/t/${name}.png">`).join('')));
  const all = await cli('ignore-opt-out', ['run', 'gallery', o.url('/t/'), '--ignore-opt-out']);
  assert.equal(all.result.code, 0, all.result.stderr);
  assert.deepEqual(all.failures, []);
  assert.deepEqual(all.files.filter((f) => f.endsWith('.png')), TAGGED.map(([name]) => `${name}.png`).sort());
  const some = await plugin('directives', [o.url('/t/')], { optOutDirectives: 'noimageai' });
  assert.deepEqual(some.failures.map((f) => new URL(f.url).pathname).sort(), ['/t/noimageai.png', '/t/scoped-case.png', '/t/two-headers.png']);
});

test('X-Robots-Tag parsing and option validation', async () => {
  const token = 'imgdl';
  assert.equal(optOutDirective('max-image-preview: large, noai', OPT_OUT_DIRECTIVES, token), 'noai', 'a valued directive is not a scope');
  assert.equal(optOutDirective('otherbot: noindex, noai', OPT_OUT_DIRECTIVES, token), undefined, 'a scope runs to the end of its header');
  assert.equal(optOutDirective('otherbot: noindex, imgdl: noai', OPT_OUT_DIRECTIVES, token), 'noai');
  assert.equal(optOutDirective('noai', [], token), undefined, 'no directives: nothing opts out');
  const o = await site(undefined);
  const args = { items: [o.url('/img/x.png')], out: path.join(dir, 'bad'), storage: path.join(dir, 'bad-state') };
  await assert.rejects(get({ ...args, ignoreOptOut: 'yes' as unknown as boolean }), /Expected `ignoreOptOut` to be a boolean/);
  await assert.rejects(get({ ...args, optOutDirectives: 'no ai' }), /Expected `optOutDirectives` to be a list/);
  await assert.rejects(runPlugin(gallery, { options: { urls: [o.url('/g/1')] }, ignoreRobots: 1 as unknown as boolean, out: args.out, storage: args.storage }), /Expected `ignoreRobots` to be a boolean/);
});

test('robots.txt on redirect hops: a page redirected to a path the target origin disallows fails robots_disallowed, the hop never requested', async () => {
  const from = await site(text(200, 'User-agent: *\nDisallow:\n'));
  const to = await site(text(200, ROBOTS));
  const redirect = (location: string): RouteHandler => (_req, res) => {
    res.writeHead(302, { location });
    res.end();
  };
  // Across origins, within one origin, and to an allowed path across origins (saved).
  from.route('/go/away', redirect(to.url('/private/2')));
  to.route('/go/here', redirect('/private/2'));
  from.route('/go/fine', redirect(to.url('/g/other')));
  const { result, files, failures } = await cli('hops', ['run', 'gallery', from.url('/go/away'), to.url('/go/here'), from.url('/go/fine'), '--max-depth', '0']);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(to.count('/private'), 0, 'the disallowed hop is never requested');
  assert.equal(to.count('/robots.txt'), 1);
  assert.equal(from.count('/robots.txt'), 1);
  assert.equal(to.count('/g/other'), 1);
  assert.deepEqual(files.filter((f) => f.endsWith('.png')), ['other.png']);
  assert.deepEqual(failures.map((f) => [f.url, f.code, f.page]).sort(), [[from.url('/go/away'), 'robots_disallowed', true], [to.url('/go/here'), 'robots_disallowed', true]].sort());
  for (const f of failures) assert.match(f.message, /robots\.txt disallows \/private\/2 for imgdl/);
  // --ignore-robots follows them.
  const ignored = await cli('hops-ignored', ['run', 'gallery', from.url('/go/away'), '--ignore-robots', '--max-depth', '0']);
  assert.equal(ignored.result.code, 0, ignored.result.stderr);
  assert.equal(to.count('/private/2'), 1);
});
