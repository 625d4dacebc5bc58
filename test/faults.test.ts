// The faults real users hit (issue 11), each run with the real CLI against a real local origin, and each checked by
// what must hold afterwards: the exact file set, one record per URL, each record's sha256 and size equal to its
// file's, no temporary files, no false failures, the right exit code and one clear line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, readJsonl, runCli, tmpDir, type CliResult } from './helpers/cli.ts';
import { assertFolder, canMount, failureCodes, mount, remount, umount } from './helpers/invariants.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { META_OPEN, RunStore } from '../src/storage/state.ts';

/** A CLI child we can kill at any moment; always killed after `timeoutMs`. */
function spawnCli(args: string[], cwd: string, opts: { stdin?: string; timeoutMs?: number } = {}) {
  const env = { ...process.env };
  delete env['IMGDL_STORAGE'];
  delete env['CRAWLEE_STORAGE_DIR'];
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
  void exited.then(() => clearTimeout(killer));
  return { child, exited, stderr: () => stderr, stdout: () => stdout };
}

async function waitFor(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function lineCount(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

/** The last non-empty line of stderr (the one a user reads). */
function lastLine(run: CliResult): string {
  return run.stderr.trim().split('\n').filter(Boolean).pop() ?? '';
}

/** Exit 2 with one line naming `path` and matching `pattern`, no stack trace, and no request made. */
function assertRefused(run: CliResult, pattern: RegExp, where: string, origin?: Origin, requestsBefore = 0): void {
  assert.equal(run.code, 2, `exit 2 for bad usage; stderr: ${run.stderr}`);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${run.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.ok(lines[0]!.includes(where), `the line names ${where}: ${lines[0]}`);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  if (origin) assert.equal(origin.log.length, requestsBefore, 'checked before any network work');
}

/**
 * A route on `origin` that holds its answer (a PNG) until `open()` is called, or 120 s pass: a run whose list has
 * this URL cannot end before the test says so.
 */
function gate(origin: Origin, route: string) {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const bound = setTimeout(open, 120_000);
  origin.route(route, async (_req, res) => {
    await opened;
    res.writeHead(302, { location: '/img/gate.png' }).end();
  });
  return { url: origin.url(route), open: () => (clearTimeout(bound), open()) };
}

function writeList(dir: string, name: string, urls: string[]): string {
  fs.writeFileSync(path.join(dir, name), urls.join('\n') + '\n');
  return name;
}

test('two lists into one folder at once: the second run is refused with who holds the folder; run after, it replaces nothing', async () => {
  const origin = await startOrigin({ latencyMs: 5 });
  const dir = tmpDir();
  try {
    const n = 300;
    const held = gate(origin, '/gate/x.png');
    const x = [...Array.from({ length: n }, (_, i) => origin.url(`/img/a/d${i}.png?pad=3000`)), held.url];
    const y = Array.from({ length: n }, (_, i) => origin.url(`/img/b/d${i}.png?pad=3000`));
    writeList(dir, 'x.txt', x);
    writeList(dir, 'y.txt', y);
    const common = ['--out', 'pics', '-c', '16', '--storage', 'state', '--quiet'];
    const first = spawnCli(['get', 'x.txt', ...common], dir);
    await waitFor(() => lineCount(path.join(dir, 'pics', 'metadata.jsonl')) > 0 || origin.log.length > 20, 'the first run to start');
    const second = await runCli(['get', 'y.txt', ...common], { cwd: dir });
    assert.equal(first.child.exitCode, null, 'the first run is still going (held at its last image)');
    assertRefused(second, /is being written by another imgdl run \(process \d+, run get-x-/, path.join(dir, 'pics'));
    held.open();
    assert.equal(await first.exited, 0, first.stderr());
    await assertFolder(path.join(dir, 'pics'), x);

    // Afterwards, y into the same folder: its files take stable suffixed names; x's files are untouched.
    const later = await runCli(['get', 'y.txt', ...common], { cwd: dir });
    assert.equal(later.code, 0, later.stderr);
    const records = await assertFolder(path.join(dir, 'pics'), [...x, ...y]);
    const yFiles = records.filter((r) => r.url.includes('/b/')).map((r) => r.file);
    assert.ok(yFiles.every((f) => /^d\d+-[0-9a-f]{8}\.png$/.test(f)), 'the later list got suffixed names');
    assert.deepEqual(failureCodes(path.join(dir, 'pics')), new Map(), 'no false write_failed');
  } finally {
    await origin.close();
  }
});

test('a file that appears under an image\'s name while it downloads is never replaced', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  let arrived = false;
  origin.route('/slow/photo.png', async (_req, res) => {
    arrived = true;
    await sleep(800);
    const body = fs.readFileSync(path.join(dir, 'real.png'));
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': body.length }).end(body);
  });
  try {
    // A real PNG for the route to serve, made by a first run.
    const seed = await runCli(['get', origin.url('/img/real.png?w=4&h=4'), '--out', '.', '--storage', 'state0', '--quiet'], { cwd: dir });
    assert.equal(seed.code, 0, seed.stderr);
    const run = spawnCli(['get', origin.url('/slow/photo.png'), '--out', 'out', '--storage', 'state', '--quiet'], dir);
    await waitFor(() => arrived, 'the request');
    fs.writeFileSync(path.join(dir, 'out', 'photo.png'), 'not ours: written by someone else meanwhile');
    assert.equal(await run.exited, 0, run.stderr());
    assert.equal(fs.readFileSync(path.join(dir, 'out', 'photo.png'), 'utf8'), 'not ours: written by someone else meanwhile');
    const [record] = await assertFolder(path.join(dir, 'out'), [origin.url('/slow/photo.png')], { foreign: ['photo.png'] });
    assert.match(record!.file, /^photo-[0-9a-f]{8}\.png$/);
  } finally {
    await origin.close();
  }
});

/** Kills a run of `urls` with SIGKILL once `atLeast` records are written, then damages its state with `damage`. */
async function killAndDamage(origin: Origin, dir: string, urls: string[], atLeast: number, damage: (stateDir: string) => void) {
  writeList(dir, 'list.txt', urls);
  const args = ['get', 'list.txt', '-c', '16', '--storage', 'state', '--quiet'];
  const first = spawnCli(args, dir);
  await waitFor(() => lineCount(path.join(dir, 'list', 'metadata.jsonl')) >= atLeast, `${atLeast} records`);
  first.child.kill('SIGKILL');
  await first.exited;
  const [runDir] = fs.readdirSync(path.join(dir, 'state', 'runs'));
  damage(path.join(dir, 'state', 'runs', runDir!));
  return args;
}

test('state lost after kill -9 (the WAL and SHM deleted, as a power cut can amount to): the rerun finishes the list, no duplicate, exit 0', async () => {
  const origin = await startOrigin({ latencyMs: 10 });
  const dir = tmpDir();
  try {
    const urls = Array.from({ length: 600 }, (_, i) => origin.url(`/img/w${i}.png?pad=1500`));
    const args = await killAndDamage(origin, dir, urls, 150, (stateDir) => {
      for (const f of ['state.sqlite-wal', 'state.sqlite-shm']) fs.rmSync(path.join(stateDir, f), { force: true });
    });
    const rerun = await runCli(args, { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    await assertFolder(path.join(dir, 'list'), urls);
  } finally {
    await origin.close();
  }
});

test('a torn WAL (its tail cut) after kill -9: the rerun finishes the list with no duplicate record or file, exit 0', async () => {
  const origin = await startOrigin({ latencyMs: 10 });
  const dir = tmpDir();
  try {
    const urls = Array.from({ length: 600 }, (_, i) => origin.url(`/img/t${i}.png?pad=1500`));
    const args = await killAndDamage(origin, dir, urls, 200, (stateDir) => {
      const wal = path.join(stateDir, 'state.sqlite-wal');
      const size = fs.statSync(wal).size;
      assert.ok(size > 0, 'the WAL holds the run');
      fs.truncateSync(wal, Math.floor(size / 3));
    });
    const before = origin.log.length;
    const rerun = await runCli(args, { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    await assertFolder(path.join(dir, 'list'), urls);
    // What the lost state knew is found again in the folder: refetched are at most the images saved after the cut.
    assert.ok(origin.log.length - before <= urls.length, 'no image fetched more than once by the rerun');
  } finally {
    await origin.close();
  }
});

test('--fresh while the run is live is refused (exit 2, who holds it); the live run ends complete', async () => {
  const origin = await startOrigin({ latencyMs: 20 });
  const dir = tmpDir();
  try {
    const held = gate(origin, '/gate/f.png');
    const urls = [...Array.from({ length: 200 }, (_, i) => origin.url(`/img/f${i}.png`)), held.url];
    writeList(dir, 'list.txt', urls);
    const args = ['get', 'list.txt', '-c', '4', '--storage', 'state', '--quiet'];
    const live = spawnCli(args, dir);
    await waitFor(() => lineCount(path.join(dir, 'list', 'metadata.jsonl')) > 0, 'the first records');
    const fresh = await runCli([...args, '--fresh'], { cwd: dir });
    assertRefused(fresh, /is in use by process \d+ \(run get-list-[0-9a-f]+\)/, path.join(dir, 'state', 'runs'));
    const [runName] = fs.readdirSync(path.join(dir, 'state', 'runs'));
    const clean = await runCli(['runs', '--clean', runName!, '--storage', 'state'], { cwd: dir });
    assertRefused(clean, /is in use by process \d+/, runName!);
    held.open();
    assert.equal(await live.exited, 0, live.stderr());
    await assertFolder(path.join(dir, 'list'), urls);
    assert.deepEqual(failureCodes(path.join(dir, 'list')), new Map());
    // Once the run has ended, --fresh starts over: every image is fetched again, and lands on its own file.
    const again = await runCli([...args, '--fresh'], { cwd: dir });
    assert.equal(again.code, 0, again.stderr);
    await assertFolder(path.join(dir, 'list'), urls);
  } finally {
    await origin.close();
  }
});

test('a list on stdin is known by its content: a second list piped into the same folder is downloaded', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  try {
    const a = [origin.url('/img/s1.png'), origin.url('/img/s2.png')];
    const b = [origin.url('/img/s3.png'), origin.url('/img/s4.png')];
    const args = ['get', '-', '--out', 'pics', '--storage', 'state', '--quiet', '--json'];
    const first = spawnCli(args, dir, { stdin: a.join('\n') + '\n' });
    assert.equal(await first.exited, 0, first.stderr());
    const second = spawnCli(args, dir, { stdin: b.join('\n') + '\n' });
    assert.equal(await second.exited, 0, second.stderr());
    assert.equal((JSON.parse(second.stdout()) as { downloaded: number }).downloaded, 2);
    await assertFolder(path.join(dir, 'pics'), [...a, ...b]);
    // The same list again: nothing fetched twice.
    const before = origin.log.length;
    const third = spawnCli(args, dir, { stdin: b.join('\n') + '\n' });
    assert.equal(await third.exited, 0, third.stderr());
    assert.equal(origin.log.length, before);
  } finally {
    await origin.close();
  }
});

test('an unusable --out or --storage (a file, under a file) is refused before any request: exit 2, one line naming it', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  try {
    fs.writeFileSync(path.join(dir, 'afile'), 'x');
    const url = origin.url('/img/u.png');
    let run = await runCli(['get', url, '--out', 'afile', '--storage', 'state'], { cwd: dir });
    assertRefused(run, /Cannot use the output folder .*: it is a file, not a folder/, path.join(dir, 'afile'), origin);
    run = await runCli(['get', url, '--out', 'afile/sub', '--storage', 'state'], { cwd: dir });
    assertRefused(run, /Cannot use the output folder/, path.join(dir, 'afile', 'sub'), origin);
    run = await runCli(['get', url, '--out', 'ok', '--storage', 'afile'], { cwd: dir });
    assertRefused(run, /Cannot use the run state folder/, path.join(dir, 'afile'), origin);
    assert.equal(fs.existsSync(path.join(dir, 'ok', '.imgdl-lock')), false);
  } finally {
    await origin.close();
  }
});

test('a binary file given as the list, or binary data on stdin, is refused: exit 2, one line, no request', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  try {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), Buffer.from(`\n${origin.url('/img/b.png')}\n`)]);
    fs.writeFileSync(path.join(dir, 'photo.png'), png);
    const run = await runCli(['get', 'photo.png', '--storage', 'state'], { cwd: dir });
    assertRefused(run, /is not a list of URLs: it holds binary data/, 'photo.png', origin);
    const piped = spawnCli(['get', '-', '--out', 'p', '--storage', 'state'], dir, { stdin: png.toString('latin1') });
    assert.equal(await piped.exited, 2, piped.stderr());
    assert.match(piped.stderr().trim(), /^imgdl: stdin is not a list of URLs: it holds binary data/);
    assert.equal(origin.log.length, 0);
  } finally {
    await origin.close();
  }
});

const mountSkip = canMount() ? false : 'needs root and mount(8) for a small tmpfs';

test('a read-only --out is refused before any request: exit 2, one line', { skip: mountSkip }, async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  const ro = path.join(dir, 'ro');
  fs.mkdirSync(ro);
  assert.ok(mount(ro, 'size=1m,ro'));
  try {
    const run = await runCli(['get', origin.url('/img/r.png'), '--out', 'ro', '--storage', 'state'], { cwd: dir });
    assertRefused(run, /cannot create files in it: the file system is read-only/, ro, origin);
  } finally {
    umount(ro);
    await origin.close();
  }
});

