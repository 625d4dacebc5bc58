// --out s3://bucket/prefix against s3rver (npm: a fake S3, the only S3-compatible server installable here), started by
// this file on a free 127.0.0.1 port, images from the fixture origin. Checked from the bucket itself: the exact object
// set, one record per URL in the uploaded metadata.jsonl, each record's sha256 equal to its object's bytes', no
// temporary file left locally, exit codes; a run killed with SIGKILL and run again; uploads refused by a
// fault-injecting proxy in front of s3rver (retried, then `upload_failed`); multipart uploads; a queue run (with a
// real redis-server) whose workers share no folder.
// Run: node --import tsx --test test/s3.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, listFiles, runProcess, tmpDir, type CliResult } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { redisMissing, startRedis, type RedisServer } from './helpers/redis.ts';
import { S3_ENV, sha256, startConditionalProxy, startFaultProxy, startS3, type FakeS3 } from './helpers/s3.ts';
import type { ImageRecord } from '../src/core/download.ts';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';

const BUCKET = 'imgdl-test';
let s3: FakeS3;
let origin: Origin;
before(async () => {
  s3 = await startS3([BUCKET]);
  origin = await startOrigin({ latencyMs: 20 });
});
after(async () => {
  await s3?.stop();
  await origin?.close();
});

/** The environment of a child imgdl: s3rver's keys, nothing from the caller's AWS set-up or run-state overrides. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|IMGDL_STORAGE|CRAWLEE_STORAGE_DIR)/.test(k)) env[k] = v;
  return { ...env, ...S3_ENV, ...extra };
}

function imgdl(args: string[], cwd: string, extra: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliResult> {
  return runProcess(process.execPath, [BIN, ...args], { cwd, env: childEnv(extra), timeoutMs });
}

function writeList(dir: string, urls: string[], name = 'list.txt'): void {
  fs.writeFileSync(path.join(dir, name), urls.join('\n') + '\n');
}

const RUN_FILES = ['metadata.jsonl', 'failures.jsonl', 'stats.json', 'report.html'];

/**
 * What must hold under `prefix` after a run: one record per URL of `saved` (and no other) in the uploaded
 * metadata.jsonl; each record's object has its size and sha256; every other object is a run file (no orphan, no
 * second copy, no probe, no shard file). Returns the records and the objects.
 */
