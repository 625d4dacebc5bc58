// Every script in examples/ run as a user would (a child process in a fresh folder) on Node, Bun and Deno,
// against the fixture origin: exit codes, printed lines and files. Each runtime serves its own copy of the
// flags layout (/<runtime>/flags/{cc}/{cc}.gif), so request counts (for "nothing fetched twice") never mix.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listFiles, readJsonl, REPO_ROOT, runProcess, tmpDir, type CliResult } from './helpers/cli.ts';
import { gif } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

const SPAWN_TIMEOUT_MS = 60_000;

const COUNTRIES: Record<string, string> = {
  cn: 'China', in: 'India', us: 'United States', id: 'Indonesia', br: 'Brazil', pk: 'Pakistan', ng: 'Nigeria',
  bd: 'Bangladesh', ru: 'Russia', jp: 'Japan', mx: 'Mexico', ph: 'Philippines', vn: 'Vietnam', et: 'Ethiopia',
  eg: 'Egypt', de: 'Germany', ir: 'Iran', tr: 'Turkey', cd: 'Congo', fr: 'France',
};

interface Runtime {
  name: 'node' | 'bun' | 'deno';
  command: string;
  args: string[];
  /** Why this runtime's cases are skipped (its binary is missing), or undefined. */
  missing?: string;
}

function runtime(name: Runtime['name'], command: string, args: string[]): Runtime {
  if (name === 'node') return { name, command, args };
  const probe = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const missing = probe.status === 0 ? undefined : `${name} is not installed (${path.relative(REPO_ROOT, command)} --version failed; run npm ci)`;
  return { name, command, args, missing };
}

const bin = (name: string) => path.join(REPO_ROOT, 'node_modules', '.bin', name);
const RUNTIMES: Runtime[] = [
  // tsx by absolute URL: a bare `--import tsx` resolves from the cwd, and these runs use a fresh temp folder.
  runtime('node', process.execPath, ['--import', import.meta.resolve('tsx')]),
  runtime('bun', bin('bun'), []),
  runtime('deno', bin('deno'), ['run', '-A']),
];

type Run = CliResult;

/** Runs examples/<name>.ts with `args` in `cwd`; never rejects, never outlives SPAWN_TIMEOUT_MS. */
function runExample(rt: Runtime, name: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', ...env };
  // Run state and origins come from the test only.
  for (const key of ['IMGDL_STORAGE', 'CRAWLEE_STORAGE_DIR', 'IMGDL_BASE_URL']) if (!(key in env)) delete childEnv[key];
  const script = path.join(REPO_ROOT, 'examples', `${name}.ts`);
  return runProcess(rt.command, [...rt.args, script, ...args], { cwd, env: childEnv, timeoutMs: SPAWN_TIMEOUT_MS });
}

/** The run's output, for assertion messages. */
const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

let origin: Origin;

before(async () => {
  origin = await startOrigin({ latencyMs: 20 });
  for (const rt of RUNTIMES) {
    for (const [cc, country] of Object.entries(COUNTRIES)) {
      origin.route(`/${rt.name}/flags/${cc}/metadata.json`, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ country, iso_cc: cc.toUpperCase() }));
      });
      origin.route(`/${rt.name}/flags/${cc}/${cc}.gif`, (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/gif' }).end(gif(12, 8, { seed: cc }));
      });
    }
  }
});
after(async () => {
  await origin?.close();
});

/** Requests the origin received whose path or query names this runtime. */
const hits = (rt: Runtime) => origin.log.filter((e) => (e.path + e.search).includes(rt.name)).length;

