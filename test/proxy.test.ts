// Proxies: --proxy, $HTTP_PROXY / $HTTPS_PROXY / $NO_PROXY, proxy credentials and a dead proxy, through a real HTTP
// proxy server (the `proxy` package, TooTallNate's: what Squid does, in Node) started here on 127.0.0.1. Every
// server is closed at the end; every CLI run is bounded by runCli's timeout.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { createProxy } from 'proxy';
import { spawnSync } from 'node:child_process';
import https from 'node:https';
import { BIN, listFiles, readJsonl, REPO_ROOT, runCli, runProcess, tmpDir } from './helpers/cli.ts';
import { assertFolder, failureCodes } from './helpers/invariants.ts';
import { startOrigin, type Origin, type RouteHandler } from './helpers/origin.ts';
import { envProxy } from '../src/cli/common.ts';
import { proxyFor, proxySettings } from '../src/http/proxy.ts';
import { fetchImages } from '../src/index.ts';

const CLI_TIMEOUT_MS = 90_000;

interface ProxyServer {
  /** `http://127.0.0.1:PORT` */
  base: string;
  port: number;
  /** What it was asked, in order: `GET http://host/path` for forwarded requests, `CONNECT host:port` for tunnels. */
  seen: string[];
  /** Requests it refused with 407. */
  refused: number;
  close(): Promise<void>;
}

const servers: Array<{ close(): Promise<void> }> = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** A real HTTP proxy on 127.0.0.1; with `user`/`password`, it answers 407 to requests without exactly those. */
async function startProxy(auth?: { user: string; password: string }): Promise<ProxyServer> {
  const server = createProxy(http.createServer());
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const p: ProxyServer = { base: '', port: 0, seen: [], refused: 0, close: async () => {} };
  // Registered before createProxy's own listeners run the request (they were added first, so this one sees it too).
  server.on('request', (req: http.IncomingMessage) => p.seen.push(`${req.method} ${req.url}`));
  server.on('connect', (req: http.IncomingMessage) => p.seen.push(`CONNECT ${req.url}`));
  if (auth) {
    const expected = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
    server.authenticate = (req) => {
      const ok = req.headers['proxy-authorization'] === expected;
      if (!ok) p.refused++;
      return ok;
    };
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.port = (server.address() as AddressInfo).port;
  p.base = `http://127.0.0.1:${p.port}`;
  let closing: Promise<void> | undefined;
  p.close = () =>
    (closing ??= new Promise<void>((resolve) => {
      const fallback = setTimeout(resolve, 2000);
      server.close(() => {
        clearTimeout(fallback);
        resolve();
      });
      for (const s of sockets) s.destroy();
    }));
  servers.push(p);
  return p;
}

async function origin(): Promise<Origin> {
  const o = await startOrigin();
  servers.push(o);
  return o;
}

/** A port nothing listens on: a server's, closed. */
async function deadPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Records whether each request to the origin came through a proxy (the proxy package adds a Via header). */
function watchVia(o: Origin, paths: string[]): Map<string, string | undefined> {
  const via = new Map<string, string | undefined>();
  for (const p of paths) {
    const handler: RouteHandler = (req, res) => {
      via.set(p, req.headers['via']);
      const body = Buffer.from(`89504e470d0a1a0a0000000d4948445200000001000000010806000000f3ff61ff0000000d49444154789c6360000002000005a0ff75ca0000000049454e44ae426082`, 'hex');
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': body.length });
      res.end(body);
    };
    o.route(p, handler);
  }
  return via;
}

async function cli(dir: string, name: string, args: string[], env: Record<string, string> = {}) {
  const out = path.join(dir, name);
  const state = path.join(dir, `${name}-state`);
  // No proxy variable of the machine running the tests leaks in: each test sets its own.
  const clean = { http_proxy: '', HTTP_PROXY: '', https_proxy: '', HTTPS_PROXY: '', no_proxy: '', NO_PROXY: '', ...env };
  const result = await runCli([...args, '--out', out, '--storage', state], { cwd: dir, timeoutMs: CLI_TIMEOUT_MS, env: clean });
  assert.equal(result.timedOut, false, result.stderr);
  return { result, out, state };
}

function list(dir: string, urls: string[]): string {
  const file = path.join(dir, `list-${Math.random().toString(36).slice(2)}.txt`);
  fs.writeFileSync(file, urls.join('\n') + '\n');
  return file;
}

/** Every byte under `dir` (files of any kind, SQLite's included), as latin1 text to search. */
function allBytes(dir: string): string {
  return listFiles(dir).map((f) => fs.readFileSync(path.join(dir, f)).toString('latin1')).join('\n');
}

test('--proxy: every image goes through the proxy (it sees each request) and is saved', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const proxy = await startProxy();
  const o = await origin();
  const paths = Array.from({ length: 20 }, (_, i) => `/p/${i}.png`);
  const via = watchVia(o, paths);
  const urls = paths.map((p) => o.url(p));
  const { result, out } = await cli(dir, 'flag', ['get', list(dir, urls), '--proxy', proxy.base]);
  assert.equal(result.code, 0, result.stderr);
  await assertFolder(out, urls);
  // Sent to the proxy as absolute-URI requests (as curl does for http URLs), one per image.
  assert.deepEqual([...proxy.seen].sort(), urls.map((u) => `GET ${u}`).sort());
  assert.ok(paths.every((p) => via.get(p) !== undefined), 'each request reached the origin through the proxy (Via)');
});