async function assertBucket(prefix: string, saved: readonly string[], opts: { runFiles?: readonly string[]; foreign?: readonly string[] } = {}): Promise<{ records: ImageRecord[]; objects: Map<string, Buffer> }> {
  const objects = await s3.objects(BUCKET, `${prefix}/`);
  const meta = objects.get(`${prefix}/metadata.jsonl`);
  assert.ok(meta, `metadata.jsonl uploaded under ${prefix}/ (objects: ${[...objects.keys()].join(', ')})`);
  const records = meta.toString('utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as ImageRecord);
  const urls = records.map((r) => r.url);
  assert.deepEqual(urls.filter((u, i) => urls.indexOf(u) !== i), [], 'one record per URL');
  assert.deepEqual([...urls].sort(), [...saved].sort(), 'a record for every URL that must be saved, and for no other');
  const wrong: string[] = [];
  for (const r of records) {
    const body = objects.get(`${prefix}/${r.file}`);
    if (!body) wrong.push(`${r.file}: no object`);
    else if (body.length !== r.bytes || sha256(body) !== r.sha256) wrong.push(`${r.file}: ${body.length} bytes, sha256 differs from its record`);
  }
  assert.deepEqual(wrong, [], "every record's object has its size and sha256");
  const expected = new Set([...records.map((r) => `${prefix}/${r.file}`), ...(opts.runFiles ?? RUN_FILES.filter((f) => f !== 'failures.jsonl')).map((f) => `${prefix}/${f}`), ...(opts.foreign ?? []).map((f) => `${prefix}/${f}`)]);
  assert.deepEqual([...objects.keys()].sort(), [...expected].sort(), 'exactly the images and the run files: no orphan, no second copy, no probe');
  return { records, objects };
}

/** No temporary file or lock left in the local folders of the runs under `dir`/storage. */
function assertNoLocalLeftovers(dir: string): void {
  const files = listFiles(path.join(dir, 'storage'));
  const left = files.filter((f) => /\.imgdl-tmp\/|\.part$|\.tmp$|\.imgdl-lock$|\.imgdl-probe|checkpoint/.test(f));
  assert.deepEqual(left, [], 'no temporary file, lock or probe left locally');
}

test('get --out s3://bucket/prefix: images uploaded under their folder names (a 9 MB one in parts), records and reports uploaded; failures recorded; the same command again fetches nothing', { timeout: 120_000 }, async () => {
  const dir = tmpDir();
  const good = Array.from({ length: 12 }, (_, i) => origin.url(`/img/plain-${i}.png`));
  const big = origin.url('/big/large.png?mb=9');
  const bad = [origin.url('/status/404'), origin.url('/html-as-png/login.png')];
  writeList(dir, [...good, big, ...bad]);
  const args = ['get', 'list.txt', '--out', `s3://${BUCKET}/plain/run`, '--s3-endpoint', s3.endpoint, '-c', '4', '--json'];
  const r = await imgdl(args, dir);
  assert.equal(r.code, 1, r.stderr);
  const summary = JSON.parse(r.stdout) as { downloaded: number; failed: number; outDir: string; metadataFile: string };
  assert.equal(summary.downloaded, 13);
  assert.equal(summary.failed, 2);
  assert.equal(summary.outDir, `s3://${BUCKET}/plain/run`);
  assert.equal(summary.metadataFile, `s3://${BUCKET}/plain/run/metadata.jsonl`);
  const { records, objects } = await assertBucket('plain/run', [...good, big], { runFiles: RUN_FILES });
  assert.deepEqual(records.map((x) => x.file).sort(), [...good.map((_, i) => `plain-${i}.png`), 'large.png'].sort(), 'the names the folder layout gives');
  const large = await s3.head(BUCKET, 'plain/run/large.png');
  assert.equal(large?.bytes, 9 * 1024 * 1024);
  assert.equal(large?.sha256, records.find((x) => x.file === 'large.png')!.sha256, 'the sha256 travels with the object');
  assert.equal((await s3.head(BUCKET, 'plain/run/plain-0.png'))?.contentType, 'image/png');
  const failures = objects.get('plain/run/failures.jsonl')!.toString().trim().split('\n').map((l) => JSON.parse(l) as { url: string; code: string });
  assert.deepEqual(new Map(failures.map((f) => [f.url, f.code])), new Map([[bad[0]!, 'http_status'], [bad[1]!, 'not_image']]));
  assertNoLocalLeftovers(dir);

  const requests = origin.count('/img/plain-') + origin.count('/big/large');
  const again = await imgdl(args, dir);
  assert.equal(again.code, 1, again.stderr);
  const second = JSON.parse(again.stdout) as { downloaded: number; skipped: number; failed: number };
  assert.deepEqual([second.downloaded, second.skipped, second.failed], [0, 13, 2]);
  assert.equal(origin.count('/img/plain-') + origin.count('/big/large'), requests, 'nothing fetched again');
  await assertBucket('plain/run', [...good, big], { runFiles: RUN_FILES });
});

test('a name taken in the bucket by another object is never replaced: the image takes the next stable name', { timeout: 60_000 }, async () => {
  const dir = tmpDir();
  const foreign = Buffer.from('not ours: an object another program wrote');
  await s3.put(BUCKET, 'taken/photo.png', foreign);
  const url = origin.url('/img/photo.png');
  writeList(dir, [url]);
  const r = await imgdl(['get', 'list.txt', '--out', `s3://${BUCKET}/taken`, '--s3-endpoint', s3.endpoint, '--json'], dir);
  assert.equal(r.code, 0, r.stderr);
  const { records } = await assertBucket('taken', [url], { foreign: ['photo.png'] });
  assert.notEqual(records[0]!.file, 'photo.png');
  assert.match(records[0]!.file, /^photo-[0-9a-f]+\.png$/);
  assert.deepEqual(await s3.get(BUCKET, 'taken/photo.png'), foreign, 'the foreign object is untouched');
});

test('a store that honours If-None-Match (a proxy in front of s3rver emulates it): uploads are conditional, a taken name answers 412 and the image takes the next; a run with no local state adopts what the bucket has, never a second copy', { timeout: 120_000 }, async () => {
  const dir = tmpDir();
  const foreign = Buffer.from('not ours either');
  await s3.put(BUCKET, 'cond/photo.png', foreign);
  const proxy = await startConditionalProxy(s3);
  try {
    const urls = [origin.url('/img/photo.png'), ...Array.from({ length: 4 }, (_, i) => origin.url(`/img/cond-${i}.png`))];
    writeList(dir, urls);
    const args = ['get', 'list.txt', '--out', `s3://${BUCKET}/cond`, '--s3-endpoint', proxy.endpoint, '--json'];
    const first = await imgdl(args, dir);
    assert.equal(first.code, 0, first.stderr);
    const { records } = await assertBucket('cond', urls, { foreign: ['photo.png'] });
    assert.match(records.find((r) => r.url === urls[0])!.file, /^photo-[0-9a-f]+\.png$/);
    assert.deepEqual(await s3.get(BUCKET, 'cond/photo.png'), foreign, 'the foreign object is untouched');
    assert.ok(proxy.conditional() >= 7, `the probe's two writes and every image's upload carried If-None-Match (${proxy.conditional()})`);
    const heads = proxy.log.filter((e) => e.method === 'HEAD');
    assert.deepEqual(heads.map((e) => e.path), [`/${BUCKET}/cond/photo.png`], 'no HEAD before each upload: only after the 412, to compare the bytes');
    const objects = [...(await s3.objects(BUCKET, 'cond/')).keys()].sort();

    // --fresh: the local state and records are forgotten; the bucket's metadata.jsonl is read, nothing fetched again.
    const requests = origin.count('/img/');
    const fresh = await imgdl([...args, '--fresh'], dir);
    assert.equal(fresh.code, 0, fresh.stderr);
    const summary = JSON.parse(fresh.stdout) as { downloaded: number; skipped: number };
    assert.deepEqual([summary.downloaded, summary.skipped], [0, 5]);
    assert.equal(origin.count('/img/'), requests, 'nothing fetched: the records and objects in the bucket were taken');
    assert.deepEqual([...(await s3.objects(BUCKET, 'cond/')).keys()].sort(), objects);

    // No records anywhere (the bucket's metadata.jsonl deleted too): each image is fetched, its upload answers 412,
    // and the object there with its bytes is taken as its own, not written again under another name.
    await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'cond/metadata.jsonl' }));
    const again = await imgdl([...args, '--fresh'], dir);
    assert.equal(again.code, 0, again.stderr);
    const { records: adopted } = await assertBucket('cond', urls, { foreign: ['photo.png'] });
    assert.deepEqual(adopted.map((r) => r.file).sort(), records.map((r) => r.file).sort(), 'the same names');
    assert.deepEqual([...(await s3.objects(BUCKET, 'cond/')).keys()].sort(), objects, 'no second copy');
  } finally {
    await proxy.close();
  }
});

