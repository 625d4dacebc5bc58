// `imgdl run <plugin> --queue`: the gallery plugin's pages are crawled by the coordinator, the images it finds go
// to `imgdl worker` processes as shard jobs while the crawl goes on, on a real redis-server (Debian's package)
// started by this file on a free 127.0.0.1 port, against a local origin. Checked by the files: the same file set,
// names and records as a local `imgdl run` of the plugin, one record per URL, sha256 and size per record; and with
// the coordinator killed with SIGKILL mid-crawl and started again, no page or image fetched twice beyond those in
// flight (counted at the origin). Without redis-server the tests say so and skip, except under CI (CI=true).
// Run: node --import tsx --test test/queue-plugin.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { assertFolder } from './helpers/invariants.ts';
import { tarMembers } from './helpers/tar.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { imgdl, redisMissing, refetches, runIn, startRedis, until, type RedisServer } from './helpers/redis.ts';

const missing = redisMissing();
const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
if (missing && !CI) console.warn(`\n*** test/queue-plugin.test.ts: SKIPPED: ${missing}. These tests need a real redis-server. ***\n`);
const skip = missing && !CI ? missing : false;

let redis: RedisServer | undefined;
let origin: Origin | undefined;
before(async () => {
  if (missing && CI) throw new Error(`CI must install redis-server for test/queue-plugin.test.ts: ${missing}`);
  if (skip) return;
  redis = await startRedis();
  origin = await startOrigin({ latencyMs: 20 });
});
after(async () => {
  await redis?.stop();
  await origin?.close();
});

const LOCK = '2';
const CHAINS = 3;
const PAGES = 8;
const IMAGES = 12;

/**
 * A site for the gallery plugin: CHAINS start pages `/<site>/<c>/0`, each followed by `rel=next` pages up to
 * PAGES, each page with IMAGES images `/img/<site>-<c>-<p>-<i>.png` (alt text, title). Pages answer after
 * `pageMs`. Returns the start URLs and every image URL.
 */
function site(name: string, pageMs: number): { starts: string[]; images: string[] } {
  const starts: string[] = [];
  const images: string[] = [];
  for (let c = 0; c < CHAINS; c++) {
    starts.push(origin!.url(`/${name}/${c}/0`));
    for (let p = 0; p < PAGES; p++) {
      const imgs = Array.from({ length: IMAGES }, (_, i) => `/img/${name}-${c}-${p}-${i}.png`);
      images.push(...imgs.map((i) => origin!.url(i)));
      const next = p + 1 < PAGES ? `<a rel="next" href="/${name}/${c}/${p + 1}">next</a>` : '';
      const body = `<!doctype html><html><head><title>${name} ${c}.${p}</title></head><body>${imgs.map((src, i) => `<img src="${src}" alt="picture ${i}">`).join('')}${next}</body></html>`;
      origin!.route(`/${name}/${c}/${p}`, (_req, res) => {
        setTimeout(() => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body), pageMs);
      });
    }
  }
  return { starts, images };
}

interface Rec {
  url: string;
  file: string;
  bytes: number;
  sha256: string;
  metadata: unknown;
}

const byUrl = (records: Rec[]) => new Map(records.map((r) => [r.url, r]));
const ownFiles = new Set(['metadata.jsonl', 'failures.jsonl', 'stats.json', 'report.html']);
const imageFiles = (dir: string) => fs.readdirSync(dir).filter((f) => !f.startsWith('.') && !ownFiles.has(f)).sort();