// The runtimes run side by side; each one's cases run one after another.
describe('examples/', { concurrency: RUNTIMES.length }, () => {
  for (const rt of RUNTIMES) {
    describe(rt.name, { skip: rt.missing, concurrency: 1 }, () => {
      const flagsBase = () => origin.url(`/${rt.name}/flags`);

      it('000 downloads into a temporary folder, processes each file, and the folder is gone afterwards', async () => {
        const cwd = tmpDir('imgdl-ex000-');
        const ok = await runExample(rt, '000-download-process-delete', ['--base-url', flagsBase()], cwd);
        assert.equal(ok.code, 0, show(ok));
        assert.deepEqual(ok.stdout.split('\n').filter((l) => l.endsWith('bytes')), ['cn.gif: gif 12x8, 94 bytes', 'br.gif: gif 12x8, 94 bytes', 'jp.gif: gif 12x8, 94 bytes']);
        const folder = /temporary folder (\S+) is gone/.exec(ok.stdout)?.[1];
        assert.ok(folder && !fs.existsSync(folder), show(ok));

        // URLs as arguments: named from the filePath query parameter (as in the seed); a 404 is reported, exit 1.
        const urls = [origin.url(`/download?filePath=/positionimages/${rt.name}/20240112102706-1.jpg`), origin.url(`/status/404?${rt.name}`)];
        const mixed = await runExample(rt, '000-download-process-delete', urls, cwd);
        assert.equal(mixed.code, 1, show(mixed));
        assert.match(mixed.stdout, /^20240112102706-1\.jpg: jpg 8x8, \d+ bytes$/m);
        assert.match(mixed.stdout, /\/status\/404\?\w+: failed, http_status/);
        assert.match(mixed.stdout, /is gone/);

        // Processing throws: the error propagates (non-zero exit) and the folder is still removed.
        const failing = await runExample(rt, '000-download-process-delete', ['--base-url', flagsBase(), '--fail'], cwd);
        assert.notEqual(failing.code, 0, show(failing));
        assert.match(failing.stderr, /processing cn\.gif failed/);
        const gone = /temporary folder (\S+) is gone/.exec(failing.stdout)?.[1];
        assert.ok(gone && !fs.existsSync(gone), show(failing));
        assert.deepEqual(listFiles(cwd), [], 'nothing written to the current folder');
      });

      it('001 runs the flags plugin: CN-China.gif… with metadata printed; a rerun fetches nothing', async () => {
        const cwd = tmpDir('imgdl-ex001-');
        const first = await runExample(rt, '001-flags', ['--base-url', flagsBase(), '--out', 'out'], cwd);
        assert.equal(first.code, 0, show(first));
        const out = path.join(cwd, 'out', 'flags');
        const gifs = fs.readdirSync(out).filter((f) => f.endsWith('.gif')).sort();
        assert.equal(gifs.length, 20);
        assert.ok(gifs.includes('CN-China.gif') && gifs.includes('US-United_States.gif'), gifs.join(' '));
        assert.match(first.stdout, /^CN-China\.gif {2}94 bytes {2}\{"country":"China","iso_cc":"CN"\}$/m);
        assert.match(first.stdout, /^US-United_States\.gif {2}94 bytes {2}\{"country":"United States","iso_cc":"US"\}$/m);
        assert.match(first.stdout, /^20 downloaded, 0 already saved, 0 failed → /m);
        assert.equal(readJsonl(path.join(out, 'metadata.jsonl')).length, 20);

        const before = hits(rt);
        const again = await runExample(rt, '001-flags', ['--base-url', flagsBase(), '--out', 'out'], cwd);
        assert.equal(again.code, 0, show(again));
        assert.match(again.stdout, /^0 downloaded, 20 already saved, 0 failed → /m);
        assert.match(again.stdout, /^CN-China\.gif /m, 'the metadata is printed again from metadata.jsonl');
        assert.equal(hits(rt), before, 'nothing fetched again');
      });

      it('002 serves a batch from memory with one shared Downloader; a 404 is one entry, not a failed batch', async () => {
        const cwd = tmpDir('imgdl-ex002-');
        const r = await runExample(rt, '002-service-batch', ['--base-url', flagsBase()], cwd);
        assert.equal(r.code, 0, show(r));
        assert.match(r.stdout, /^HTTP 200 \{/);
        const body = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { base: Record<string, unknown>; detections: Array<Record<string, unknown>> };
        assert.deepEqual(body.base, { url: `${flagsBase()}/cn/cn.gif`, bytes: 94, type: 'image/gif', width: 12, height: 8 });
        assert.deepEqual(
          body.detections.map((d) => [d['url'], d['type'] ?? d['error'], d['status'] ?? null]),
          [
            [`${flagsBase()}/us/us.gif`, 'image/gif', null],
            [`${flagsBase()}/xx/xx.gif`, 'http_status', 404],
            [`${flagsBase()}/jp/jp.gif`, 'image/gif', null],
          ],
          'input order, the 404 in its place',
        );
        assert.deepEqual(listFiles(cwd), [], 'nothing written to disk');
      });

      it('003 downloads a list into a folder named after it, reports failures, and a rerun fetches nothing', async () => {
        const cwd = tmpDir('imgdl-ex003-');
        const sample = await runExample(rt, '003-list-to-folder', ['--base-url', flagsBase()], cwd);
        assert.equal(sample.code, 0, show(sample));
        assert.deepEqual(fs.readdirSync(path.join(cwd, 'sample')).sort(), ['br.gif', 'cn.gif', 'in.gif', 'jp.gif', 'metadata.jsonl', 'report.html', 'stats.json', 'us.gif']);
        assert.match(sample.stdout, /^5 downloaded, 0 already saved, 0 failed, 470 bytes in [\d.]+ s → /m);

        const n = rt.name;
        const list = [
          '# a list as in the seed: one URL a line',
          origin.url(`/img/${n}-photo.png?w=4&h=3`),
          origin.url(`/cd/${n}?name=scan.png`),
          origin.url(`/download?filePath=/positionimages/${n}/20240112102706-1.jpg`),
          origin.url(`/flaky/${n}.png?fails=2`),
          '',
          origin.url(`/status/404?${n}`),
          origin.url(`/html-as-png/${n}-login.png`),
        ];
        fs.writeFileSync(path.join(cwd, 'cats.txt'), `${list.join('\n')}\n`);
        const first = await runExample(rt, '003-list-to-folder', ['cats.txt', '--out', 'out'], cwd);
        assert.equal(first.code, 1, show(first));
        const out = path.join(cwd, 'out', 'cats');
        assert.deepEqual(fs.readdirSync(out).sort(), ['20240112102706-1.jpg', `${n}-photo.png`, `${n}.png`, 'failures.jsonl', 'metadata.jsonl', 'report.html', 'scan.png', 'stats.json'].sort());
        assert.match(first.stdout, /^saved scan\.png \(\d+ bytes\)$/m);
        assert.match(first.stdout, /^4 downloaded, 0 already saved, 2 failed, \d+ bytes in [\d.]+ s → .*cats$/m);
        assert.match(first.stdout, /^failed: \S+\/status\/404\?\w+ {2}http_status 404 {2}/m);
        assert.match(first.stdout, /^failed: \S+\/html-as-png\/\w+-login\.png {2}not_image {2}/m);
        assert.equal(origin.count(`/flaky/${n}.png`), 3, 'the flaky image was retried');

        const before = hits(rt);
        const again = await runExample(rt, '003-list-to-folder', ['cats.txt', '--out', 'out'], cwd);
        assert.equal(again.code, 1, show(again));
        assert.match(again.stdout, /^0 downloaded, 4 already saved, 2 failed, 0 bytes/m);
        assert.doesNotMatch(again.stdout, /^saved /m);
        assert.equal(hits(rt), before, 'nothing fetched again');
      });

      it('004 times 20 flags sequentially and 20 at once (base URL from IMGDL_BASE_URL) and prints the speed-up', async () => {
        const cwd = tmpDir('imgdl-ex004-');
        const r = await runExample(rt, '004-sequential-vs-concurrent', [], cwd, { IMGDL_BASE_URL: flagsBase() });
        assert.equal(r.code, 0, show(r));
        const seq = /^concurrency 1: 20 images, 1880 bytes in ([\d.]+) s$/m.exec(r.stdout);
        const conc = /^concurrency 20: 20 images, 1880 bytes in ([\d.]+) s$/m.exec(r.stdout);
        const speedUp = /^speed-up: ([\d.]+)x$/m.exec(r.stdout);
        assert.ok(seq && conc && speedUp, show(r));
        // 20 requests one after another each wait the origin's 20 ms latency; at once, they wait it together.
        assert.ok(Number(seq[1]) >= 0.35, `sequential took ${seq[1]} s`);
        assert.ok(Number(speedUp[1]) > 1, `speed-up ${speedUp[1]}x`);
        assert.deepEqual(listFiles(cwd), []);
      });
    });
  }
});
