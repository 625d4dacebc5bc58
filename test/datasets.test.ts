// Input tables (CSV, TSV, JSON Lines, Parquet) and stats.json, through the real CLI against a local origin.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { assertFolder } from './helpers/invariants.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

let origin: Origin;
before(async () => {
  origin = await startOrigin();
});
after(async () => {
  await origin.close();
});

interface Rec {
  url: string;
  file: string;
  bytes: number;
  key?: string;
  caption?: string;
  metadata?: Record<string, unknown>;
}
interface Fail {
  url: string;
  code: string;
  message: string;
  key?: string;
  caption?: string;
}
interface Stats {
  images: { total: number; saved: number; failed: number; pending: number };
  successRate: number | null;
  bytes: number;
  session: { downloaded: number };
  failures: { byCode: Record<string, number>; examples: Record<string, string[]>; byHost: Array<{ host: string; failed: number; saved: number; byCode: Record<string, number>; examples: string[] }>; hosts: number };
  throughput: { start: string | null; bucketSeconds: number; buckets: Array<{ t: number; images: number; bytes: number; failed: number }> };
}

const byKey = <T extends { key?: string }>(rows: T[]): Map<string, T> => new Map(rows.map((r) => [r.key!, r]));
const run = (args: string[], cwd: string) => runCli(['get', ...args, '--storage', 'state', '--quiet'], { cwd, timeoutMs: 90_000 });

/** A CSV field, quoted when it must be. */
const csvField = (v: string): string => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

test('CSV: quoted commas, quotes and newlines; caption and columns kept; bad rows are failures with their row number', async () => {
  const dir = tmpDir();
  const u = (p: string) => origin.url(p);
  const rows = [
    ['url', 'caption', 'width', 'note'],
    [u('/img/c0.png'), 'a cat, sitting', '640', 'plain'],
    [u('/img/c1.png'), 'two\nlines and a "quote"', '800', ''],
    ['', 'no url here', '1', 'x'],
    ['not a url', 'bad', '2', 'y'],
    [u('/status/404'), 'gone', '3', 'z'],
    [u('/img/c5.png'), 'short row'],
  ];
  // The last record opens a quote it never closes: the parser gives up on it, the rest of the table is kept.
  fs.writeFileSync(path.join(dir, 'data.csv'), rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n' + `"${u('/img/c6.png')},broken\n`);
  const result = await run(['data.csv', '--caption-col', 'caption'], dir);
  assert.equal(result.code, 1, result.stderr);
  const out = path.join(dir, 'data');
  const records = byKey(readJsonl<Rec>(path.join(out, 'metadata.jsonl')));
  await assertFolder(out, [u('/img/c0.png'), u('/img/c1.png'), u('/img/c5.png')]);
  assert.deepEqual([...records.keys()].sort(), ['000000000', '000000001', '000000005']);
  assert.equal(records.get('000000000')!.caption, 'a cat, sitting');
  assert.deepEqual(records.get('000000000')!.metadata, { caption: 'a cat, sitting', width: '640', note: 'plain' });
  assert.equal(records.get('000000001')!.caption, 'two\nlines and a "quote"');
  assert.deepEqual(records.get('000000001')!.metadata, { caption: 'two\nlines and a "quote"', width: '800', note: '' });
  assert.deepEqual(records.get('000000005')!.metadata, { caption: 'short row' }, 'a short row keeps the columns it has');

  const failures = byKey(readJsonl<Fail>(path.join(out, 'failures.jsonl')));
  assert.deepEqual([...failures.keys()].sort(), ['000000002', '000000003', '000000004', '000000006']);
  assert.equal(failures.get('000000002')!.code, 'invalid_url');
  assert.equal(failures.get('000000002')!.url, '');
  assert.match(failures.get('000000002')!.message, /data\.csv row 2 \(line 5\): no URL in column `url`/);
  assert.equal(failures.get('000000003')!.code, 'invalid_url');
  assert.equal(failures.get('000000003')!.url, 'not a url');
  assert.match(failures.get('000000003')!.message, /row 3 \(line 6\)/);
  assert.equal(failures.get('000000004')!.code, 'http_status');
  assert.equal(failures.get('000000004')!.caption, 'gone');
  assert.equal(failures.get('000000006')!.code, 'invalid_row');
  assert.match(failures.get('000000006')!.message, /row 6 .*Quote Not Closed/i);

  // --retry-failed tries the 404 again, never the rows that cannot be fetched; the report keeps them as they were.
  const before = origin.count('/status/404');
  const again = await run(['data.csv', '--caption-col', 'caption', '--retry-failed'], dir);
  assert.equal(again.code, 1, again.stderr);
  assert.equal(origin.count('/status/404'), before + 1);
  assert.deepEqual(byKey(readJsonl<Fail>(path.join(out, 'failures.jsonl'))), failures);
});

test('TSV with --url-col and --save-cols: only the named columns (and the caption) are kept', async () => {
  const dir = tmpDir();
  const lines = ['id\timage\ttext\tlicense\tsecret', `7\t${origin.url('/img/t0.png')}\thello\tcc-by\tkeep out`, `8\t${origin.url('/img/t1.png')}\tworld\tcc0\tno`];
  fs.writeFileSync(path.join(dir, 'pairs.tsv'), lines.join('\n') + '\n');
  const result = await run(['pairs.tsv', '--url-col', 'image', '--caption-col', 'text', '--save-cols', 'id,license'], dir);
  assert.equal(result.code, 0, result.stderr);
  const out = path.join(dir, 'pairs');
  await assertFolder(out, [origin.url('/img/t0.png'), origin.url('/img/t1.png')]);
  const records = byKey(readJsonl<Rec>(path.join(out, 'metadata.jsonl')));
  assert.deepEqual(records.get('000000000')!.metadata, { id: '7', license: 'cc-by', text: 'hello' });
  assert.equal(records.get('000000001')!.caption, 'world');
  assert.deepEqual(records.get('000000001')!.metadata, { id: '8', license: 'cc0', text: 'world' });

  // A table without the URL column (or a named one) is refused before any request: exit 2, one line.
  const requests = origin.log.length;
  const wrong = await run(['pairs.tsv', '--out', 'other'], dir);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr.trim(), /^imgdl: pairs\.tsv has no column `url` for the URLs \(its columns: id, image, text, license, secret\); name it with --url-col$/);
  const missing = await run(['pairs.tsv', '--url-col', 'image', '--save-cols', 'id,nope', '--out', 'other'], dir);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no column `nope` for --save-cols/);
  assert.equal(origin.log.length, requests, 'nothing fetched');
});

