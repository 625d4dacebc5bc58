// The flags plugin (seed 001) through the CLI, against a local copy of flupy.org's layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { gif } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

const COUNTRIES: Record<string, Record<string, unknown>> = {
  cn: { country: 'China', population: 1_409_670_000, capital: 'Beijing' },
  us: { country: 'United States', population: 334_914_895, capital: 'Washington, D.C.' },
};

/** /data/flags/{cc}/metadata.json and /data/flags/{cc}/{cc}.gif for each country above; anything else is a 404. */
function serveFlags(origin: Origin): void {
  for (const [cc, metadata] of Object.entries(COUNTRIES)) {
    origin.route(`/data/flags/${cc}/metadata.json`, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(metadata));
    });
    origin.route(`/data/flags/${cc}/${cc}.gif`, (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/gif' });
      res.end(gif(12, 8, { seed: cc }));
    });
  }
}

const imgdl = (args: string[], cwd: string) => runCli(args, { cwd, timeoutMs: 30_000 });

interface Record_ {
  url: string;
  file: string;
  contentType: string;
  metadata: Record<string, unknown>;
}

test('imgdl run flags saves CN-China.gif with its metadata, reports the missing country, and a rerun fetches nothing again', async () => {
  const origin = await startOrigin();
  const dir = tmpDir('imgdl-flags-');
  try {
    serveFlags(origin);
    const args = ['run', 'flags', '--base-url', origin.url('/data/flags'), '--codes', 'CN,US,XX', '--storage', 'state', '--json'];
    const first = await imgdl(args, dir);
    assert.equal(first.code, 1, `exit 1 when a country failed\n${first.stderr}`);
    const out = path.join(dir, 'flags');
    assert.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.gif')).sort(), ['CN-China.gif', 'US-United_States.gif']);
    assert.equal(fs.readFileSync(path.join(out, 'CN-China.gif')).subarray(0, 6).toString('latin1'), 'GIF89a');

    const records = readJsonl<Record_>(path.join(out, 'metadata.jsonl'));
    assert.equal(records.length, 2);
    const cn = records.find((r) => r.file === 'CN-China.gif')!;
    assert.equal(cn.url, origin.url('/data/flags/cn/cn.gif'), 'lower-case code in URLs, as in the seed');
    assert.equal(cn.contentType, 'image/gif');
    assert.deepEqual(cn.metadata, COUNTRIES['cn'], 'the record carries the country metadata');
    assert.deepEqual(records.find((r) => r.file === 'US-United_States.gif')?.metadata, COUNTRIES['us']);

    const failures = readJsonl<{ url: string; code: string; status: number }>(path.join(out, 'failures.jsonl'));
    assert.deepEqual(failures.map((f) => [f.url, f.code, f.status]), [[origin.url('/data/flags/xx/metadata.json'), 'http_status', 404]]);
    const summary = JSON.parse(first.stdout) as { downloaded: number; failed: number; pagesFailed?: number; failuresByCode: Record<string, number> };
    assert.equal(summary.downloaded, 2);
    assert.equal(summary.failed, 0, 'no image failed');
    assert.equal(summary.pagesFailed, 1, "the missing country's metadata page failed");
    assert.deepEqual(summary.failuresByCode, { http_status: 1 });
    assert.match(first.stderr, /Done: 2 downloaded/);

    // The same command continues the same run: pages read and images saved are not fetched again.
    const before = origin.log.length;
    const second = await imgdl(args, dir);
    assert.equal(second.code, 1);
    assert.deepEqual(origin.log.slice(before).map((e) => e.path), []);
    const again = JSON.parse(second.stdout) as { downloaded: number; skipped: number; failed: number; pagesFailed?: number };
    assert.deepEqual([again.downloaded, again.skipped, again.failed, again.pagesFailed], [0, 2, 0, 1]);
  } finally {
    await origin.close();
  }
});

test('imgdl run flags --help lists the plugin options with their defaults', async () => {
  const dir = tmpDir('imgdl-flags-');
  const { code, stdout } = await imgdl(['run', 'flags', '--help'], dir);
  assert.equal(code, 0);
  assert.match(stdout, /Usage: imgdl run flags/);
  assert.match(stdout, /--codes CC,CC\s+country codes, comma or space separated \(default: CN IN US ID BR PK NG BD RU JP MX PH VN ET EG DE IR TR CD FR\)/);
  assert.match(stdout, /--base-url URL .*\(default: http:\/\/flupy\.org\/data\/flags\)/);
  assert.match(stdout, /output folder \(default: flags\/\)/);
});