test('$HTTP_PROXY and $http_proxy are honoured; $NO_PROXY sends the hosts it names direct', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const proxy = await startProxy();
  const proxied = await origin();
  const direct = await origin();
  const viaProxied = watchVia(proxied, ['/a.png', '/b.png']);
  const viaDirect = watchVia(direct, ['/c.png', '/d.png']);
  const urls = [proxied.url('/a.png'), proxied.url('/b.png'), direct.url('/c.png'), direct.url('/d.png')];
  const directHost = new URL(direct.base).host;
  for (const [name, env] of [
    ['upper', { HTTP_PROXY: proxy.base, NO_PROXY: `example.org, ${directHost}` }],
    ['lower', { http_proxy: proxy.base, no_proxy: directHost, HTTP_PROXY: 'http://127.0.0.1:9' }],
  ] as const) {
    proxy.seen.length = 0;
    viaDirect.clear();
    const { result, out } = await cli(dir, name, ['get', list(dir, urls)], env);
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    await assertFolder(out, urls);
    assert.deepEqual([...proxy.seen].sort(), [`GET ${urls[0]}`, `GET ${urls[1]}`], name);
    assert.ok(viaProxied.get('/a.png') !== undefined, name);
    assert.deepEqual([...viaDirect.entries()], [['/c.png', undefined], ['/d.png', undefined]], `${name}: NO_PROXY hosts went direct`);
  }
  // --noproxy '*' (and --proxy '') override the environment: nothing goes through the proxy.
  for (const args of [['--noproxy', '*'], ['--proxy=']]) {
    proxy.seen.length = 0;
    const { result, out } = await cli(dir, `none${args.length}`, ['get', list(dir, urls), ...args], { HTTP_PROXY: proxy.base });
    assert.equal(result.code, 0, result.stderr);
    await assertFolder(out, urls);
    assert.deepEqual(proxy.seen, [], args.join(' '));
  }
});