test('JSON Lines: a line that is not JSON, or not an object, or has no URL, is a failure; the rest is fetched', async () => {
  const dir = tmpDir();
  const lines = [
    JSON.stringify({ url: origin.url('/img/j0.png'), caption: 'first', tags: ['a', 'b'], score: 0.5 }),
    '{"url": "broken',
    '',
    JSON.stringify([origin.url('/img/j9.png')]),
    JSON.stringify({ caption: 'no url' }),
    JSON.stringify({ url: origin.url('/img/j4.png'), caption: null }),
  ];
  fs.writeFileSync(path.join(dir, 'list.jsonl'), lines.join('\n') + '\n');
  const result = await run(['list.jsonl', '--caption-col', 'caption'], dir);
  assert.equal(result.code, 1, result.stderr);
  const out = path.join(dir, 'list');
  await assertFolder(out, [origin.url('/img/j0.png'), origin.url('/img/j4.png')]);
  const records = byKey(readJsonl<Rec>(path.join(out, 'metadata.jsonl')));
  // Blank lines are not rows: the keys count the rows.
  assert.deepEqual([...records.keys()].sort(), ['000000000', '000000004']);
  assert.equal(records.get('000000000')!.caption, 'first');
  assert.deepEqual(records.get('000000000')!.metadata, { caption: 'first', tags: ['a', 'b'], score: 0.5 });
  assert.equal(records.get('000000004')!.caption, undefined, 'a null caption is no caption');
  const failures = byKey(readJsonl<Fail>(path.join(out, 'failures.jsonl')));
  assert.deepEqual([...failures.entries()].map(([k, f]) => [k, f.code]).sort(), [['000000001', 'invalid_row'], ['000000002', 'invalid_row'], ['000000003', 'invalid_url']]);
  assert.match(failures.get('000000001')!.message, /^list\.jsonl row 1 \(line 2\): not JSON/);
  assert.match(failures.get('000000002')!.message, /line 4\): not a JSON object/);
  assert.match(failures.get('000000003')!.message, /line 5\): no URL in column `url`/);
});