/**
 * Runs `args` with `folder` (under a fresh dir) on a tmpfs of `size`: the run must stop with exit 75 and one line
 * naming where it could not write (`codes`), no stack trace; `whileFull` checks the folder then. After the tmpfs is
 * made larger, the same command must finish with every image saved once.
 */
async function fillUp(opts: { folder: string; size: string; urls: (origin: Origin) => string[]; args: string[]; codes: string; whileFull?: (dir: string) => void }) {
  const origin = await startOrigin({ latencyMs: 2 });
  const dir = tmpDir();
  const mounted = path.join(dir, opts.folder);
  fs.mkdirSync(mounted);
  assert.ok(mount(mounted, `size=${opts.size}`));
  try {
    const urls = opts.urls(origin);
    writeList(dir, 'list.txt', urls);
    const args = ['get', 'list.txt', ...opts.args, '--storage', 'state', '--quiet'];
    const full = await runCli(args, { cwd: dir, timeoutMs: 120_000 });
    assert.equal(full.code, 75, full.stderr);
    const where = mounted.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(lastLine(full), new RegExp(`^imgdl: stopped: no space left on the device \\((${opts.codes})\\) writing ${where}\\S*; (\\d+) images pending( \\(and the rest of the list not yet read\\))?\\. Make room, then run again: imgdl get list\\.txt`));
    assert.match(lastLine(full), /; [1-9]\d* images pending|not yet read/, 'images pending, or the list not read to its end');
    assert.doesNotMatch(full.stderr, /\n\s+at |Unhandled|cannot rollback/, 'no stack trace, no unhandled rejection, no masked SQLite error');
    opts.whileFull?.(dir);
    remount(mounted, 'size=50m');
    const rerun = await runCli(args, { cwd: dir, timeoutMs: 120_000 });
    assert.equal(rerun.code, 0, rerun.stderr);
    await assertFolder(path.join(dir, 'out'), urls);
  } finally {
    umount(mounted);
    await origin.close();
  }
}