test('run gallery --queue with 2 workers: the same files, names and records as a local run; every page and image fetched once', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const { starts, images } = site('same', 50);
  const local = await runCli(['run', 'gallery', ...starts, '--out', 'local', '-c', '4', '--json'], { cwd: dir, timeoutMs: 120_000 });
  assert.equal(local.code, 0, local.stderr);
  const localSummary = JSON.parse(local.stdout) as Record<string, unknown>;
  assert.equal(localSummary['downloaded'], images.length);
  const mark = origin!.log.length;

  const q = redis!.url;
  const coordinator = imgdl(['run', 'gallery', ...starts, '--out', 'dist', '--queue', q, '--job-size', '20', '-c', '4', '--lock-duration', LOCK, '--json'], dir);
  // Workers join once the first shard is in the queue, while the coordinator still crawls.
  await runIn(q, coordinator, 'a first shard', (m) => Number(m['shards'] ?? 0) >= 1);
  const workers = [1, 2].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  const code = await coordinator.exit;
  assert.equal(code, 0, coordinator.stderr());
  for (const w of workers) assert.equal(await w.exit, 0, w.stderr());
  const summary = JSON.parse(coordinator.stdout()) as Record<string, unknown> & { shards: { total: number; done: number; failed: number } };
  assert.deepEqual([summary['downloaded'], summary['skipped'], summary['failed'], summary['pending'], summary['interrupted']], [images.length, 0, 0, 0, false]);
  assert.ok(summary.shards.total >= images.length / 20 && summary.shards.done === summary.shards.total && summary.shards.failed === 0, JSON.stringify(summary.shards));
  // The fields of a local run's --json (but the report files, which a distributed run does not write).
  for (const key of Object.keys(localSummary)) if (key !== 'statsFile' && key !== 'reportFile') assert.ok(key in summary, `--json has ${key}`);
  const shardsBy = workers.map((w) => (w.stderr().match(/ shard \d+: \d+ saved/g) ?? []).length);
  assert.ok(shardsBy.reduce((a, b) => a + b, 0) > 0, `the workers took shards (${shardsBy.join(', ')})`);

  const dist = path.join(dir, 'dist');
  const records = await assertFolder(dist, images);
  assert.deepEqual(imageFiles(dist), imageFiles(path.join(dir, 'local')), 'the same files');
  const localRecords = byUrl(readJsonl<Rec>(path.join(dir, 'local', 'metadata.jsonl')));
  for (const r of records as Rec[]) {
    const l = localRecords.get(r.url)!;
    assert.deepEqual([r.file, r.bytes, r.sha256, r.metadata], [l.file, l.bytes, l.sha256, l.metadata], `${r.url}: the same name, bytes and metadata`);
  }
  assert.deepEqual(readJsonl(path.join(dist, 'failures.jsonl')), []);
  assert.equal(refetches({ log: origin!.log.slice(mark) }, '/same/'), 0, 'each page fetched once');
  assert.equal(refetches({ log: origin!.log.slice(mark) }, '/img/same-'), 0, 'each image fetched once');
  assert.equal(origin!.log.slice(mark).filter((e) => e.path.startsWith('/img/same-')).length, images.length);

  // The same command again: nothing fetched, everything skipped.
  const again = await runCli(['run', 'gallery', ...starts, '--out', 'dist', '--queue', q, '--job-size', '20', '-c', '4', '--json'], { cwd: dir, timeoutMs: 60_000 });
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout) as { downloaded: number; skipped: number };
  assert.deepEqual([second.downloaded, second.skipped], [0, images.length]);
});

test('run gallery --queue: the coordinator killed with SIGKILL mid-crawl and started again finishes the run; no page or image fetched twice but those in flight', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  // Slow pages: the crawl (8 pages in a row per chain) lasts a few seconds, images keep coming.
  const { starts, images } = site('kill', 400);
  const q = redis!.url;
  const args = ['run', 'gallery', ...starts, '--out', 'out', '--queue', q, '--job-size', '10', '-c', '4', '--lock-duration', LOCK, '--json'];
  const first = imgdl(args, dir);
  await runIn(q, first, 'a first shard', (m) => Number(m['shards'] ?? 0) >= 1);
  const workers = [1, 2].map(() => imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir));
  await until('a third of the pages', () => origin!.count('/kill/') >= (CHAINS * PAGES) / 3);
  first.child.kill('SIGKILL');
  assert.equal(await first.exit, null, 'killed');
  const pagesBefore = origin!.count('/kill/');
  assert.ok(pagesBefore < CHAINS * PAGES, `killed mid-crawl (${pagesBefore} pages of ${CHAINS * PAGES} fetched)`);

  const second = imgdl(args, dir);
  assert.equal(await second.exit, 0, second.stderr());
  for (const w of workers) assert.equal(await w.exit, 0, w.stderr());
  const summary = JSON.parse(second.stdout()) as { downloaded: number; skipped: number; failed: number; pending: number; interrupted: boolean };
  assert.deepEqual([summary.failed, summary.pending, summary.interrupted], [0, 0, false]);
  // Images saved before the restart, in shards then done, count as skipped (saved by an earlier invocation).
  assert.equal(summary.downloaded + summary.skipped, images.length, JSON.stringify(summary));
  await assertFolder(path.join(dir, 'out'), images);
  // At most the pages the killed coordinator had in flight (one per chain) are fetched again.
  assert.ok(refetches(origin!, '/kill/') <= CHAINS, `pages fetched again: ${refetches(origin!, '/kill/')}, at most ${CHAINS} in flight`);
  // Images: at most those the killed coordinator was downloading itself (-c 4).
  assert.ok(refetches(origin!, '/img/kill-') <= 4, `images fetched again: ${refetches(origin!, '/img/kill-')}, at most 4 in flight`);
});