test('proxy credentials: sent to a proxy that requires Basic auth; the password is never printed or stored; a wrong one fails `proxy` 407', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const password = 'pr0xy-s3cret@x';
  const proxy = await startProxy({ user: 'alice', password });
  const o = await origin();
  const urls = Array.from({ length: 5 }, (_, i) => o.url(`/img/auth-${i}.png`));
  const proxyUrl = `http://alice:${encodeURIComponent(password)}@127.0.0.1:${proxy.port}`;
  const secrets = [password, encodeURIComponent(password), Buffer.from(`alice:${password}`).toString('base64')];
  const leaks = (where: string, text: string): void => {
    for (const s of secrets) assert.ok(!text.includes(s), `the password (${s}) appears in ${where}`);
  };

  // Given with --proxy, and in $HTTPS_PROXY / $HTTP_PROXY.
  const good = await cli(dir, 'good', ['get', list(dir, urls), '--proxy', proxyUrl, '--json']);
  assert.equal(good.result.code, 0, good.result.stderr);
  await assertFolder(good.out, urls);
  assert.equal(proxy.seen.length, urls.length + proxy.refused);
  const env = await cli(dir, 'env', ['get', list(dir, urls), '--json'], { HTTP_PROXY: proxyUrl });
  assert.equal(env.result.code, 0, env.result.stderr);
  await assertFolder(env.out, urls);

  // Wrong password: every image fails with `proxy` (status 407, not retried), the run goes on to the end.
  const refusedBefore = proxy.refused;
  const bad = await cli(dir, 'bad', ['get', list(dir, urls), '--proxy', `http://alice:wrong-${encodeURIComponent(password)}@127.0.0.1:${proxy.port}`, '--json']);
  assert.equal(bad.result.code, 1, bad.result.stderr);
  const failures = readJsonl<{ url: string; code: string; status: number; message: string }>(path.join(bad.out, 'failures.jsonl'));
  assert.deepEqual(failures.map((f) => [f.url, f.code, f.status]).sort(), urls.map((u) => [u, 'proxy', 407]).sort());
  assert.match(failures[0]!.message, /407 Proxy Authentication Required.*refused the user and password/);
  assert.match(failures[0]!.message, /alice:\*\*\*@127\.0\.0\.1/);
  assert.equal(proxy.refused - refusedBefore, urls.length, 'a 407 is not retried');
  // No password: the message says what is missing.
  const none = await cli(dir, 'none', ['get', list(dir, [urls[0]!]), '--proxy', proxy.base]);
  assert.equal(none.result.code, 1);
  assert.match(readJsonl<{ message: string }>(path.join(none.out, 'failures.jsonl'))[0]!.message, /needs a user and password/);

  // Nowhere: not in what was printed, the records, the failure report, the run state (SQLite files included), nor
  // in the command `imgdl runs` shows to resume the run.
  for (const r of [good, env, bad]) {
    leaks('stdout/stderr', r.result.stdout + r.result.stderr);
    leaks('the output folder', allBytes(r.out));
    leaks('the run state', allBytes(r.state));
  }
  const runs = await runCli(['runs', '--storage', good.state], { cwd: dir, timeoutMs: CLI_TIMEOUT_MS });
  assert.equal(runs.code, 0, runs.stderr);
  assert.match(runs.stdout + runs.stderr, /--proxy '?http:\/\/alice:\*\*\*@127\.0\.0\.1/);
  leaks('imgdl runs', runs.stdout + runs.stderr);
});

test('a dead proxy: each image fails `proxy` with one clear line, the run goes on (hosts in NO_PROXY are saved)', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const port = await deadPort();
  const proxied = await origin();
  const direct = await origin();
  const lost = Array.from({ length: 10 }, (_, i) => proxied.url(`/img/lost-${i}.png`));
  const saved = Array.from({ length: 10 }, (_, i) => direct.url(`/img/kept-${i}.png`));
  const { result, out } = await cli(dir, 'dead', ['get', list(dir, [...lost, ...saved]), '--proxy', `http://bob:hunter2@127.0.0.1:${port}`, '--noproxy', new URL(direct.base).host, '--retries', '2', '--retry-delay', '20', '--json'], {});
  assert.equal(result.code, 1, result.stderr);
  await assertFolder(out, saved);
  const codes = failureCodes(out);
  assert.deepEqual([...codes.keys()].sort(), [...lost].sort());
  assert.ok([...codes.values()].every((c) => c === 'proxy'), JSON.stringify([...codes.values()]));
  const failure = readJsonl<{ message: string }>(path.join(out, 'failures.jsonl'))[0]!;
  assert.match(failure.message, new RegExp(`Could not reach the proxy http://bob:\\*\\*\\*@127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  assert.equal(proxied.log.length, 0, 'nothing reached the proxied origin');
  const summary = JSON.parse(result.stdout) as { failuresByCode: Record<string, number>; downloaded: number };
  assert.deepEqual(summary.failuresByCode, { proxy: lost.length });
  assert.ok(!(result.stdout + result.stderr + allBytes(out)).includes('hunter2'));
});

test('plugin pages and robots.txt go through the proxy too', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const proxy = await startProxy();
  const o = await origin();
  o.route('/robots.txt', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('User-agent: *\nDisallow: /private\n');
  });
  o.route('/g/1', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><html><head><title>g</title><link rel="next" href="/private/2"></head><body><img src="/img/one.png"></body></html>');
  });
  const { result, out } = await cli(dir, 'plugin', ['run', 'gallery', o.url('/g/1'), '--proxy', proxy.base, '--quiet']);
  assert.equal(result.code, 1, result.stderr); // the /private page is disallowed
  assert.deepEqual(listFiles(out).filter((f) => f.endsWith('.png')), ['one.png']);
  assert.deepEqual(proxy.seen, [`GET ${o.url('/robots.txt')}`, `GET ${o.url('/g/1')}`, `GET ${o.url('/img/one.png')}`]);
  assert.deepEqual([...failureCodes(out).entries()], [[o.url('/private/2'), 'robots_disallowed']]);
});

test('--block-private with a proxy: names are resolved and checked here before the proxy is asked; unresolvable names are refused', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const proxy = await startProxy();
  const o = await origin();
  const port = new URL(o.base).port;
  const urls = [`http://localhost:${port}/img/a.png`, o.url('/img/b.png'), 'http://no-such-host.invalid/c.png'];
  const { result, out } = await cli(dir, 'guard', ['get', list(dir, urls), '--proxy', proxy.base, '--block-private', '--retries', '0']);
  assert.equal(result.code, 1, result.stderr);
  assert.deepEqual([...failureCodes(out).entries()].sort(), urls.map((u) => [u, 'private_address']).sort());
  assert.deepEqual(proxy.seen, [], 'the proxy was never asked for a refused host');
  assert.equal(o.log.length, 0);
});

test('a bad proxy value is refused before any request: --proxy and the variable it came from named, exit 2', async () => {
  const dir = tmpDir('imgdl-proxy-');
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--proxy', 'socks5://127.0.0.1:1080'], {}, /`--proxy` to be an http:\/\/ or https:\/\/ proxy, got socks5:/],
    [['--proxy', 'http://u:topsecret@127.0.0.1:3128/path'], {}, /not a URL with a path: "http:\/\/u:\*\*\*@127\.0\.0\.1:3128\/path"/],
    [[], { HTTPS_PROXY: 'ftp://u:topsecret@proxy.example' }, /`\$HTTPS_PROXY` to be an http:\/\/ or https:\/\/ proxy, got ftp:/],
  ];
  for (const [args, env, message] of cases) {
    const { result } = await cli(dir, 'bad', ['get', 'http://127.0.0.1:9/x.png', ...args], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, message);
    assert.ok(!result.stderr.includes('topsecret'), result.stderr);
  }
});