test('the output disk fills up: the run stops (exit 75, one line: where, how many pending), nothing partial; after making room the plain rerun finishes', { skip: mountSkip }, async () => {
  await fillUp({
    folder: 'out',
    size: '3m',
    urls: (origin) => Array.from({ length: 60 }, (_, i) => origin.url(`/img/big${i}.png?pad=150000`)),
    args: ['--out', 'out', '-c', '8'],
    codes: 'ENOSPC',
    whileFull: (dir) => {
      const out = path.join(dir, 'out');
      assert.equal(failureCodes(out).size, 0, 'images not written are pending, not failed');
      // A full disk may leave no room for their records, but every file under a final name is whole, none is partial.
      const images = fs.readdirSync(out).filter((f) => f.endsWith('.png'));
      assert.ok(images.length > 0, 'some images were saved before the disk filled');
      for (const f of images) assert.ok(fs.readFileSync(path.join(out, f)).subarray(-8).toString('latin1').startsWith('IEND'), `${f} is a whole PNG`);
      assert.deepEqual(fs.existsSync(path.join(out, '.imgdl-tmp')) ? fs.readdirSync(path.join(out, '.imgdl-tmp')) : [], [], 'no temporary files');
    },
  });
});

test('the state disk fills up: the run stops with exit 75 and one line naming it, and continues once there is room', { skip: mountSkip }, async () => {
  await fillUp({
    folder: 'state',
    size: '400k',
    // Long URLs fill the state quickly.
    urls: (origin) => Array.from({ length: 3000 }, (_, i) => origin.url(`/img/s${i}.png?x=${'q'.repeat(300)}`)),
    args: ['--out', 'out', '-c', '16'],
    codes: 'SQLITE_FULL|ENOSPC',
  });
});

