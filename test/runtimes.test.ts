// The CLI and the library on Node, Bun and Deno (the `bun` and `deno` devDependencies, run from node_modules/.bin),
// each spawned against the fixture origin: files, records, failure codes, exit codes and resume must be the same
// on all three. Also the pieces that make that so, in process: the fetch-based HTTP client (what Bun uses) and
// the choice between it and undici.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, listFiles, readJsonl, REPO_ROOT, runProcess, tmpDir, type CliResult } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { createFetchClient } from '../src/http/fetch-client.ts';
import { httpClientKind, undiciUsable, type HttpResponse } from '../src/http/client.ts';
import { DownloadError } from '../src/errors.ts';

const SPAWN_TIMEOUT_MS = 45_000;

interface Runtime {
  name: 'node' | 'bun' | 'deno';
  command: string;
  /** Arguments before the script. */
  args: string[];
  /** The HTTP client it is expected to pick. */
  http: 'undici' | 'fetch';
  /** Why this runtime's cases are skipped (its binary is missing), or undefined. */
  missing?: string;
}

function runtime(name: Runtime['name'], command: string, args: string[], http: Runtime['http']): Runtime {
  if (name === 'node') return { name, command, args, http };
  const probe = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const missing = probe.status === 0 ? undefined : `${name} is not installed (${path.relative(REPO_ROOT, command)} --version failed: run npm ci)`;
  return { name, command, args, http, missing };
}

const bin = (name: string) => path.join(REPO_ROOT, 'node_modules', '.bin', name);
const RUNTIMES: Runtime[] = [
  // tsx by absolute URL: a bare `--import tsx` resolves from the cwd, and the library runs in a temp folder.
  runtime('node', process.execPath, ['--import', import.meta.resolve('tsx')], 'undici'),
  // Bun's `undici` module has an Agent stub: imgdl uses its own fetch-based client there.
  runtime('bun', bin('bun'), [], 'fetch'),
  // Deno runs npm undici (through its node:net) fine, and it is faster there than Deno's fetch.
  runtime('deno', bin('deno'), ['run', '-A'], 'undici'),
];

type Run = CliResult;

/** Runs `script args` on a runtime; never rejects, never outlives SPAWN_TIMEOUT_MS. */
function spawnOn(rt: Runtime, script: string, args: string[], cwd: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' };
  // State goes where the test says, and the client is the one the runtime picks by itself.
  for (const key of ['IMGDL_STORAGE', 'CRAWLEE_STORAGE_DIR', 'IMGDL_HTTP']) delete env[key];
  return runProcess(rt.command, [...rt.args, script, ...args], { cwd, env, timeoutMs: SPAWN_TIMEOUT_MS });
}