test('run gallery --queue --layout webdataset: a tar shard per job, samples keyed by their id in the run as a local run keys them, with its bytes', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const { starts, images } = site('wds', 20);
  const local = await runCli(['run', 'gallery', ...starts, '--out', 'local', '-c', '4', '--layout', 'webdataset', '--shard-size', '20'], { cwd: dir, timeoutMs: 120_000 });
  assert.equal(local.code, 0, local.stderr);
  const q = redis!.url;
  const coordinator = imgdl(['run', 'gallery', ...starts, '--out', 'dist', '--queue', q, '--layout', 'webdataset', '--shard-size', '20', '-c', '4', '--lock-duration', LOCK, '--json'], dir);
  await runIn(q, coordinator, 'a first shard', (m) => Number(m['shards'] ?? 0) >= 1);
  const worker = imgdl(['worker', '--queue', q, '-c', '4', '--exit-when-idle', '--lock-duration', LOCK], dir);
  assert.equal(await coordinator.exit, 0, coordinator.stderr());
  assert.equal(await worker.exit, 0, worker.stderr());
  const summary = JSON.parse(coordinator.stdout()) as { downloaded: number; shards: { total: number } };
  assert.equal(summary.downloaded, images.length);
  const dist = path.join(dir, 'dist');
  const tars = fs.readdirSync(dist).filter((n) => /^\d{5}\.tar$/.test(n)).sort();
  assert.equal(tars.length, summary.shards.total, 'one tar per job');
  assert.deepEqual(fs.readdirSync(dist).filter((n) => n.endsWith('.part') || n.startsWith('.')), [], 'no part file, shard folder or lock left');
  type WRec = { url: string; file: string; key: string; sha256: string };
  const records = readJsonl<WRec>(path.join(dist, 'metadata.jsonl'));
  assert.deepEqual(records.map((r) => r.url).sort(), [...images].sort(), 'one record per image');
  const members = new Map<string, Map<string, Buffer>>();
  for (const t of tars) members.set(t, await tarMembers(path.join(dist, t)));
  const localByUrl = new Map(readJsonl<WRec>(path.join(dir, 'local', 'metadata.jsonl')).map((r) => [r.url, r]));
  for (const r of records) {
    const [tarName, member] = r.file.split('/') as [string, string];
    const bytes = members.get(tarName)?.get(member);
    assert.ok(bytes, `${r.file} is in its tar`);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), r.sha256, `${r.file}: the record's sha256`);
    assert.equal(r.sha256, localByUrl.get(r.url)!.sha256, `${r.url}: the bytes of a local run`);
    assert.equal(member, `${r.key}.png`, `${r.url}: its sample is named by its key`);
  }
  // Keys are the images' ids in the run, in the order pages were handled (which differs between any two runs whose
  // pages are crawled concurrently): the same set of keys as a local run, each once.
  assert.equal(new Set(records.map((r) => r.key)).size, images.length, 'every key once');
  assert.deepEqual(records.map((r) => r.key).sort(), [...localByUrl.values()].map((r) => r.key).sort(), 'the keys of a local run');
});