test('chaos: a 5,000-URL run with latency killed with SIGKILL at five random moments, its WAL tail cut once, then finished', async () => {
  const origin = await startOrigin({ latencyMs: 15 });
  const dir = tmpDir();
  try {
    const urls = Array.from({ length: 5000 }, (_, i) => origin.url(`/img/c/${i % 50}/k${i}.png?pad=${500 + (i % 7) * 300}`));
    writeList(dir, 'list.txt', urls);
    const args = ['get', 'list.txt', '-c', '64', '--storage', 'state', '--quiet'];
    const meta = path.join(dir, 'list', 'metadata.jsonl');
    // A fixed seed: a failure can be replayed.
    let seed = 20261128;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let kill = 0; kill < 5; kill++) {
      const before = lineCount(meta);
      const run = spawnCli(args, dir);
      // Some moments land while the run opens or reads its list, others mid-download.
      const wait = kill % 2 === 0 ? 50 + random() * 600 : 0;
      if (wait > 0) await sleep(wait);
      else await waitFor(() => lineCount(meta) >= before + 100 + Math.floor(random() * 400) || run.child.exitCode !== null, 'progress');
      run.child.kill('SIGKILL');
      await run.exited;
      if (kill === 2) {
        const [runDir] = fs.readdirSync(path.join(dir, 'state', 'runs'));
        const wal = path.join(dir, 'state', 'runs', runDir!, 'state.sqlite-wal');
        if (fs.existsSync(wal)) fs.truncateSync(wal, Math.floor(fs.statSync(wal).size * random()));
      }
    }
    const last = await runCli(args, { cwd: dir, timeoutMs: 120_000 });
    assert.equal(last.code, 0, last.stderr);
    await assertFolder(path.join(dir, 'list'), urls);
    assert.deepEqual(failureCodes(path.join(dir, 'list')), new Map(), 'no false failure');
  } finally {
    await origin.close();
  }
});