const show = (r: Run) => `exit ${r.code} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

let origin: Origin;
before(async () => {
  origin = await startOrigin();
  for (const rt of RUNTIMES) {
    const page = (title: string, body: string) => `<!doctype html><html><head><title>${title}</title></head><body>${body}</body></html>`;
    origin.route(`/gallery/${rt.name}/1`, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end(page('One', `<img src="/img/${rt.name}-g1.png" alt="first"><a rel="next" href="/gallery/${rt.name}/2">next</a>`));
    });
    origin.route(`/gallery/${rt.name}/2`, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page('Two', `<img src="/img/${rt.name}-g2.gif?w=5&h=3" alt="second">`));
    });
  }
});
after(async () => {
  await origin?.close();
});

/**
 * One list for every runtime. The `rt` query parameter tells the runtimes' requests apart without changing the
 * bytes (the fixture seeds them with the path), so every runtime must save exactly the same files.
 */
function list(rt: Runtime): { saved: Record<string, string>; failed: Record<string, { code: string; status: number | null }> } {
  const q = `rt=${rt.name}`;
  return {
    saved: {
      [origin.url(`/img/a.png?${q}`)]: 'a.png',
      [origin.url(`/img/b.jpg?w=3&h=5&${q}`)]: 'b.jpg',
      [origin.url(`/redirect/2/img/c.gif?${q}`)]: 'c.gif',
      [origin.url(`/wrongtype/d.png?${q}`)]: 'd.png',
      [origin.url(`/noext/e?${q}`)]: 'e.png',
      // Over 512 KB: streamed to a temporary file, then renamed.
      [origin.url(`/big/f.png?mb=1&${q}`)]: 'f.png',
    },
    failed: {
      [origin.url(`/status/404?${q}`)]: { code: 'http_status', status: 404 },
      [origin.url(`/html-as-png/login.png?${q}`)]: { code: 'not_image', status: null },
      [origin.url(`/truncated/t.png?pad=4096&${q}`)]: { code: 'truncated', status: null },
      [origin.url(`/stall/s.png?pad=4096&stallMs=20000&${q}`)]: { code: 'timeout', status: null },
    },
  };
}

const GET_FLAGS = ['--out', 'out', '--storage', 'state', '--retries', '1', '--retry-delay', '20', '--stall-timeout', '1', '--json'];

/** What a run left in `out/`, by file: the parts that must not depend on the runtime. */
function outcome(out: string) {
  const records = readJsonl<{ url: string; finalUrl: string; file: string; bytes: number; sha256: string; contentType: string; width: number | null; height: number | null }>(
    path.join(out, 'metadata.jsonl'),
  );
  const failures = readJsonl<{ url: string; code: string; status: number | null; message: string }>(path.join(out, 'failures.jsonl'));
  const strip = (url: string) => url.replace(/[?&]rt=\w+$/, '').replace(/^http:\/\/[^/]+/, '');
  return {
    files: listFiles(out),
    records: records.map((r) => ({ ...r, url: strip(r.url), finalUrl: strip(r.finalUrl) })).sort((a, b) => a.file.localeCompare(b.file)),
    failures: failures.map((f) => ({ url: strip(f.url), code: f.code, status: f.status })).sort((a, b) => a.url.localeCompare(b.url)),
  };
}

type Outcome = ReturnType<typeof outcome>;
const outcomes = new Map<Runtime['name'], Outcome>();
/** Each runtime's first run, settled when its test ends (undefined if it failed), for the comparison with Node. */
const firstRuns = new Map<Runtime['name'], { promise: Promise<Outcome | undefined>; settle: (o: Outcome | undefined) => void }>();
for (const rt of RUNTIMES) {
  let settle!: (o: Outcome | undefined) => void;
  const promise = new Promise<Outcome | undefined>((resolve) => (settle = resolve));
  firstRuns.set(rt.name, { promise, settle });
}

// The runtimes run side by side; each one's cases run one after another.
describe('runtimes', { concurrency: RUNTIMES.length }, () => {
  for (const rt of RUNTIMES) {
    describe(rt.name, { skip: rt.missing, concurrency: 1 }, () => {
      const cwd = tmpDir(`imgdl-rt-${rt.name}-`);
      const out = path.join(cwd, 'out');
      const hits = () => origin.log.filter((e) => e.search.includes(`rt=${rt.name}`)).length;

      it('imgdl get: files, metadata.jsonl, failures.jsonl with reason codes, summary, exit 1', async () => {
        try {
          await firstRun();
        } finally {
          firstRuns.get(rt.name)!.settle(outcomes.get(rt.name));
        }
      });

      const firstRun = async () => {
        const { saved, failed } = list(rt);
        fs.writeFileSync(path.join(cwd, 'list.txt'), [...Object.keys(saved), ...Object.keys(failed)].join('\n') + '\n');
        const run = await spawnOn(rt, BIN, ['get', 'list.txt', ...GET_FLAGS], cwd);
        assert.equal(run.code, 1, show(run));
        const summary = JSON.parse(run.stdout) as Record<string, unknown>;
        assert.equal(summary['downloaded'], 6, show(run));
        assert.equal(summary['failed'], 4, show(run));
        assert.equal(summary['pending'], 0, show(run));
        assert.deepEqual(summary['failuresByCode'], { http_status: 1, not_image: 1, truncated: 1, timeout: 1 }, show(run));
        assert.match(run.stderr, /^Done: 6 downloaded, 0 skipped .*, 4 failed/m, show(run));

        assert.deepEqual(listFiles(out), [...Object.values(saved), 'failures.jsonl', 'metadata.jsonl', 'report.html', 'stats.json'].sort());
        const records = readJsonl<{ url: string; finalUrl: string; file: string; bytes: number; sha256: string; width: number | null; height: number | null }>(
          path.join(out, 'metadata.jsonl'),
        );
        assert.equal(records.length, 6);
        for (const r of records) {
          assert.equal(r.file, saved[r.url], `record of ${r.url}`);
          assert.equal(r.sha256, sha256(path.join(out, r.file)), `sha256 of ${r.file}`);
          assert.equal(r.bytes, fs.statSync(path.join(out, r.file)).size, `bytes of ${r.file}`);
        }
        const b = records.find((r) => r.file === 'b.jpg')!;
        assert.deepEqual([b.width, b.height], [3, 5]);
        assert.equal(records.find((r) => r.file === 'c.gif')!.finalUrl, origin.url(`/img/c.gif?rt=${rt.name}`), 'redirects followed by hand');
        assert.ok(records.find((r) => r.file === 'f.png')!.bytes > 1_000_000);

        const failures = readJsonl<{ url: string; code: string; status: number | null }>(path.join(out, 'failures.jsonl'));
        assert.deepEqual(
          Object.fromEntries(failures.map((f) => [f.url, { code: f.code, status: f.status }])),
          failed,
          'one failure record per failed URL, with its reason code',
        );
        outcomes.set(rt.name, outcome(out));
      };

      it('a rerun fetches nothing that was saved, keeps the failures, exits 1 (resume state in SQLite)', async () => {
        assert.ok(outcomes.has(rt.name), 'the first run passed');
        const before = hits();
        const run = await spawnOn(rt, BIN, ['get', 'list.txt', ...GET_FLAGS], cwd);
        assert.equal(run.code, 1, show(run));
        const summary = JSON.parse(run.stdout) as Record<string, unknown>;
        assert.equal(summary['downloaded'], 0, show(run));
        assert.equal(summary['skipped'], 6, show(run));
        assert.equal(summary['failed'], 4, show(run));
        assert.equal(hits(), before, 'no request for anything');
        assert.deepEqual(outcome(out), outcomes.get(rt.name));
        assert.ok(fs.existsSync(path.join(cwd, 'state', 'runs')), 'run state kept under --storage');
      });

      it('saves the same files, records and failure codes as Node', { skip: rt.name === 'node' }, async () => {
        const mine = outcomes.get(rt.name);
        assert.ok(mine, `the ${rt.name} run passed`);
        // Bounded: Node's run may not run at all (a --test-name-pattern that leaves it out).
        let timer: NodeJS.Timeout | undefined;
        const node = await Promise.race([
          firstRuns.get('node')!.promise,
          new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), SPAWN_TIMEOUT_MS + 5_000))),
        ]).finally(() => clearTimeout(timer));
        assert.ok(node, "Node's run passed (see its test)");
        assert.deepEqual(mine, node);
      });

      it('imgdl run gallery: a site plugin (a .ts file) loads and runs, metadata in the records', async () => {
        const run = await spawnOn(rt, BIN, ['run', 'gallery', origin.url(`/gallery/${rt.name}/1`), '--out', 'gallery', '--storage', 'state', '--json'], cwd);
        assert.equal(run.code, 0, show(run));
        const records = readJsonl<{ file: string; metadata?: { page?: string; alt?: string } }>(path.join(cwd, 'gallery', 'metadata.jsonl'));
        assert.deepEqual(records.map((r) => r.file).sort(), [`${rt.name}-g1.png`, `${rt.name}-g2.gif`]);
        assert.deepEqual(records.map((r) => r.metadata?.alt).sort(), ['first', 'second'], show(run));
      });

      it(`the library: a script in a project that depends on imgdl (client: ${rt.http})`, async () => {
        const project = tmpDir(`imgdl-rt-lib-${rt.name}-`);
        fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ type: 'module', dependencies: { imgdl: '*' } }));
        fs.mkdirSync(path.join(project, 'node_modules'));
        fs.symlinkSync(REPO_ROOT, path.join(project, 'node_modules', 'imgdl'), 'dir');
        const ok = origin.url(`/img/lib.png?rt=${rt.name}`);
        const missing = origin.url(`/status/404?lib&rt=${rt.name}`);
        const html = origin.url(`/html-as-png/lib.png?rt=${rt.name}`);
        fs.writeFileSync(
          path.join(project, 'script.ts'),
          `import { get, fetchImages } from 'imgdl';
