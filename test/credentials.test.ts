// URLs with a user and password (sent as Basic auth, to their own origin only, never stored or shown) and the
// private-network guard (--block-private). Real CLI runs against fixture origins on 127.0.0.1.
// Run: node --import tsx --test test/credentials.test.ts
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { png } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { listFiles, once, readJsonl, runCli, tmpDir, type CliResult } from './helpers/cli.ts';
import { redact, Secrets, splitCredentials } from '../src/http/credentials.ts';
import { nonPublicRange } from '../src/http/address.ts';
import { createFetchClient } from '../src/http/fetch-client.ts';
import { commandLine } from '../src/cli/common.ts';
import { download, planGet } from '../src/get.ts';
import { fetchImages } from '../src/api/memory.ts';
import { Engine, DEFAULTS } from '../src/core/engine.ts';
import type { HttpClient } from '../src/http/client.ts';
import { DownloadError } from '../src/errors.ts';

const SECRET = 's3cret';
const ALICE = `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`;

interface Record_ {
  url: string;
  finalUrl: string;
  file: string;
}
interface Failure {
  url: string;
  code: string;
  message: string;
}

const origins: Origin[] = [];
after(async () => {
  await Promise.all(origins.map((o) => o.close()));
});

async function origin(): Promise<Origin> {
  const o = await startOrigin();
  origins.push(o);
  return o;
}

function sendPng(res: ServerResponse, seed: string): void {
  const body = png(8, 8, { seed });
  res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': body.length });
  res.end(body);
}

/** A PNG for alice's Basic credentials, 401 for anything else. */
function needsAlice(req: IncomingMessage, res: ServerResponse, url: URL): void {
  if (req.headers.authorization !== ALICE) {
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="x"', 'Content-Type': 'text/plain', 'Content-Length': 3 });
    return void res.end('no\n');
  }
  sendPng(res, url.pathname);
}

/** With alice's credentials: a redirect to `location`; else 401. */
function aliceRedirect(location: () => string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.headers.authorization !== ALICE) {
      res.writeHead(401, { 'Content-Type': 'text/plain', 'Content-Length': 3 });
      return void res.end('no\n');
    }
    res.writeHead(302, { Location: location(), 'Content-Length': 0 });
    res.end();
  };
}

/** Every file under `dirs` (images, reports, run.json, the SQLite database and its WAL) holding `needle`. */
function filesHolding(needle: string, ...dirs: string[]): string[] {
  const hits: string[] = [];
  for (const dir of dirs) {
    for (const rel of listFiles(dir)) {
      const file = path.join(dir, rel);
      if (fs.readFileSync(file).includes(Buffer.from(needle))) hits.push(file);
    }
  }
  return hits;
}

function assertNoLeak(run: CliResult, ...dirs: string[]): void {
  assert.ok(!run.stdout.includes(SECRET), `stdout shows the password:\n${run.stdout}`);
  assert.ok(!run.stderr.includes(SECRET), `stderr shows the password:\n${run.stderr}`);
  assert.deepEqual(filesHolding(SECRET, ...dirs), [], 'no file holds the password');
}

// ---------------------------------------------------------------- unit: redact, splitCredentials, Secrets

test('redact: the password becomes ***, the user name and everything else stay as written', () => {
  assert.equal(redact('http://alice:s3cret@host/x.png'), 'http://alice:***@host/x.png');
  assert.equal(redact('https://al%20ice:p%40ss%3Aw@host:8443/a?b=c#d'), 'https://al%20ice:***@host:8443/a?b=c#d');
  // A raw `@` in the password: the last `@` of the authority ends the userinfo, as URL parsers read it.
  assert.equal(redact('http://u:p@ss@host/x'), 'http://u:***@host/x');
  assert.equal(redact('http://:pw@host/x'), 'http://:***@host/x');
  // No password: nothing secret, nothing changed.
  assert.equal(redact('http://bob@host/x'), 'http://bob@host/x');
  assert.equal(redact('http://host/a@b'), 'http://host/a@b');
  assert.equal(redact('--base-url=http://u:pw@h/ and https://v:w@k'), '--base-url=http://u:***@h/ and https://v:***@k');
  assert.equal(redact(redact('http://alice:s3cret@host/')), 'http://alice:***@host/');
});

