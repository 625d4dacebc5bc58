// Issue 4, end to end for plugins: `imgdl run gallery` over a paginated gallery, stopped part-way (SIGKILL, and
// Ctrl-C), then run again with the same command. Nothing saved is fetched again, a page read before the stop is not
// read again, and the resumed run ends with exactly the gallery's images.
// Run: node --import tsx --test test/resume-plugin.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, readJsonl, tmpDir } from './helpers/cli.ts';
import { imageFor } from './helpers/images.ts';
import { startOrigin, type LogEntry, type Origin } from './helpers/origin.ts';

const PAGES = 8;
const PER_PAGE = 25;
const TOTAL = PAGES * PER_PAGE;
/** Every response of the origin waits this long; page responses wait PAGE_DELAY_MS more. */
const LATENCY_MS = 30;
const PAGE_DELAY_MS = 220;
/** Image downloads at once (`-c`): with the latency above, 200 images take about 1.5 s, so the run can be stopped. */
const CONCURRENCY = 4;
/** Pages (Crawlee requests) in flight at once: maxConcurrency of the crawler in src/core/engine.ts. */
const PAGE_CONCURRENCY = 8;
/** The first run is stopped once this many images are saved and a page is being fetched. */
const STOP_AFTER = 30;
const EXTS = ['png', 'jpg', 'gif', 'webp'] as const;
/** Every child process and every wait is bounded by this. */
const RUN_LIMIT_MS = 30_000;

interface Rec {
  url: string;
  file: string;
  bytes: number;
  sha256: string;
  metadata: { page: string; alt: string | null; title: string | null };
}

const pagePath = (p: number) => `/gal/${p}`;
const pageUrl = (origin: Origin, p: number) => origin.url(`${pagePath(p)}?delay=${PAGE_DELAY_MS}`);
const imageName = (p: number, i: number) => `g${p}-${String(i).padStart(2, '0')}.${EXTS[(p + i) % EXTS.length]}`;
const EXPECTED = Array.from({ length: PAGES }, (_, p) => Array.from({ length: PER_PAGE }, (_, i) => imageName(p + 1, i))).flat().sort();

/** A gallery of PAGES pages linked by rel=next (alternately <link> and <a>), PER_PAGE images each. */
function serveGallery(origin: Origin): void {
  for (let p = 1; p <= PAGES; p++) {
    const imgs = Array.from({ length: PER_PAGE }, (_, i) => `<img src="/img/${imageName(p, i)}" alt="photo ${p}.${i}">`).join('\n');
    const next = p < PAGES ? pageUrl(origin, p + 1) : undefined;
    const head = next && p % 2 === 1 ? `<link rel="next" href="${next}">` : '';
    const nav = next && p % 2 === 0 ? `<a rel="next" href="${next}">next</a>` : '';
    const body = `<!doctype html><html><head><title>Gallery ${p}</title>${head}</head><body>${imgs}${nav}</body></html>`;
    origin.route(pagePath(p), (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(body);
    });
  }
}

function start(args: string[], cwd: string) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve(code);
    }),
  );
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