import { httpClientKind } from './node_modules/imgdl/src/http/client.ts';
const summary = await get({ items: [${JSON.stringify(ok)}, ${JSON.stringify(missing)}], out: 'pics', storage: 'state' });
const results = await fetchImages([${JSON.stringify(ok)}, ${JSON.stringify(html)}]);
console.log(JSON.stringify({
  http: httpClientKind(),
  downloaded: summary.downloaded,
  failuresByCode: summary.failuresByCode,
  memory: results.map((r) => (r.ok ? [r.name, r.width, r.height, r.data.length] : [r.error.code])),
}));
`,
        );
        const run = await spawnOn(rt, 'script.ts', [], project);
        assert.equal(run.code, 0, show(run));
        const printed = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
        assert.deepEqual(printed, {
          http: rt.http,
          downloaded: 1,
          failuresByCode: { http_status: 1 },
          memory: [['lib.png', 8, 8, fs.statSync(path.join(project, 'pics', 'lib.png')).size], ['not_image']],
        });
      });
    });
  }
});

// ------------------------------------------------------------------ in process, on Node

describe('the fetch client (used where undici is not)', () => {
  const client = (stallTimeoutMs = 500) => createFetchClient({ connectionsPerHost: 4, connectTimeoutMs: 500, stallTimeoutMs });
  const signal = () => new AbortController().signal;
  const read = async (res: HttpResponse) => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of res.body) chunks.push(chunk);
    return Buffer.concat(chunks);
  };

  it('does not follow redirects, and gives lower-case headers and the body', async () => {
    const http = client();
    const redirect = await http.get(new URL(origin.url('/redirect/0/img/x.png')), { signal: signal() });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers['location'], '/img/x.png');
    await redirect.dump();
    const res = await http.get(new URL(origin.url('/img/x.png')), { signal: signal(), headers: { 'user-agent': 'imgdl-test' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'image/png');
    const body = await read(res);
    assert.equal(body.length, Number(res.headers['content-length']));
    assert.equal(body.subarray(1, 4).toString('latin1'), 'PNG');
    await http.close();
  });

  it('times out stalled headers and a stalled body as `timeout`; a body cut short is `truncated`', async () => {
    const http = client(300);
    // The origin answered above, so the headers wait is the stall limit alone.
    await (await http.get(new URL(origin.url('/img/warm.png')), { signal: signal() })).dump();
    const started = Date.now();
    await assert.rejects(http.get(new URL(origin.url('/stall-headers/h.png?stallMs=10000')), { signal: signal() }), (e: DownloadError) => e.code === 'timeout' && e.retryable);
    assert.ok(Date.now() - started < 3000, `headers stall gave up after ${Date.now() - started} ms`);
    const stalled = await http.get(new URL(origin.url('/stall/s.png?stallMs=10000')), { signal: signal() });
    await assert.rejects(read(stalled), (e: DownloadError) => e.code === 'timeout');
    const cut = await http.get(new URL(origin.url('/truncated/t.png?pad=200000')), { signal: signal() });
    await assert.rejects(read(cut), (e: DownloadError) => e.code === 'truncated' && e.retryable);
    await assert.rejects(http.get(new URL('http://127.0.0.1:9/x.png'), { signal: signal() }), (e: DownloadError) => e.code === 'network');
    await http.close();
  });

  it("stops at once when the caller's signal aborts, with the caller's reason", async () => {
    const http = client(10_000);
    const stop = new AbortController();
    const res = await http.get(new URL(origin.url('/stall/s2.png?stallMs=10000')), { signal: stop.signal });
    setTimeout(() => stop.abort(new Error('stopped by test')), 50);
    await assert.rejects(read(res), /stopped by test/);
    await http.close();
  });

  it('dump() leaves nothing open: a big body is cancelled, not read to the end', async () => {
    const http = client();
    const res = await http.get(new URL(origin.url('/big/dumped.png?mb=20')), { signal: signal() });
    await res.dump();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const entry = origin.log.find((e) => e.path === '/big/dumped.png');
    assert.equal(entry?.completed, false, 'the 20 MB body was not sent in full');
    await http.close();
  });
});

describe('choosing the HTTP client', () => {
  it('undici where its Agent is real (Node), fetch where it is a stub like Bun’s; IMGDL_HTTP forces one', () => {
    assert.equal(undiciUsable(), true);
    class Stub {}
    assert.equal(undiciUsable({ Agent: Stub as never, request: (() => {}) as never }), false, "Bun's undici module: an Agent without dispatch/destroy");
    assert.equal(undiciUsable({}), false, 'no undici at all');
    assert.equal(httpClientKind(''), 'undici');
    assert.equal(httpClientKind('fetch'), 'fetch');
    assert.equal(httpClientKind('undici'), 'undici');
  });
});