test('splitCredentials: the URL without userinfo, its redacted form and curl\'s Basic header (percent-decoded)', () => {
  const plain = splitCredentials('http://alice:s3cret@host/x.png');
  assert.equal(plain.url.href, 'http://host/x.png');
  assert.equal(plain.redacted, 'http://alice:***@host/x.png');
  assert.equal(plain.authorization, ALICE);

  const encoded = splitCredentials('http://al%20ice:p%40ss%3Aw%C3%A9@host/');
  assert.equal(encoded.url.href, 'http://host/');
  assert.equal(encoded.redacted, 'http://al%20ice:***@host/');
  assert.equal(Buffer.from(encoded.authorization!.slice('Basic '.length), 'base64').toString('utf8'), 'al ice:p@ss:wé');

  const at = splitCredentials('http://u:p@ss@host/x');
  assert.equal(at.url.href, 'http://host/x');
  assert.equal(at.redacted, 'http://u:***@host/x');
  assert.equal(at.authorization, `Basic ${Buffer.from('u:p@ss').toString('base64')}`);

  const userOnly = splitCredentials('http://bob@host/x');
  assert.equal(userOnly.url.href, 'http://host/x');
  assert.equal(userOnly.redacted, 'http://bob@host/x');
  assert.equal(userOnly.authorization, `Basic ${Buffer.from('bob:').toString('base64')}`);

  const none = splitCredentials('http://host/x');
  assert.equal(none.redacted, 'http://host/x');
  assert.equal(none.authorization, undefined);
});

test('Secrets: stored URLs carry ***; the header is found in memory, or the image fails with credentials_missing', () => {
  const secrets = new Secrets();
  assert.equal(secrets.add(new URL('http://alice:s3cret@host/a.png')), 'http://alice:***@host/a.png');
  // Any stored URL of alice on that origin finds her password.
  const found = secrets.resolve(new URL('http://alice:***@host/b.png'));
  assert.equal(found.url.href, 'http://host/b.png');
  assert.equal(found.authorization, ALICE);
  assert.throws(() => secrets.resolve(new URL('http://alice:***@other/b.png')), (e: unknown) => e instanceof DownloadError && e.code === 'credentials_missing' && !e.retryable);
  assert.throws(() => new Secrets().resolve(new URL('http://alice:***@host/a.png')), /had a password, which imgdl never stores/);
  // A redacted URL given again registers nothing.
  assert.equal(secrets.add(new URL('http://carol:***@host/c.png')), 'http://carol:***@host/c.png');
  assert.throws(() => secrets.resolve(new URL('http://carol:***@host/c.png')), /credentials_missing|never stores/);
});

test('commands shown and run identities have the password as ***', () => {
  // Quoted: `*` is a shell pattern.
  assert.equal(commandLine(['get', 'http://alice:s3cret@h/x.png', '--out', 'a b']), "imgdl get 'http://alice:***@h/x.png' --out 'a b'");
  const dir = tmpDir();
  const withPassword = planGet({ inputs: ['http://alice:s3cret@h/x.png'], out: path.join(dir, 'o'), storage: path.join(dir, 's') });
  const redacted = planGet({ inputs: ['http://alice:***@h/x.png'], out: path.join(dir, 'o'), storage: path.join(dir, 's') });
  assert.equal(withPassword.run, redacted.run, 'the same command with or without the password is the same run');
});

test('nonPublicRange: loopback, private, link-local, unique-local, CGNAT, mapped IPv4 and the like are refused', () => {
  for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '100.64.0.1', '169.254.169.254', '0.0.0.0', '224.0.0.1', '::1', '::', 'fc00::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1']) {
    assert.notEqual(nonPublicRange(a), undefined, a);
  }
  for (const a of ['8.8.8.8', '93.184.216.34', '2606:4700::1111', '::ffff:8.8.8.8']) assert.equal(nonPublicRange(a), undefined, a);
});

// ---------------------------------------------------------------- CLI: credentials

const credentialRun = once(async () => {
  const a = await origin();
  a.route('/auth/x.png', needsAlice);
  const dir = tmpDir();
  const url = a.url('/auth/x.png').replace('http://', `http://alice:${SECRET}@`);
  const storage = path.join(dir, 'storage');
  const run = await runCli(['get', url, '--out', 'out', '--storage', storage, '--json', '--retries', '0'], { cwd: dir });
  const runs = await runCli(['runs', '--storage', storage], { cwd: dir });
  return { a, dir, run, runs, storage, out: path.join(dir, 'out') };
});

test('get with user:password@: sent as Basic auth, saved; metadata shows alice:***@', async () => {
  const { run, out } = await credentialRun();
  assert.equal(run.code, 0, run.stderr);
  const records = readJsonl<Record_>(path.join(out, 'metadata.jsonl'));
  assert.equal(records.length, 1);
  assert.match(records[0]!.url, /^http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+\/auth\/x\.png$/);
  assert.ok(!records[0]!.finalUrl.includes(SECRET));
  assert.ok(fs.existsSync(path.join(out, records[0]!.file)));
});