test('Parquet (written with hyparquet-writer, several row groups): URLs, captions and typed columns', async () => {
  const { parquetWriteFile } = await import('hyparquet-writer');
  const dir = tmpDir();
  const n = 7;
  const urls = Array.from({ length: n }, (_, i) => (i === 3 ? null : origin.url(`/img/q${i}.png`)));
  await parquetWriteFile({
    filename: path.join(dir, 'shard.parquet'),
    columnData: [
      { name: 'URL', data: urls, type: 'STRING' },
      { name: 'TEXT', data: urls.map((_, i) => `caption ${i}`), type: 'STRING' },
      { name: 'height', data: urls.map((_, i) => 100 + i), type: 'INT32' },
      { name: 'similarity', data: urls.map((_, i) => i / 10), type: 'DOUBLE' },
      { name: 'id', data: urls.map((_, i) => BigInt(1e12) + BigInt(i)), type: 'INT64' },
    ],
    rowGroupSize: 3,
  });
  const result = await run(['shard.parquet', '--url-col', 'URL', '--caption-col', 'TEXT'], dir);
  assert.equal(result.code, 1, result.stderr);
  const out = path.join(dir, 'shard');
  const saved = urls.filter((u): u is string => u !== null);
  await assertFolder(out, saved);
  const records = byKey(readJsonl<Rec>(path.join(out, 'metadata.jsonl')));
  assert.deepEqual([...records.keys()].sort(), ['000000000', '000000001', '000000002', '000000004', '000000005', '000000006']);
  for (const [key, r] of records) {
    const i = Number(key);
    assert.equal(r.url, urls[i]);
    assert.equal(r.caption, `caption ${i}`);
    assert.deepEqual(r.metadata, { TEXT: `caption ${i}`, height: 100 + i, similarity: i / 10, id: 1e12 + i });
  }
  const failures = readJsonl<Fail>(path.join(out, 'failures.jsonl'));
  assert.deepEqual(failures.map((f) => [f.key, f.code, f.caption]), [['000000003', 'invalid_url', 'caption 3']]);
  assert.match(failures[0]!.message, /shard\.parquet row 3: no URL in column `URL`/);
});

test('--input-format overrides the extension; a table on stdin; --no-report', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'urls.data'), `link,alt\n${origin.url('/img/f0.png')},zero\n`);
  const result = await run(['urls.data', '--input-format', 'csv', '--url-col', 'link', '--no-report'], dir);
  assert.equal(result.code, 0, result.stderr);
  const out = path.join(dir, 'urls');
  const [record] = readJsonl<Rec>(path.join(out, 'metadata.jsonl'));
  assert.equal(record!.key, '000000000');
  assert.deepEqual(record!.metadata, { alt: 'zero' });
  assert.ok(fs.existsSync(path.join(out, 'stats.json')), 'stats.json is always written');
  assert.ok(!fs.existsSync(path.join(out, 'report.html')), 'no report.html with --no-report');

  const bad = await run(['urls.data', '--input-format', 'xlsx'], dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /`--input-format` to be one of txt, csv, tsv, jsonl, parquet/);

  // From stdin, with --input-format.
  const piped = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, 'get', '-', '--input-format', 'jsonl', '--out', 'piped', '--storage', 'state', '--quiet'], { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr });
    });
    child.stdin.end(JSON.stringify({ url: origin.url('/img/s0.png'), caption: 'piped' }) + '\n');
  });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(readJsonl<Rec>(path.join(dir, 'piped', 'metadata.jsonl'))[0]!.key, '000000000');
  assert.ok(fs.existsSync(path.join(dir, 'piped', 'report.html')));
});