test('the library: fetchImages({ proxy }) goes through it; a { http, noProxy } object too', async () => {
  const proxy = await startProxy();
  const o = await origin();
  const urls = [o.url('/img/lib-1.png'), o.url('/img/lib-2.png')];
  const results = await fetchImages(urls, { proxy: proxy.base, retries: 0 });
  assert.ok(results.every((r) => r.ok), JSON.stringify(results));
  assert.deepEqual(proxy.seen, urls.map((u) => `GET ${u}`));
  proxy.seen.length = 0;
  const bypassed = await fetchImages(urls, { proxy: { http: proxy.base, noProxy: ['127.0.0.1'] }, retries: 0 });
  assert.ok(bypassed.every((r) => r.ok));
  assert.deepEqual(proxy.seen, []);
});

test('proxyFor: NO_PROXY as curl reads it (hosts, subdomains, ports, `*`); envProxy: lower case first, flags over the environment', () => {
  const s = proxySettings('proxy', { http: 'proxy.lan:3128', https: 'https://secure.lan', noProxy: 'localhost, .example.com,*.corp.net 10.0.0.7:8080,[::1]' })!;
  const via = (u: string) => proxyFor(s, new URL(u))?.origin;
  assert.equal(via('http://a.test/x'), 'http://proxy.lan:3128');
  assert.equal(via('https://a.test/x'), 'https://secure.lan');
  for (const u of ['http://localhost/x', 'http://example.com/', 'http://img.example.com/', 'http://a.corp.net/', 'http://10.0.0.7:8080/', 'http://[::1]:99/']) {
    assert.equal(via(u), undefined, u);
  }
  for (const u of ['http://notexample.com/', 'http://10.0.0.7/', 'http://10.0.0.7:8081/']) assert.equal(via(u), 'http://proxy.lan:3128', u);
  assert.equal(proxyFor(proxySettings('proxy', { http: 'http://p:1', noProxy: '*' }), new URL('http://a.test/')), undefined);
  assert.equal(proxySettings('proxy', { http: '', https: false }), undefined);
  // Credentials: decoded into the Authorization, shown as ***.
  const auth = proxySettings('proxy', 'http://al%40ice:p%3Ass@p.lan:1')!;
  assert.equal(auth.http!.authorization, `Basic ${Buffer.from('al@ice:p:ss').toString('base64')}`);
  assert.equal(auth.http!.label, 'http://al%40ice:***@p.lan:1');

  assert.deepEqual(envProxy({}, { http_proxy: 'http://lower:1', HTTP_PROXY: 'http://upper:1', NO_PROXY: 'a.test' }), { http: 'http://lower:1', https: false, noProxy: 'a.test' });
  assert.deepEqual(envProxy({}, { HTTPS_PROXY: 'http://s:1' }), { http: false, https: 'http://s:1', noProxy: '' });
  assert.deepEqual(envProxy({ proxy: 'http://flag:1', noproxy: 'b.test' }, { HTTP_PROXY: 'http://env:1', no_proxy: 'a.test' }), { http: 'http://flag:1', https: 'http://flag:1', noProxy: 'b.test' });
  assert.equal(envProxy({ proxy: '' }, { HTTP_PROXY: 'http://env:1' }), undefined);
  assert.equal(envProxy({}, {}), undefined);
});