test('metadata.jsonl is uploaded at checkpoints while the run goes on (the local copy is authoritative)', { timeout: 60_000 }, async () => {
  const { Engine } = await import('../src/core/engine.ts');
  const { resolveOptions } = await import('../src/options.ts');
  const dir = tmpDir();
  const urls = Array.from({ length: 12 }, (_, i) => origin.url(`/img/checkpoint-${i}.png?delay=200`));
  const saved = { ...process.env };
  Object.assign(process.env, S3_ENV);
  try {
    const engine = await Engine.open({
      stateDir: path.join(dir, 'state'), outDir: path.join(dir, 'local'), options: resolveOptions({ concurrency: 1 }),
      items: urls.map((url) => ({ url })), s3: { target: { bucket: BUCKET, prefix: 'checkpoint', endpoint: s3.endpoint, addressing: 'path' }, checkpointMs: 300 },
    });
    const running = engine.run();
    let midRun: number | undefined;
    const deadline = Date.now() + 30_000;
    while (midRun === undefined && Date.now() < deadline) {
      const text = await s3.get(BUCKET, 'checkpoint/metadata.jsonl');
      if (text) midRun = text.toString().split('\n').filter(Boolean).length;
      else await sleep(100);
    }
    const summary = await running;
    assert.equal(summary.downloaded, 12);
    assert.ok(midRun !== undefined && midRun >= 1 && midRun < 12, `a checkpoint during the run held ${midRun} of 12 records`);
    await assertBucket('checkpoint', urls, { runFiles: RUN_FILES.filter((f) => f !== 'failures.jsonl') });
  } finally {
    for (const k of Object.keys(S3_ENV)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

test('killed with SIGKILL mid-run, then the same command: one record per URL, one object per image, nothing fetched twice but what was in flight', { timeout: 180_000 }, async () => {
  const dir = tmpDir();
  const urls = Array.from({ length: 80 }, (_, i) => origin.url(`/img/kill-${i}.png?delay=60`));
  writeList(dir, urls);
  const args = ['get', 'list.txt', '--out', `s3://${BUCKET}/killed`, '--s3-endpoint', s3.endpoint, '-c', '4', '--json'];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: childEnv(), stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const deadline = Date.now() + 60_000;
  while (origin.count('/img/kill-') < 30 && Date.now() < deadline && child.exitCode === null) await sleep(20);
  child.kill('SIGKILL');
  await exited;
  const before = origin.count('/img/kill-');
  assert.ok(before >= 30 && before < 80, `killed mid-run (${before} requests)`);
  const r = await imgdl(args, dir);
  assert.equal(r.code, 0, r.stderr);
  await assertBucket('killed', urls);
  const counts = new Map<string, number>();
  for (const e of origin.log) if (e.path.startsWith('/img/kill-')) counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
  const refetched = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  // In flight at the kill: at most 4 images between the start of their download and the end of their upload (-c 4
  // bounds both together with an s3:// output). One uploaded whose record was not yet written is found in the
  // bucket by the next run (HEAD: size and sha256), not fetched again.
  assert.ok(refetched <= 4, `refetched ${refetched} images; at most the 4 in flight (being fetched or uploaded)`);
  assertNoLocalLeftovers(dir);
});

test('bad input is one line and exit 2 before any download: a malformed s3:// URL, a missing bucket, no credentials, an unreachable store, s3 flags with a folder, --layout webdataset', { timeout: 90_000 }, async () => {
  const dir = tmpDir();
  writeList(dir, [origin.url('/img/never-0.png')]);
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--out', 's3://'], {}, /^imgdl: Expected `--out` to be a folder or s3:\/\/BUCKET\/PREFIX, got "s3:\/\/": no bucket\n$/],
    [['--out', 's3://Bad_Bucket/x'], {}, /^imgdl: Expected `--out` .*"Bad_Bucket" is not a valid bucket name/],
    [['--out', `s3://${BUCKET}/a//b`], {}, /^imgdl: Expected `--out` .*empty, "\." or "\.\." segment\n$/],
    [['--out', `s3://${BUCKET}/x`, '--s3-endpoint', 'ftp://127.0.0.1'], {}, /^imgdl: Expected `--s3-endpoint` to be an http\(s\) URL/],
    [['--out', `s3://${BUCKET}/x`, '--s3-addressing', 'sideways'], {}, /^imgdl: Expected `--s3-addressing` to be one of path, virtual/],
    [['--out', 's3://no-such-bucket/x'], {}, /^imgdl: The bucket no-such-bucket does not exist at http:\/\/127\.0\.0\.1:\d+: create it first/],
    [['--out', `s3://${BUCKET}/x`], { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }, /^imgdl: No AWS credentials to write to s3:\/\/imgdl-test\/x: set AWS_ACCESS_KEY_ID/],
    // s3rver knows one key (it does not check the secret's signature): another key is refused.
    [['--out', `s3://${BUCKET}/x`], { AWS_ACCESS_KEY_ID: 'NOBODY', AWS_SECRET_ACCESS_KEY: 'wrong' }, /^imgdl: Not allowed to write to s3:\/\/imgdl-test\/x at http:\/\/127\.0\.0\.1:\d+: InvalidAccessKeyId: .*\(HTTP 403\)\n$/],
    [['--out', 'folder', '--s3-endpoint', 'http://127.0.0.1:9'], {}, /^imgdl: `--s3-endpoint` is for an s3:\/\/ output/],
    [['--out', `s3://${BUCKET}/x`, '--layout', 'webdataset'], {}, /^imgdl: `--layout` webdataset cannot write to an s3:\/\/ output yet/],
  ];
  for (const [extra, env, message] of cases) {
    const args = ['get', 'list.txt', ...extra];
    if (!extra.includes('--s3-endpoint')) args.push('--s3-endpoint', s3.endpoint);
    const r = await imgdl(args, dir, env, 60_000);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, extra.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  // A store nobody answers at: the endpoint comes from $AWS_ENDPOINT_URL here (the CLI reads it when no flag is given).
  const closed = await imgdl(['get', 'list.txt', '--out', `s3://${BUCKET}/x`, '--retries', '0'], dir, { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' }, 60_000);
  assert.equal(closed.code, 2, closed.stderr);
  assert.match(closed.stderr, /^imgdl: Cannot reach http:\/\/127\.0\.0\.1:9 to write to s3:\/\/imgdl-test\/x: .*ECONNREFUSED/);
  assert.equal(origin.count('/img/never-'), 0, 'nothing fetched');
  assert.deepEqual([...(await s3.objects(BUCKET, 'x/')).keys()], [], 'nothing written under the prefix');
});

test('uploads the store refuses with 503 are retried with backoff; one it always refuses fails upload_failed and the run goes on', { timeout: 120_000 }, async () => {
  const dir = tmpDir();
  const seen = new Map<string, number>();
  const proxy = await startFaultProxy(s3.endpoint, (method, p) => {
    if (method !== 'PUT') return undefined;
    const n = (seen.get(p) ?? 0) + 1;
    seen.set(p, n);
    if (p.includes('/flaky-') && n <= 2) return 503;
    if (p.includes('/broken-')) return 503;
    return undefined;
  });
  try {
    const ok = Array.from({ length: 5 }, (_, i) => origin.url(`/img/fine-${i}.png`));
    const flaky = origin.url('/img/flaky-0.png');
    const broken = origin.url('/img/broken-0.png');
    writeList(dir, [...ok, flaky, broken]);
    const r = await imgdl(['get', 'list.txt', '--out', `s3://${BUCKET}/faults`, '--s3-endpoint', proxy.endpoint, '--retries', '3', '--retry-delay', '20', '--json'], dir);
    assert.equal(r.code, 1, r.stderr);
    const { objects } = await assertBucket('faults', [...ok, flaky], { runFiles: RUN_FILES });
    const failures = objects.get('faults/failures.jsonl')!.toString().trim().split('\n').map((l) => JSON.parse(l) as { url: string; code: string; status: number; message: string });
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.url, broken);
    assert.equal(failures[0]!.code, 'upload_failed');
    assert.equal(failures[0]!.status, 503);
    assert.match(failures[0]!.message, /^Could not upload s3:\/\/imgdl-test\/faults\/broken-0\.png: SlowDown/);
    const puts = (part: string) => proxy.log.filter((e) => e.method === 'PUT' && e.path.includes(part)).length;
    assert.equal(puts('/flaky-0.png'), 3, 'refused twice, taken the third time');
    assert.equal(puts('/broken-0.png'), 4, 'the first try and 3 retries, then it failed');
  } finally {
    await proxy.close();
  }
});

test('S3Output: a body over the part size goes up through lib-storage as a multipart upload; s3rver ignores If-None-Match (the HEAD before each upload keeps names); a retried upload', { timeout: 60_000 }, async () => {
  const { S3Output } = await import('../src/output/s3.ts');
  const settings = { retries: 2, retryDelayMs: 10, timeoutMs: 30_000, stallTimeoutMs: 20_000, connectTimeoutMs: 10_000 };
  const saved = { ...process.env };
  Object.assign(process.env, S3_ENV);
  try {
    const out = await S3Output.open({ bucket: BUCKET, prefix: 'unit', endpoint: s3.endpoint, addressing: 'path' }, settings, { partSize: 5 * 1024 * 1024 });
    assert.equal(out.conditional, false, 's3rver answers a second conditional PutObject with 200: conditional writes are not honoured there');
    const commands: string[] = [];
    out.client.middlewareStack.add((next, context) => (args) => {
      commands.push(context.commandName ?? '?');
      return next(args);
    }, { step: 'initialize', name: 'imgdlTestRecorder' });
    const body = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
    const file = path.join(tmpDir(), 'big.bin');
    fs.writeFileSync(file, body);
    assert.equal(await out.putFile('big.bin', file, { bytes: body.length, sha256: sha256(body) }), 'put');
    assert.deepEqual(commands.filter((c) => c !== 'HeadObjectCommand'), ['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);
    const got = await s3.get(BUCKET, 'unit/big.bin');
    assert.equal(sha256(got!), sha256(body), 'the object is whole');
    commands.length = 0;
    assert.equal(await out.putFile('big.bin', file, { bytes: body.length, sha256: sha256(body) }), 'taken', 'never replaced');
    assert.deepEqual(commands, ['HeadObjectCommand']);
    const small = Buffer.from('small body');
    assert.equal(await out.putFile('small.bin', small, { bytes: small.length, sha256: sha256(small) }), 'put');
    assert.deepEqual(commands.slice(1), ['HeadObjectCommand', 'PutObjectCommand'], 'one PutObject at or under the part size');

    // Through a proxy that refuses the first two PUTs of a key with 503: taken on the third attempt.
    let refused = 0;
    const proxy = await startFaultProxy(s3.endpoint, (method, p) => (method === 'PUT' && p.includes('retried') && refused++ < 2 ? 503 : undefined));
    try {
      const via = await S3Output.open({ bucket: BUCKET, prefix: 'unit', endpoint: proxy.endpoint, addressing: 'path' }, settings);
      assert.equal(await via.putFile('retried.bin', small, { bytes: small.length, sha256: sha256(small) }), 'put');
      assert.equal(refused, 3, 'two refused, the third forwarded');
      const always = await startFaultProxy(s3.endpoint, (method, p) => (method === 'PUT' && p.includes('never') ? 500 : undefined));
      try {
        const broken = await S3Output.open({ bucket: BUCKET, prefix: 'unit', endpoint: always.endpoint, addressing: 'path' }, settings);
        await assert.rejects(broken.putFile('never.bin', small, { bytes: small.length, sha256: sha256(small) }), (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 500);
        assert.equal(always.log.filter((e) => e.method === 'PUT' && e.path.includes('never')).length, 3, 'the first try and 2 retries, then the error');
      } finally {
        await always.close();
      }
    } finally {
      await proxy.close();
    }
    assert.equal(await s3.get(BUCKET, 'unit/never.bin'), undefined, 'nothing under the name of a failed upload');
  } finally {
    for (const k of Object.keys(S3_ENV)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

const redisWhy = redisMissing();
const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
if (redisWhy && !CI) console.warn(`\n*** test/s3.test.ts: the queue test is SKIPPED: ${redisWhy}. ***\n`);

test('a queue run into s3://: a coordinator and 2 workers that share no folder; each shard\'s records merged into the bucket\'s metadata.jsonl; no shard file left', { skip: redisWhy && !CI ? redisWhy : false, timeout: 180_000 }, async () => {
  if (redisWhy) throw new Error(`CI must install redis-server: ${redisWhy}`);
  let redis: RedisServer | undefined;
  try {
    redis = await startRedis();
    const dir = tmpDir();
    const urls = Array.from({ length: 60 }, (_, i) => origin.url(`/img/queued-${i}.png`));
    writeList(dir, [...urls, origin.url('/status/404')]);
    // A worker on a machine whose key the store refuses, waiting first: it takes a shard, cannot write, hands the
    // shard back and stops (exit 2) rather than fail shard after shard.
    const refused = imgdl(['worker', '--queue', redis.url, '-c', '2', '--lock-duration', '2'], tmpDir(), { AWS_ACCESS_KEY_ID: 'NOBODY' }, 150_000);
    await sleep(2000);
    const workerDirs = [tmpDir(), tmpDir()];
    const workers = workerDirs.map((cwd) => imgdl(['worker', '--queue', redis!.url, '-c', '4', '--exit-when-idle', '--lock-duration', '2'], cwd, {}, 150_000));
    const r = await imgdl(['get', 'list.txt', '--out', `s3://${BUCKET}/queued`, '--s3-endpoint', s3.endpoint, '--queue', redis.url, '--job-size', '10', '-c', '4', '--lock-duration', '2', '--json'], dir, {}, 150_000);
    assert.equal(r.code, 1, r.stderr);
    const summary = JSON.parse(r.stdout) as { downloaded: number; failed: number; outDir: string; shards: { total: number; done: number } };
    assert.deepEqual([summary.downloaded, summary.failed, summary.outDir], [60, 1, `s3://${BUCKET}/queued`]);
    assert.deepEqual(summary.shards, { total: 7, done: 7, failed: 0 });
    await assertBucket('queued', urls, { runFiles: ['metadata.jsonl', 'failures.jsonl'] });
    for (const w of await Promise.all(workers)) assert.equal(w.code, 0, w.stderr);
    const bad = await refused;
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /handed back \(this worker cannot write to s3:\/\/imgdl-test\/queued\)/);
    assert.match(bad.stderr, /\nimgdl: Not allowed to write to s3:\/\/imgdl-test\/queued at http:\/\/127\.0\.0\.1:\d+: InvalidAccessKeyId: .* \(the shard went back to the queue; this worker stopped\)\n$/);
    for (const cwd of [dir, ...workerDirs]) assertNoLocalLeftovers(cwd);
    for (const cwd of workerDirs) assert.deepEqual(listFiles(path.join(cwd, 'storage', 'shards')), [], "a worker's shard state goes once its records are in the bucket");
  } finally {
    await redis?.stop();
  }
});

test('the library: get({ out: "s3://…", s3Endpoint }) and download() give the objects\' s3:// URLs', { timeout: 60_000 }, async () => {
  const { download } = await import('../src/index.ts');
  const dir = tmpDir();
  const urls = [origin.url('/img/lib-0.png'), origin.url('/img/lib-1.png'), origin.url('/status/404')];
  const saved = { ...process.env };
  Object.assign(process.env, S3_ENV);
  try {
    const { summary, results } = await download(urls, { out: `s3://${BUCKET}/lib`, s3Endpoint: s3.endpoint, storage: path.join(dir, 'storage'), concurrency: 2 });
    assert.equal(summary.downloaded, 2);
    assert.deepEqual(results.map((x) => (x.ok ? x.path : x.status)), [`s3://${BUCKET}/lib/lib-0.png`, `s3://${BUCKET}/lib/lib-1.png`, 'failed']);
    await assertBucket('lib', urls.slice(0, 2), { runFiles: RUN_FILES });
  } finally {
    for (const k of Object.keys(S3_ENV)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});