test('stats.json: counts, success rate, failures by code and host, bytes, throughput that adds up', async () => {
  const dir = tmpDir();
  const good = Array.from({ length: 12 }, (_, i) => origin.url(`/img/s${i}.png?pad=3000`));
  const bad = [origin.url('/status/404'), origin.url('/status/410'), origin.url('/html-as-png/login.png'), 'ftp://elsewhere.example/x.png'];
  fs.writeFileSync(path.join(dir, 'mixed.txt'), [...good, ...bad].join('\n') + '\n');
  const result = await run(['mixed.txt', '--retries', '0'], dir);
  assert.equal(result.code, 1, result.stderr);
  const out = path.join(dir, 'mixed');
  const stats = JSON.parse(fs.readFileSync(path.join(out, 'stats.json'), 'utf8')) as Stats;
  const records = readJsonl<Rec>(path.join(out, 'metadata.jsonl'));
  assert.deepEqual(stats.images, { total: 16, saved: 12, failed: 4, pending: 0 });
  assert.equal(stats.successRate, 0.75);
  assert.equal(stats.bytes, records.reduce((s, r) => s + r.bytes, 0));
  assert.equal(stats.session.downloaded, 12);
  assert.deepEqual(stats.failures.byCode, { http_status: 2, not_image: 1, unsupported_scheme: 1 });
  assert.deepEqual(stats.failures.examples['http_status']!.sort(), [origin.url('/status/404'), origin.url('/status/410')].sort());
  const host = new URL(origin.base).host;
  const local = stats.failures.byHost.find((h) => h.host === host)!;
  assert.deepEqual({ failed: local.failed, saved: local.saved, byCode: local.byCode }, { failed: 3, saved: 12, byCode: { http_status: 2, not_image: 1 } });
  assert.deepEqual(stats.failures.byHost.find((h) => h.host === 'elsewhere.example')?.byCode, { unsupported_scheme: 1 });
  assert.equal(stats.failures.hosts, 2);
  // Every image settled by a download is in one bucket (a URL refused when read is not throughput).
  const sum = (k: 'images' | 'bytes' | 'failed') => stats.throughput.buckets.reduce((s, b) => s + b[k], 0);
  assert.equal(sum('images'), 12);
  assert.equal(sum('bytes'), stats.bytes);
  assert.equal(sum('failed'), 3);
  assert.ok(stats.throughput.start !== null && stats.throughput.bucketSeconds >= 1);
  assert.ok(stats.throughput.buckets.every((b) => b.t % stats.throughput.bucketSeconds === 0));
});