test('on Bun (its fetch client) and Deno (npm undici): through a proxy with credentials; a dead proxy fails `proxy`', async (t) => {
  const password = 'bun-s3cret';
  const proxy = await startProxy({ user: 'carol', password });
  const o = await origin();
  const port = await deadPort();
  for (const [name, args] of [['bun', []], ['deno', ['run', '-A']]] as const) {
    const command = path.join(REPO_ROOT, 'node_modules', '.bin', name);
    if (spawnSync(command, ['--version'], { timeout: 30_000 }).status !== 0) {
      t.diagnostic(`${name} is not installed (npm ci installs it): skipped`);
      continue;
    }
    const dir = tmpDir('imgdl-proxy-');
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', HTTP_PROXY: '', http_proxy: '', NO_PROXY: '', no_proxy: '' };
    for (const key of ['IMGDL_STORAGE', 'CRAWLEE_STORAGE_DIR', 'IMGDL_HTTP']) delete env[key];
    const run = (out: string, url: string, proxyUrl: string) =>
      runProcess(command, [...args, BIN, 'get', url, '--proxy', proxyUrl, '--out', out, '--storage', path.join(dir, 'state'), '--retries', '0'], { cwd: dir, env, timeoutMs: CLI_TIMEOUT_MS });
    proxy.seen.length = 0;
    const url = o.url(`/img/${name}.png`);
    const good = await run(path.join(dir, 'good'), url, `http://carol:${password}@127.0.0.1:${proxy.port}`);
    assert.equal(good.code, 0, `${name}: ${good.stderr}`);
    await assertFolder(path.join(dir, 'good'), [url]);
    assert.deepEqual(proxy.seen, [`GET ${url}`], name);
    const dead = await run(path.join(dir, 'dead'), o.url(`/img/${name}-dead.png`), `http://127.0.0.1:${port}`);
    assert.equal(dead.code, 1, `${name}: ${dead.stderr}`);
    assert.deepEqual([...failureCodes(path.join(dir, 'dead')).values()], ['proxy'], name);
    assert.ok(!(good.stdout + good.stderr + allBytes(dir)).includes(password), name);
  }
});

test('an https URL goes through the proxy in a CONNECT tunnel (a self-signed origin trusted with NODE_EXTRA_CA_CERTS)', async (t) => {
  const dir = tmpDir('imgdl-proxy-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { timeout: 30_000 });
  if (made.status !== 0) {
    t.skip('openssl is not installed (apt-get install openssl): no certificate for the https origin');
    return;
  }
  const body = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000f3ff61ff0000000d49444154789c6360000002000005a0ff75ca0000000049454e44ae426082', 'hex');
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': body.length });
    res.end(body);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
  const port = (server.address() as AddressInfo).port;
  const proxy = await startProxy();
  const urls = [`https://127.0.0.1:${port}/a.png`, `https://127.0.0.1:${port}/b.png`];
  const { result, out } = await cli(dir, 'tls', ['get', list(dir, urls), '--retries', '0'], { HTTPS_PROXY: proxy.base, NODE_EXTRA_CA_CERTS: cert });
  assert.equal(result.code, 0, result.stderr);
  await assertFolder(out, urls);
  assert.ok(proxy.seen.length >= 1 && proxy.seen.every((s) => s === `CONNECT 127.0.0.1:${port}`), JSON.stringify(proxy.seen));
});