test('endless pagination is bounded for every plugin: --max-pages and --max-depth from the core, counted in the summary', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  let served = 0;
  origin.route('/endless', (_req, res, url) => {
    const n = Number(url.searchParams.get('n') ?? 0);
    served++;
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<title>p${n}</title><img src="/img/e${n}.png"><a rel="next" href="/endless?n=${n + 1}">next</a>`);
  });
  try {
    const start = origin.url('/endless?n=0');
    const run = async (flags: string[], out: string) => {
      const before = served;
      const r = await runCli(['run', 'gallery', start, ...flags, '--out', out, '--storage', 'state', '--quiet', '--json'], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      return { pages: served - before, summary: JSON.parse(r.stdout) as { downloaded: number; pagesNotVisited?: number } };
    };
    let r = await run(['--max-pages', '5'], 'a');
    assert.equal(r.pages, 5);
    assert.equal(r.summary.downloaded, 5);
    assert.equal(r.summary.pagesNotVisited, 1, 'the next page found past the limit');
    r = await run(['--max-depth', '2'], 'b');
    assert.equal(r.pages, 3, 'the start page and two links from it');
    r = await run([], 'c');
    assert.equal(r.pages, 10, "the plugin's own default (gallery: 9 pages after the start page)");
    const bad = await runCli(['run', 'gallery', start, '--max-pages', '0', '--storage', 'state'], { cwd: dir });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Expected `--max-pages` to be an integer ≥ 1, got 0/);
  } finally {
    await origin.close();
  }
});

test('a handler may return its images as a generator: read a chunk at a time, every image added, memory flat', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  origin.route('/list', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"n": 3000}');
  });
  fs.writeFileSync(
    path.join(dir, 'many.mts'),
    `export default {
  name: 'many', description: 'yields many images', options: {},
  start: () => [{ url: ${JSON.stringify(origin.url('/list'))}, label: 'list' }],
  handlers: {
    list({ json }) {
      const { n } = json();
      function* images() { for (let i = 0; i < n; i++) yield { url: ${JSON.stringify(origin.url('/img/'))} + 'm' + i + '.png' }; }
      return { images: images() };
    },
  },
};
`,
  );
  try {
    const r = await runCli(['run', './many.mts', '--out', 'out', '--storage', 'state', '--quiet', '--json'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    await assertFolder(path.join(dir, 'out'), Array.from({ length: 3000 }, (_, i) => origin.url(`/img/m${i}.png`)));
  } finally {
    await origin.close();
  }
});

test('checks saved files after an unclean end: one a power cut lost is fetched again, its record replaced, no duplicate', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  try {
    const urls = Array.from({ length: 20 }, (_, i) => origin.url(`/img/l${i}.png`));
    writeList(dir, 'list.txt', urls);
    const args = ['get', 'list.txt', '--storage', 'state', '--quiet'];
    assert.equal((await runCli(args, { cwd: dir })).code, 0);
    // What a power cut can leave: the store says saved, but the rename never reached the disk, and the run never ended.
    const [runName] = fs.readdirSync(path.join(dir, 'state', 'runs'));
    const store = await RunStore.open(path.join(dir, 'state', 'runs', runName!));
    store.setMeta(META_OPEN, '1');
    store.close();
    fs.rmSync(path.join(dir, 'list', 'l7.png'));
    const before = origin.log.length;
    const rerun = await runCli(args, { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(origin.log.slice(before).map((e) => e.path), ['/img/l7.png'], 'only the lost image is fetched again');
    await assertFolder(path.join(dir, 'list'), urls);
  } finally {
    await origin.close();
  }
});

test('the output folder deleted by hand between runs: the rerun fetches every image again instead of skipping files that are gone', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  try {
    const urls = Array.from({ length: 12 }, (_, i) => origin.url(`/img/d${i}.png`));
    writeList(dir, 'list.txt', urls);
    const args = ['get', 'list.txt', '--storage', 'state', '--quiet'];
    assert.equal((await runCli(args, { cwd: dir })).code, 0);
    const out = path.join(dir, 'list');
    // The whole folder: every image must come back.
    fs.rmSync(out, { recursive: true });
    let before = origin.log.length;
    let rerun = await runCli(args, { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(origin.log.length - before, urls.length, 'every image fetched again');
    await assertFolder(out, urls);
    // Only the records and two images: those two come back, the others are known from their files and not fetched.
    fs.rmSync(path.join(out, 'metadata.jsonl'));
    fs.rmSync(path.join(out, 'd3.png'));
    fs.rmSync(path.join(out, 'd8.png'));
    before = origin.log.length;
    rerun = await runCli(args, { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(origin.log.slice(before).map((e) => e.path).sort(), ['/img/d3.png', '/img/d8.png']);
    await assertFolder(out, urls);
  } finally {
    await origin.close();
  }
});

test('a page that failed is kept apart from the images (never counted as one) and imgdl run --retry-failed fetches it again', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  let up = false;
  origin.route('/album', (_req, res) => {
    if (!up) {
      res.writeHead(404).end('not yet');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end('<img src="/img/r1.png"><img src="/img/r2.png">');
  });
  origin.route('/cover', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<img src="/img/cover.png">');
  });
  try {
    const args = ['run', 'gallery', origin.url('/cover'), origin.url('/album'), '--out', 'out', '--storage', 'state', '--quiet', '--json'];
    const first = await runCli(args, { cwd: dir });
    assert.equal(first.code, 1, first.stderr);
    const summary = JSON.parse(first.stdout) as { downloaded: number; failed: number; pagesFailed?: number; failuresByCode: Record<string, number> };
    assert.deepEqual([summary.downloaded, summary.failed, summary.pagesFailed], [1, 0, 1], 'one image saved, no image failed, one page failed');
    const [line] = readJsonl<{ url: string; code: string; status: number; page?: boolean; label?: string }>(path.join(dir, 'out', 'failures.jsonl'));
    assert.deepEqual({ url: line!.url, code: line!.code, status: line!.status, page: line!.page, label: line!.label }, { url: origin.url('/album'), code: 'http_status', status: 404, page: true, label: 'page' });

    up = true;
    const plain = await runCli(args, { cwd: dir });
    assert.equal(plain.code, 1, 'a plain rerun leaves the failed page failed');
    const retry = await runCli([...args, '--retry-failed'], { cwd: dir });
    assert.equal(retry.code, 0, retry.stderr);
    const after = JSON.parse(retry.stdout) as { downloaded: number; failed: number; pagesFailed?: number; retried?: Record<string, number> };
    assert.deepEqual([after.downloaded, after.failed, after.pagesFailed, after.retried], [2, 0, undefined, { http_status: 1 }]);
    await assertFolder(path.join(dir, 'out'), [origin.url('/img/cover.png'), origin.url('/img/r1.png'), origin.url('/img/r2.png')]);
    assert.equal(fs.existsSync(path.join(dir, 'out', 'failures.jsonl')), false);
  } finally {
    await origin.close();
  }
});