test('a CSV run killed with kill -9 resumes: every record has its row\'s key, caption and columns; stats.json covers the whole run', async () => {
  const slow = await startOrigin({ latencyMs: 30 });
  try {
    const dir = tmpDir();
    const count = 300;
    const lines = ['url,caption,rank'];
    for (let i = 0; i < count; i++) lines.push(`${slow.url(`/img/r${i}.png?pad=1500`)},${csvField(`caption, number ${i}`)},${i * 2}`);
    fs.writeFileSync(path.join(dir, 'big.csv'), lines.join('\n') + '\n');
    const out = path.join(dir, 'big');
    const args = ['get', 'big.csv', '--caption-col', 'caption', '-c', '8', '--storage', 'state', '--quiet'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const deadline = Date.now() + 60_000;
    const saved = () => (fs.existsSync(out) ? fs.readdirSync(out).filter((f) => f.endsWith('.png')).length : 0);
    while (saved() < count / 3 && Date.now() < deadline) await sleep(20);
    child.kill('SIGKILL');
    await exited;
    clearTimeout(killer);
    assert.ok(saved() < count, 'killed before the end');
    // The table is not read again (the run read it all): what the records say comes from the run's store.
    fs.writeFileSync(path.join(dir, 'big.csv'), fs.readFileSync(path.join(dir, 'big.csv')));
    const resumed = await runCli(args, { cwd: dir, timeoutMs: 90_000 });
    assert.equal(resumed.code, 0, resumed.stderr);
    const urls = Array.from({ length: count }, (_, i) => slow.url(`/img/r${i}.png?pad=1500`));
    await assertFolder(out, urls);
    const records = readJsonl<Rec>(path.join(out, 'metadata.jsonl'));
    for (const r of records) {
      const i = Number(/r(\d+)\.png/.exec(r.url)![1]);
      assert.equal(r.key, String(i).padStart(9, '0'));
      assert.equal(r.caption, `caption, number ${i}`);
      assert.deepEqual(r.metadata, { caption: `caption, number ${i}`, rank: String(i * 2) });
    }
    const stats = JSON.parse(fs.readFileSync(path.join(out, 'stats.json'), 'utf8')) as Stats;
    assert.deepEqual(stats.images, { total: count, saved: count, failed: 0, pending: 0 });
    assert.ok(stats.session.downloaded < count, 'the last session downloaded only what was left');
    assert.equal(stats.throughput.buckets.reduce((s, b) => s + b.images, 0), count, 'the throughput covers both sessions');
    assert.equal(stats.bytes, records.reduce((s, r) => s + r.bytes, 0));
  } finally {
    await slow.close();
  }
});

test('stats.json stays bounded on a long run: at most 600 throughput buckets, growing with the run, every image counted once', async () => {
  const { RunStore } = await import('../src/storage/state.ts');
  const { runStats, MAX_BUCKETS } = await import('../src/core/stats.ts');
  const dir = tmpDir();
  const n = 5000;
  let store = await RunStore.open(dir);
  store.addItems(Array.from({ length: n }, (_, i) => ({ url: `http://h${i % 7}.example/${i}.png` })));
  for (let id = 1; id <= n; id++) assert.ok(store.claim(id, `f${id}.png`, JSON.stringify({ bytes: 10 + (id % 3) })));
  store.markDone(Array.from({ length: n }, (_, i) => i + 1));
  store.close();
  // The images were settled over 10,000 s (2 s apart), as in a run of almost three hours.
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path.join(dir, 'state.sqlite'));
  db.prepare('UPDATE items SET done_at = 1700000000000 + id * 2000').run();
  db.close();
  store = await RunStore.open(dir);
  try {
    const stats = runStats(store, [], { run: 'long', counts: store.counts(), downloaded: n, bytes: 0, seconds: 10_000, interrupted: false, pagesFailed: 0 });
    const { buckets, bucketSeconds, start } = stats.throughput;
    assert.equal(bucketSeconds, 30, '10,000 s in buckets of 30 s: 334 of them');
    assert.ok(buckets.length <= MAX_BUCKETS && buckets.length > 300, `${buckets.length} buckets`);
    assert.equal(start, new Date(1700000002000).toISOString());
    assert.equal(buckets.reduce((s, b) => s + b.images, 0), n);
    assert.equal(buckets.reduce((s, b) => s + b.bytes, 0), stats.bytes);
    assert.equal(stats.bytes, Array.from({ length: n }, (_, i) => 10 + ((i + 1) % 3)).reduce((a, b) => a + b, 0));
    assert.deepEqual(buckets[0], { t: 0, images: 15, bytes: buckets[0]!.bytes, failed: 0 });
  } finally {
    store.close();
  }
});

test('a Parquet table is read while its images download: the first image is saved before the last row is in', async () => {
  const { parquetWriteFile } = await import('hyparquet-writer');
  const { get } = await import('../src/get.ts');
  const dir = tmpDir();
  const rows = 40_000;
  await parquetWriteFile({
    filename: path.join(dir, 'many.parquet'),
    columnData: [{ name: 'url', data: Array.from({ length: rows }, (_, i) => origin.url(`/img/m${i}.png`)), type: 'STRING' }],
  });
  const stop = new AbortController();
  let ingestingAtFirstSave: boolean | undefined;
  await get({
    inputs: [path.join(dir, 'many.parquet')],
    out: path.join(dir, 'out'),
    storage: path.join(dir, 'state'),
    signal: stop.signal,
    onStart: (run) => {
      run.on('saved', () => {
        if (ingestingAtFirstSave !== undefined) return;
        ingestingAtFirstSave = run.progress().ingesting;
        stop.abort(new Error('enough'));
      });
    },
  }).catch((error: unknown) => {
    if ((error as Error).message !== 'enough') throw error;
  });
  assert.equal(ingestingAtFirstSave, true, 'the table was still being read when the first image was saved');
});