test('get with user:password@: the password is in no file of the output or storage folder, nor in any output', async () => {
  const { run, runs, out, storage } = await credentialRun();
  assert.equal(run.code, 0, run.stderr);
  assertNoLeak(run, out, storage);
  assertNoLeak(runs);
  const runJson = listFiles(storage).filter((f) => f.endsWith('run.json'));
  assert.equal(runJson.length, 1);
  assert.match(fs.readFileSync(path.join(storage, runJson[0]!), 'utf8'), /alice:\*\*\*@/);
  assert.match(runs.stdout, /imgdl get 'http:\/\/alice:\*\*\*@127\.0\.0\.1/);
});

test('redirects: credentials go to the same origin only; a Location\'s own userinfo is never used', async () => {
  const a = await origin();
  const b = await origin();
  const seenByB: Array<string | undefined> = [];
  b.route('/seen.png', (req, res, url) => {
    seenByB.push(req.headers.authorization);
    sendPng(res, url.pathname);
  });
  a.route('/auth/x.png', needsAlice);
  a.route('/auth/out.png', aliceRedirect(() => b.url('/seen.png')));
  a.route('/auth/out-userinfo.png', aliceRedirect(() => b.url('/seen.png?2').replace('http://', 'http://mallory:evil@')));
  a.route('/auth/in.png', aliceRedirect(() => '/auth/x.png'));
  // Same origin, another user in the Location: dropped; alice's credentials still go (same origin).
  a.route('/auth/in-userinfo.png', aliceRedirect(() => a.url('/auth/x.png?2').replace('http://', 'http://mallory:evil@')));
  const dir = tmpDir();
  const cred = (p: string) => a.url(p).replace('http://', `http://alice:${SECRET}@`);
  const run = await runCli(
    ['get', cred('/auth/out.png'), cred('/auth/out-userinfo.png'), cred('/auth/in.png'), cred('/auth/in-userinfo.png'), '--out', 'out', '--storage', 'storage', '--retries', '0'],
    { cwd: dir },
  );
  assert.equal(run.code, 0, `${run.stderr}\n${JSON.stringify(readJsonl(path.join(dir, 'out', 'failures.jsonl')))}`);
  assert.equal(seenByB.length, 2);
  assert.deepEqual(seenByB, [undefined, undefined], 'the other origin got no Authorization header');
  assert.equal(a.count('/auth/x.png'), 2, 'both same-origin redirects were followed with the credentials');
  const records = readJsonl<Record_>(path.join(dir, 'out', 'metadata.jsonl'));
  assert.equal(records.length, 4);
  for (const r of records) {
    assert.match(r.url, /alice:\*\*\*@/);
    assert.ok(!r.finalUrl.includes('evil') && !r.finalUrl.includes(SECRET), r.finalUrl);
  }
  assertNoLeak(run, path.join(dir, 'out'), path.join(dir, 'storage'));
});

test('a list with a credentialed URL: run again, nothing is fetched again and nothing leaks', async () => {
  const a = await origin();
  a.route('/auth/list.png', needsAlice);
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'list.txt'), `${a.url('/auth/list.png').replace('http://', `http://alice:${SECRET}@`)}\n${a.url('/img/plain.png')}\n`);
  const args = ['get', 'list.txt', '--storage', 'storage', '--json', '--retries', '0'];
  const first = await runCli(args, { cwd: dir });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(JSON.parse(first.stdout).downloaded, 2);
  const again = await runCli(args, { cwd: dir });
  assert.equal(again.code, 0, again.stderr);
  const summary = JSON.parse(again.stdout) as { downloaded: number; skipped: number; failed: number };
  assert.equal(summary.downloaded, 0);
  assert.equal(summary.failed, 0);
  assert.equal(a.count('/auth/list.png'), 1, 'the image was fetched once');
  assertNoLeak(first, path.join(dir, 'list'), path.join(dir, 'storage'));
  assertNoLeak(again, path.join(dir, 'list'), path.join(dir, 'storage'));
});

test('a stored URL whose password was not given again fails with credentials_missing, not retried, nothing sent', async () => {
  const a = await origin();
  a.route('/auth/gone.png', needsAlice);
  const dir = tmpDir();
  // What "Resume with" and `imgdl runs` show: the password as ***.
  const run = await runCli(['get', a.url('/auth/gone.png').replace('http://', 'http://alice:***@'), '--out', 'out', '--storage', 'storage'], { cwd: dir });
  assert.equal(run.code, 1, run.stderr);
  const failures = readJsonl<Failure>(path.join(dir, 'out', 'failures.jsonl'));
  assert.equal(failures.length, 1);
  assert.equal(failures[0]!.code, 'credentials_missing');
  assert.match(failures[0]!.message, /give the list or URL again/);
  assert.equal(a.log.length, 0, 'nothing was sent without the password');
});