async function waitFor(what: string, check: () => boolean, ms = RUN_LIMIT_MS): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Images in the output folder (not the .jsonl files, stats.json, report.html, nor the temp folder). */
function savedImages(out: string): string[] {
  if (!fs.existsSync(out)) return [];
  const own = new Set(['stats.json', 'report.html']);
  return fs.readdirSync(out, { withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.jsonl') && !e.name.startsWith('.') && !own.has(e.name)).map((e) => e.name);
}

const isPage = (e: LogEntry) => e.path.startsWith('/gal/');
const isImage = (e: LogEntry) => e.path.startsWith('/img/');
const pageNumber = (e: LogEntry) => Number(e.path.slice('/gal/'.length));

/** Serves the gallery on `origin`; the folder and the `imgdl run gallery` arguments of one run against it. */
function galleryRun(origin: Origin) {
  serveGallery(origin);
  const dir = tmpDir('imgdl-resume-plugin-');
  const out = path.join(dir, 'out');
  const args = ['run', 'gallery', pageUrl(origin, 1), '--out', out, '--storage', path.join(dir, 'state'), '-c', String(CONCURRENCY), '--quiet'];
  return { dir, out, args };
}

/** Runs the gallery with the CLI, stops it with `signal` part-way, and gathers what the two runs did. */
async function interruptAndResume(signal: 'SIGKILL' | 'SIGINT') {
  const origin = await startOrigin({ latencyMs: LATENCY_MS });
  try {
    const { dir, out, args } = galleryRun(origin);

    const first = start(args, dir);
    // Stop with some images saved and a page in flight (its response not yet sent).
    await waitFor(`${STOP_AFTER} images saved and a page in flight`, () => {
      if (first.child.exitCode !== null) return true;
      return savedImages(out).length >= STOP_AFTER && origin.log.some((e) => isPage(e) && !e.completed);
    });
    assert.equal(first.child.exitCode, null, `the first run was still going when stopped:\n${first.stderr()}`);
    const stoppedAt = Date.now();
    first.child.kill(signal);
    const firstCode = await first.exited;
    const stopSeconds = (Date.now() - stoppedAt) / 1000;
    const before = origin.log.slice();
    const savedBefore = savedImages(out);
    const lastPageDone = before.some((e) => isPage(e) && pageNumber(e) === PAGES && e.completed);
    const tmpLeft = fs.existsSync(path.join(out, '.imgdl-tmp'));

    const second = start([...args, '--json'], dir);
    const secondCode = await second.exited;
    return {
      out,
      origin,
      first: { code: firstCode, stderr: first.stderr(), stopSeconds },
      second: { code: secondCode, stdout: second.stdout(), stderr: second.stderr() },
      before,
      after: origin.log.slice(before.length),
      savedBefore,
      lastPageDone,
      tmpLeft,
    };
  } catch (error) {
    await origin.close();
    throw error;
  }
}

type Outcome = Awaited<ReturnType<typeof interruptAndResume>>;

/** The checks both variants share: the output is complete and right, and the resumed run repeated only what was in flight. */
function checkResumed(r: Outcome): string {
  assert.ok(r.savedBefore.length >= STOP_AFTER && r.savedBefore.length < TOTAL, `stopped part-way (${r.savedBefore.length} of ${TOTAL} saved)`);
  assert.equal(r.lastPageDone, false, 'stopped before the last page was read');
  assert.equal(r.second.code, 0, `the resumed run finished:\n${r.second.stderr}`);
  const summary = JSON.parse(r.second.stdout.trim().split('\n').pop()!) as { downloaded: number; skipped: number; failed: number; pending: number; interrupted: boolean };
  assert.equal(summary.failed, 0);
  assert.equal(summary.pending, 0);
  assert.equal(summary.interrupted, false);
  assert.equal(summary.skipped, r.savedBefore.length, 'the resumed run skips exactly the images saved before');
  assert.equal(summary.downloaded + summary.skipped, TOTAL);

  // The output: exactly the gallery's images, each one the bytes the origin served, one record each, no leftovers.
  assert.deepEqual(savedImages(r.out).sort(), EXPECTED);
  assert.deepEqual(fs.readdirSync(r.out).filter((f) => f.endsWith('.jsonl')), ['metadata.jsonl'], 'no failures.jsonl');
  assert.equal(fs.existsSync(path.join(r.out, '.imgdl-tmp')), false, 'no temporary files left');
  const records = readJsonl<Rec>(path.join(r.out, 'metadata.jsonl'));
  assert.equal(records.length, TOTAL, 'one metadata record per image');
  assert.equal(new Set(records.map((x) => x.url)).size, TOTAL, 'no URL recorded twice');
  assert.deepEqual(records.map((x) => x.file).sort(), EXPECTED);
  for (const rec of records) {
    const { pathname } = new URL(rec.url);
    assert.equal(pathname, `/img/${rec.file}`);
    const expected = imageFor(path.extname(rec.file), 8, 8, { seed: pathname })!;
    const bytes = fs.readFileSync(path.join(r.out, rec.file));
    assert.ok(bytes.equals(expected), `${rec.file} is the valid ${path.extname(rec.file)} image the origin served`);
    assert.equal(rec.bytes, bytes.length);
    assert.equal(rec.sha256, createHash('sha256').update(bytes).digest('hex'));
    const p = Number(/^g(\d+)-/.exec(rec.file)![1]);
    assert.equal(new URL(rec.metadata.page).pathname, pagePath(p), `${rec.file} records the page it was found on`);
    assert.equal(rec.metadata.title, `Gallery ${p}`);
  }

  // Images: none saved before the stop is fetched again; at most the downloads in flight are.
  const saved = new Set(r.savedBefore.map((f) => `/img/${f}`));
  const again = r.after.filter((e) => isImage(e) && saved.has(e.path)).map((e) => e.path);
  assert.deepEqual(again, [], 'no image saved before the stop is fetched again');
  const imageRequests = [...r.before, ...r.after].filter(isImage);
  assert.equal(new Set(imageRequests.map((e) => e.path)).size, TOTAL, 'every image fetched');
  const extraImages = imageRequests.length - TOTAL;
  // In flight: images being fetched (at most CONCURRENCY) and fetched ones being saved (see resume.test.ts).
  assert.ok(extraImages <= 2 * CONCURRENCY, `at most the images in flight fetched twice (extra image requests: ${extraImages})`);

  // Pages: each fetched at least once and at most twice; one fetched again must have been in flight at the stop.
  // A page whose next page had been served before the stop was handled well before it: never fetched again.
  const pagesBefore = r.before.filter(isPage);
  const pagesAfter = r.after.filter(isPage);
  const servedBefore = new Set(pagesBefore.filter((e) => e.completed).map(pageNumber));
  for (let p = 1; p <= PAGES; p++) {
    const n = pagesBefore.filter((e) => pageNumber(e) === p).length + pagesAfter.filter((e) => pageNumber(e) === p).length;
    assert.ok(n >= 1 && n <= 2, `page ${p} fetched once or twice (${n} times)`);
  }
  const refetched = pagesAfter.map(pageNumber).filter((p) => pagesBefore.some((e) => pageNumber(e) === p));
  assert.ok(refetched.length <= PAGE_CONCURRENCY, `at most the pages in flight fetched again (${refetched.join(', ')})`);
  const handled = [...servedBefore].filter((p) => servedBefore.has(p + 1));
  assert.ok(handled.length >= 1, 'at least one page was handled before the stop');
  for (const p of handled) assert.ok(!refetched.includes(p), `page ${p} (handled before the stop) not fetched again; fetched again: ${refetched.join(', ')}`);
  for (const e of r.before.concat(r.after).filter(isPage)) assert.equal(e.search, `?delay=${PAGE_DELAY_MS}`, 'page URLs as linked');
  return (
    `stopped with ${r.savedBefore.length}/${TOTAL} images saved and pages ${[...servedBefore].sort().join(',')} served (in ${r.first.stopSeconds} s); ` +
    `resumed: ${summary.downloaded} downloaded, ${extraImages} extra image requests, pages fetched again: [${refetched.join(',')}]`
  );
}

test('imgdl run gallery killed with SIGKILL part-way: the rerun finishes, fetching again only what was in flight', async (t) => {
  const r = await interruptAndResume('SIGKILL');
  try {
    assert.equal(r.first.code, null, 'the first run was killed');
    t.diagnostic(checkResumed(r));
  } finally {
    await r.origin.close();
  }
});

test('imgdl run gallery stopped with Ctrl-C: exits 130 within seconds, prints the resume command; the rerun finishes', async (t) => {
  const r = await interruptAndResume('SIGINT');
  try {
    assert.equal(r.first.code, 130, r.first.stderr);
    assert.ok(r.first.stopSeconds < 5, `stopped within 5 s (took ${r.first.stopSeconds} s)`);
    assert.match(r.first.stderr, /Resume with: imgdl run gallery '?http:\/\/127\.0\.0\.1:\d+\/gal\/1/);
    assert.equal(r.tmpLeft, false, 'no temporary files left after the stop');
    t.diagnostic(checkResumed(r));
  } finally {
    await r.origin.close();
  }
});

// A Ctrl-C that catches a page mid-fetch must not count as one of Crawlee's retries of that page (maxRequestRetries
// is 2): before the fix the third one made Crawlee give up on the page silently, and the next run ended at once
// with "0 downloaded, 0 failed, 0 pending".
test(
  'three Ctrl-C in a row, each while the first page is being fetched: the rerun still finishes the gallery',
  async () => {
    const origin = await startOrigin({ latencyMs: LATENCY_MS });
    try {
      const { dir, out, args } = galleryRun(origin);
      for (let k = 1; k <= 3; k++) {
        const from = origin.log.length;
        const run = start(args, dir);
        await waitFor('the first page in flight', () => run.child.exitCode !== null || origin.log.slice(from).some((e) => isPage(e) && !e.completed));
        run.child.kill('SIGINT');
        assert.equal(await run.exited, 130, `stop ${k}: interrupted\n${run.stderr()}`);
      }
      assert.deepEqual(savedImages(out), [], 'nothing saved: every stop came while page 1 was being fetched');
      const last = start([...args, '--json'], dir);
      assert.equal(await last.exited, 0, last.stderr());
      const summary = JSON.parse(last.stdout().trim().split('\n').pop()!) as { downloaded: number; failed: number };
      assert.equal(summary.failed, 0);
      assert.equal(summary.downloaded, TOTAL, `the rerun downloads the whole gallery (pages fetched: ${origin.log.filter(isPage).map(pageNumber).join(',')})`);
      assert.deepEqual(savedImages(out).sort(), EXPECTED);
    } finally {
      await origin.close();
    }
  },
);