test('fetchImages: credentials work in memory; results show alice:***@', async () => {
  const a = await origin();
  a.route('/auth/mem.png', needsAlice);
  const [result] = await fetchImages([a.url('/auth/mem.png').replace('http://', `http://alice:${SECRET}@`)], { retries: 0 });
  assert.ok(result!.ok, JSON.stringify(result));
  assert.match(result!.url, /^http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+\/auth\/mem\.png$/);
  assert.ok(!result!.finalUrl.includes(SECRET));
  const [bad] = await fetchImages([`http://alice:${SECRET}@[bad/x.png`], { retries: 0 });
  assert.equal(bad!.ok, false);
  assert.ok(!bad!.url.includes(SECRET), bad!.url);
});

test('download(): a credentialed URL is saved, and its result (url, record) shows alice:***@', async () => {
  const a = await origin();
  a.route('/auth/lib.png', needsAlice);
  const dir = tmpDir();
  const { summary, results } = await download([a.url('/auth/lib.png').replace('http://', `http://alice:${SECRET}@`)], {
    out: path.join(dir, 'out'),
    storage: path.join(dir, 'storage'),
    retries: 0,
  });
  assert.equal(summary.downloaded, 1);
  const [r] = results;
  assert.equal(r!.status, 'saved', JSON.stringify(r));
  assert.match(r!.url, /^http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+\/auth\/lib\.png$/);
  assert.deepEqual(filesHolding(SECRET, path.join(dir, 'out'), path.join(dir, 'storage')), []);
});

// ---------------------------------------------------------------- --block-private

test('--block-private: loopback by IP, by name and as mapped IPv6 fails with private_address, no request sent', async () => {
  const a = await origin();
  const port = new URL(a.base).port;
  const urls = [a.url('/img/ip.png'), `http://localhost:${port}/img/name.png`, `http://[::ffff:127.0.0.1]:${port}/img/mapped.png`];
  const dir = tmpDir();
  const run = await runCli(['get', ...urls, '--out', 'out', '--storage', 'storage', '--block-private', '--retries', '0'], { cwd: dir });
  assert.equal(run.code, 1, run.stderr);
  const failures = readJsonl<Failure>(path.join(dir, 'out', 'failures.jsonl'));
  assert.equal(failures.length, 3, JSON.stringify(failures));
  for (const f of failures) assert.equal(f.code, 'private_address', JSON.stringify(f));
  assert.equal(a.log.length, 0, 'the origin saw no request');
});

test('without --block-private the same hosts are fetched', async () => {
  const a = await origin();
  const port = new URL(a.base).port;
  const dir = tmpDir();
  const urls = [a.url('/img/ip.png'), `http://localhost:${port}/img/name.png`, `http://[::ffff:127.0.0.1]:${port}/img/mapped.png`];
  const run = await runCli(['get', ...urls, '--out', 'out', '--storage', 'storage', '--retries', '0'], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(readJsonl(path.join(dir, 'out', 'metadata.jsonl')).length, 3);
});

test('blockPrivateNetwork: a redirect from a public host to a private one is refused at that hop', async () => {
  const a = await origin();
  const asked: string[] = [];
  // A stand-in for a public origin (a literal public address; never contacted: this client answers for it).
  const http: HttpClient = {
    async get(url) {
      asked.push(url.href);
      return {
        status: 302,
        headers: { location: a.url('/img/x.png') },
        body: (async function* () {})(),
        dump: async () => {},
      };
    },
    async close() {},
  };
  const dir = tmpDir();
  const engine = await Engine.open({
    stateDir: path.join(dir, 'state'),
    outDir: path.join(dir, 'out'),
    options: { ...DEFAULTS, retries: 0, blockPrivateNetwork: true },
    items: [{ url: 'http://93.184.216.34/start.png' }],
    http,
  });
  const summary = await engine.run();
  assert.equal(summary.failed, 1);
  assert.deepEqual(summary.failuresByCode, { private_address: 1 });
  assert.deepEqual(asked, ['http://93.184.216.34/start.png'], 'the private hop was never requested');
  assert.equal(a.log.length, 0);
});

test('fetch client (Bun\'s): blockPrivateNetwork resolves the host before each request and refuses loopback', async () => {
  const a = await origin();
  const port = new URL(a.base).port;
  const client = createFetchClient({ connectionsPerHost: 4, connectTimeoutMs: 5000, stallTimeoutMs: 5000, blockPrivateNetwork: true });
  try {
    for (const url of [`http://localhost:${port}/img/f.png`, a.url('/img/f.png')]) {
      await assert.rejects(client.get(new URL(url), { signal: new AbortController().signal }), (e: unknown) => e instanceof DownloadError && e.code === 'private_address');
    }
  } finally {
    await client.close();
  }
  assert.equal(a.log.length, 0);
});

test('blockPrivateNetwork is validated like the other options', async () => {
  await assert.rejects(fetchImages([], { blockPrivateNetwork: 'yes' as unknown as boolean }), /Expected `blockPrivateNetwork` to be a boolean/);
});
