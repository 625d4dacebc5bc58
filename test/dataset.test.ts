// Dataset runs (issue 16): processing with sharp (--resize and its modes, --format, --quality, --min-size,
// --max-aspect, --keep-original, decode_failed, too_large), WebDataset tar shards (read back with tar-stream, every
// sample checked; a kill -9 mid-shard then a resume), and --dedupe. Real images, made with sharp here and served by
// a local origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { get } from '../src/get.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { BIN, readJsonl, runCli, runProcess, tmpDir } from './helpers/cli.ts';
import { assertFolder, failureCodes } from './helpers/invariants.ts';
import { crc32, png } from './helpers/images.ts';
import { tarMembers } from './helpers/tar.ts';

interface Rec {
  url: string;
  file: string;
  bytes: number;
  sha256: string;
  contentType: string;
  width: number;
  height: number;
  key: string;
  caption?: string;
  metadata?: { caption?: string };
  original?: { bytes: number; sha256: string; contentType: string; width: number; height: number; file?: string };
  duplicateOf?: string;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A photo-like image (a gradient with noise, so encoders have work), w × h, as `format`. */
async function photo(w: number, h: number, format: 'jpeg' | 'png', seed = 0): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  let x = 12345 + seed;
  for (let i = 0; i < raw.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    raw[i] = ((i % (w * 3)) * 255) / (w * 3) + (x % 32);
  }
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  return format === 'jpeg' ? img.jpeg({ quality: 90 }).toBuffer() : img.png().toBuffer();
}

/** Serves `images` (path → bytes) on the origin with their type. */
function serve(origin: Origin, images: Record<string, Buffer>): void {
  for (const [p, body] of Object.entries(images)) {
    origin.route(p, (_req, res) => {
      res.writeHead(200, { 'content-type': p.endsWith('.png') ? 'image/png' : 'image/jpeg', 'content-length': body.length });
      res.end(body);
    });
  }
}

function records(out: string): Map<string, Rec> {
  return new Map(readJsonl<Rec>(path.join(out, 'metadata.jsonl')).map((r) => [r.url, r]));
}

/** A PNG whose header declares 50000 × 50000 pixels (a pixel bomb: 2.5 Gpx), with a small valid body otherwise. */
function pixelBomb(): Buffer {
  const b = Buffer.from(png(1, 1));
  b.writeUInt32BE(50_000, 16);
  b.writeUInt32BE(50_000, 20);
  // The IHDR's CRC over its type and data, so the header is well-formed.
  b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  return b;
}

test('--resize: each mode gives exactly its dimensions; records keep the original and the output', async () => {
  const origin = await startOrigin();
  try {
    const land = await photo(300, 200, 'jpeg');
    const port = await photo(150, 400, 'png', 1);
    serve(origin, { '/land.jpg': land, '/port.png': port });
    const expected: Record<string, [[number, number], [number, number]]> = {
      'keep-ratio': [[150, 100], [100, 267]],
      'keep-ratio-largest': [[100, 67], [38, 100]],
      'center-crop': [[100, 100], [100, 100]],
      border: [[100, 100], [100, 100]],
      no: [[300, 200], [150, 400]],
    };
    for (const [mode, [l, p]] of Object.entries(expected)) {
      const dir = tmpDir();
      const out = path.join(dir, 'out');
      const summary = await get({ inputs: [origin.url('/land.jpg'), origin.url('/port.png')], out, storage: path.join(dir, 's'), resize: 100, resizeMode: mode, format: 'webp' });
      assert.equal(summary.downloaded, 2, mode);
      const recs = await assertFolder(out, [origin.url('/land.jpg'), origin.url('/port.png')]);
      for (const [url, dims, src, srcDims] of [[origin.url('/land.jpg'), l, land, [300, 200]], [origin.url('/port.png'), p, port, [150, 400]]] as const) {
        const r = recs.find((x) => x.url === url) as unknown as Rec;
        assert.deepEqual([r.width, r.height], dims, `${mode}: ${url} recorded at ${dims.join('x')}`);
        const meta = await sharp(path.join(out, r.file)).metadata();
        assert.deepEqual([meta.width, meta.height, meta.format], [...dims, 'webp'], `${mode}: ${r.file} decodes as a ${dims.join('x')} WebP`);
        assert.match(r.file, /\.webp$/);
        assert.equal(r.contentType, 'image/webp');
        assert.deepEqual(r.original, { bytes: src.length, sha256: sha(src), contentType: url.endsWith('.png') ? 'image/png' : 'image/jpeg', width: srcDims[0], height: srcDims[1] }, `${mode}: the original's figures`);
        assert.ok(!fs.existsSync(path.join(out, 'originals')), 'no originals without --keep-original');
      }
    }
  } finally {
    await origin.close();
  }
});

test('--format jpeg, webp, avif, png decode back as that format; --quality changes the bytes', async () => {
  const origin = await startOrigin();
  try {
    const src = await photo(240, 180, 'png', 2);
    serve(origin, { '/a.png': src });
    const sizes: Record<string, number> = {};
    for (const [format, decoded, ext] of [['jpeg', 'jpeg', 'jpg'], ['webp', 'webp', 'webp'], ['avif', 'heif', 'avif'], ['png', 'png', 'png'], ['jpg', 'jpeg', 'jpg']] as const) {
      for (const quality of format === 'jpeg' ? [30, 95] : [undefined]) {
        const dir = tmpDir();
        const out = path.join(dir, 'out');
        await get({ inputs: [origin.url('/a.png')], out, storage: path.join(dir, 's'), format, ...(quality ? { quality } : {}) });
        const [r] = (await assertFolder(out, [origin.url('/a.png')])) as unknown as Rec[];
        assert.equal(path.extname(r!.file), `.${ext}`);
        const file = fs.readFileSync(path.join(out, r!.file));
        const meta = await sharp(file).metadata();
        assert.equal(meta.format, decoded, `${format} decodes as ${decoded}`);
        assert.deepEqual([meta.width, meta.height, r!.width, r!.height], [240, 180, 240, 180], 'no resize: same dimensions');
        if (quality) sizes[quality] = file.length;
      }
    }
    assert.ok(sizes[30]! < sizes[95]!, `--quality 30 gives a smaller JPEG than 95 (${sizes[30]} vs ${sizes[95]})`);
  } finally {
    await origin.close();
  }
});

test('a corrupt JPEG fails decode_failed, a pixel bomb too_large, --min-size too_small, --max-aspect aspect_ratio; the others are saved', async () => {
  const origin = await startOrigin();
  try {
    const good = await photo(200, 150, 'jpeg', 3);
    // Header and end marker intact (it passes the completeness check), entropy-coded data scrambled.
    const corrupt = Buffer.from(await photo(200, 150, 'jpeg', 4));
    for (let i = 700; i < corrupt.length - 2; i++) corrupt[i] = (i * 7) & 0xff;
    const small = await photo(40, 30, 'jpeg', 5);
    const long = await photo(400, 100, 'jpeg', 6);
    serve(origin, { '/good.jpg': good, '/corrupt.jpg': corrupt, '/bomb.png': pixelBomb(), '/small.jpg': small, '/long.jpg': long });
    const urls = ['/good.jpg', '/corrupt.jpg', '/bomb.png', '/small.jpg', '/long.jpg'].map((p) => origin.url(p));
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'list.txt'), urls.join('\n') + '\n');
    // No --resize or --format: images are only decoded and checked, and the original bytes are what is saved.
    const r = await runCli(['get', 'list.txt', '--min-size', '64x64', '--max-aspect', '3', '--storage', 's', '--quiet', '--json'], { cwd: dir, timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    const out = path.join(dir, 'list');
    const [rec] = (await assertFolder(out, [urls[0]!])) as unknown as Rec[];
    assert.equal(rec!.sha256, sha(good), 'checked only: the original bytes are saved');
    assert.equal(rec!.original, undefined);
    assert.deepEqual(Object.fromEntries(failureCodes(out)), {
      [urls[1]!]: 'decode_failed',
      [urls[2]!]: 'too_large',
      [urls[3]!]: 'too_small',
      [urls[4]!]: 'aspect_ratio',
    });
  } finally {
    await origin.close();
  }
});

test('--keep-original keeps both: originals/ holds the bytes as fetched, the record points to it', async () => {
  const origin = await startOrigin();
  try {
    const a = await photo(320, 240, 'jpeg', 7);
    const b = await photo(100, 300, 'png', 8);
    serve(origin, { '/a.jpg': a, '/b.png': b });
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    const urls = [origin.url('/a.jpg'), origin.url('/b.png')];
    await get({ inputs: urls, out, storage: path.join(dir, 's'), resize: 64, resizeMode: 'center-crop', format: 'jpeg', keepOriginal: true });
    const recs = (await assertFolder(out, urls)) as unknown as Rec[];
    for (const [url, src, ext] of [[urls[0]!, a, 'jpg'], [urls[1]!, b, 'png']] as const) {
      const r = recs.find((x) => x.url === url)!;
      assert.equal(r.original!.file, `originals/${path.basename(r.file, '.jpg')}.${ext}`);
      assert.equal(sha(fs.readFileSync(path.join(out, r.original!.file))), sha(src), 'the original as fetched');
      assert.equal(r.original!.sha256, sha(src));
      assert.deepEqual([r.width, r.height], [64, 64]);
    }
    assert.equal(fs.readdirSync(path.join(out, 'originals')).length, 2);
  } finally {
    await origin.close();
  }
});

test('bad processing options are one clear line, exit 2, before any request', async () => {
  const origin = await startOrigin();
  try {
    const dir = tmpDir();
    for (const [args, pattern] of [
      [['--resize', '0'], /--resize/],
      [['--resize', '64', '--resize-mode', 'stretch'], /--resize-mode.*keep-ratio/],
      [['--format', 'gif'], /--format.*webp/],
      [['--quality', '101'], /--quality/],
      [['--min-size', '64'], /--min-size.*WIDTHxHEIGHT/],
      [['--max-aspect', '0.5'], /--max-aspect/],
      [['--keep-original'], /--keep-original.*--resize/],
      [['--layout', 'zip'], /--layout.*webdataset/],
      [['--shard-size', '0'], /--shard-size/],
    ] as const) {
      const r = await runCli(['get', origin.url('/img/x.png'), '--storage', 's', '--quiet', ...args], { cwd: dir });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
    assert.equal(origin.log.length, 0, 'no request made');
  } finally {
    await origin.close();
  }
});

// ---------------------------------------------------------------- WebDataset

interface Sample {
  members: Map<string, Buffer>;
}

/** Every member of a tar, grouped by sample key (the name up to its first dot), in order (a name twice fails). */
async function readTar(file: string): Promise<Map<string, Sample>> {
  const samples = new Map<string, Sample>();
  for (const [name, data] of await tarMembers(file)) {
    const key = name.slice(0, name.indexOf('.'));
    const s = samples.get(key) ?? { members: new Map() };
    s.members.set(name, data);
    samples.set(key, s);
  }
  return samples;
}

/**
 * Reads every shard of `out` back and checks each sample: its image member has the sha256 and size of its JSON
 * record, which is the metadata file's record, the caption is KEY.txt; returns samples by URL. Also: no part file
 * left, an index per shard listing its samples.
 */
async function checkShards(out: string): Promise<{ shards: string[]; byUrl: Map<string, { shard: string; rec: Rec; members: Map<string, Buffer> }> }> {
  const names = fs.readdirSync(out);
  assert.deepEqual(names.filter((n) => n.endsWith('.part')), [], 'no part file left');
  const shards = names.filter((n) => /^\d{5}\.tar$/.test(n)).sort();
  const meta = records(out);
  const byUrl = new Map<string, { shard: string; rec: Rec; members: Map<string, Buffer> }>();
  for (const shard of shards) {
    const index = readJsonl<{ key: string; url: string; status: string; sha256: string | null }>(path.join(out, shard.replace('.tar', '.jsonl')));
    const samples = await readTar(path.join(out, shard));
    for (const [key, s] of samples) {
      const json = s.members.get(`${key}.json`);
      assert.ok(json, `${shard}: ${key}.json`);
      const rec = JSON.parse(json.toString('utf8')) as Rec;
      assert.equal(rec.key, key);
      const member = rec.file.slice(rec.file.indexOf('/') + 1);
      assert.equal(rec.file, `${shard}/${member}`);
      const image = s.members.get(member)!;
      assert.ok(image, `${shard}: ${member}`);
      assert.equal(sha(image), rec.sha256, `${shard}: ${member}'s sha256 is its record's`);
      assert.equal(image.length, rec.bytes);
      assert.deepEqual(meta.get(rec.url), rec, 'the sample JSON is the metadata record');
      if (rec.caption !== undefined) assert.equal(s.members.get(`${key}.txt`)?.toString('utf8'), rec.caption);
      else assert.ok(!s.members.has(`${key}.txt`));
      assert.ok(!byUrl.has(rec.url), `${rec.url} in one sample only (again in ${shard})`);
      byUrl.set(rec.url, { shard, rec, members: s.members });
      assert.ok(index.some((l) => l.key === key && l.status === 'success' && l.sha256 === rec.sha256), `${shard}'s index lists ${key}`);
    }
    assert.equal(index.filter((l) => l.status === 'success').length, samples.size, `${shard}'s index has one success line per sample`);
  }
  return { shards, byUrl };
}

test('--layout webdataset: shards of --shard-size samples, each read back and checked; captions as KEY.txt; failures in the index', async () => {
  const origin = await startOrigin();
  try {
    const images: Record<string, Buffer> = {};
    for (let i = 0; i < 23; i++) images[`/p${i}.jpg`] = await photo(120 + i, 90, 'jpeg', 100 + i);
    serve(origin, images);
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    const items = Object.keys(images).map((p, i) => (i % 5 === 0 ? { url: origin.url(p), metadata: { caption: `a photo number ${i}` } } : { url: origin.url(p) }));
    const missing = [origin.url('/status/404'), origin.url('/html-as-png/x.png')];
    const summary = await get({ items: [...items, ...missing.map((url) => ({ url }))], out, storage: path.join(dir, 's'), layout: 'webdataset', shardSize: 10, resize: 64, resizeMode: 'keep-ratio', format: 'webp', keepOriginal: true });
    assert.equal(summary.downloaded, 23);
    assert.equal(summary.failed, 2);
    const { shards, byUrl } = await checkShards(out);
    assert.deepEqual(shards, ['00000.tar', '00001.tar', '00002.tar']);
    const counts = await Promise.all(shards.map(async (s) => (await readTar(path.join(out, s))).size));
    assert.deepEqual(counts, [10, 10, 3], 'full shards of --shard-size, the last one partial');
    assert.equal(byUrl.size, 23, 'every image in one sample');
    for (const [url, { rec, members }] of byUrl) {
      const meta = await sharp(members.get(`${rec.key}.webp`)!).metadata();
      assert.deepEqual([meta.format, meta.height], ['webp', 64], `${url} resized and converted`);
      assert.equal(rec.original!.sha256, sha(images[new URL(url).pathname]!), "the original's sha256");
      assert.equal(sha(members.get(`${rec.key}.orig.jpg`)!), rec.original!.sha256, '--keep-original: KEY.orig.jpg is the original as fetched');
    }
    const captioned = [...byUrl.values()].filter((s) => s.rec.caption !== undefined);
    assert.equal(captioned.length, 5, 'a KEY.txt for each image with a caption');
    const index = shards.flatMap((s) => readJsonl<{ url: string; status: string; error: string | null }>(path.join(out, s.replace('.tar', '.jsonl'))));
    assert.deepEqual(index.filter((l) => l.status === 'failed').map((l) => [l.url, l.error]).sort(), [[missing[0], 'http_status'], [missing[1], 'not_image']].sort());
    assert.equal(fs.readdirSync(out).filter((n) => /\.(jpg|webp|png)$/.test(n)).length, 0, 'no loose image files');
    assert.ok(!fs.existsSync(path.join(out, '.imgdl-tmp')) || fs.readdirSync(path.join(out, '.imgdl-tmp')).length === 0);
  } finally {
    await origin.close();
  }
});

test('webdataset: killed with SIGKILL mid-shard, then resumed: exactly one sample per URL, nothing saved fetched again', async () => {
  const origin = await startOrigin({ latencyMs: 30 });
  try {
    const COUNT = 240;
    const dir = tmpDir();
    const urls = Array.from({ length: COUNT }, (_, i) => origin.url(`/img/p${i}.png?pad=3000`));
    fs.writeFileSync(path.join(dir, 'list.txt'), urls.join('\n') + '\n');
    const out = path.join(dir, 'list');
    const args = ['get', 'list.txt', '--layout', 'webdataset', '--shard-size', '32', '--concurrency', '8', '--storage', 's', '--quiet'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    // Killed once a shard is complete and the next is part-way: a part file with samples in it.
    const until = Date.now() + 50_000;
    const partway = () => {
      const names = fs.existsSync(out) ? fs.readdirSync(out) : [];
      const part = names.find((n) => n.endsWith('.tar.part'));
      return names.includes('00000.tar') && part !== undefined && fs.statSync(path.join(out, part)).size > 20_000;
    };
    while (!partway() && Date.now() < until) await sleep(10);
    child.kill('SIGKILL');
    await exited;
    clearTimeout(killer);
    assert.ok(partway(), 'killed mid-shard');
    const before = origin.log.length;
    assert.ok(before < COUNT, 'killed part-way');
    const second = await runCli(args, { cwd: dir, timeoutMs: 90_000 });
    assert.equal(second.code, 0, second.stderr);
    const { byUrl } = await checkShards(out);
    assert.deepEqual([...byUrl.keys()].sort(), [...urls].sort(), 'exactly one sample per URL');
    assert.equal(records(out).size, COUNT);
    assert.equal(readJsonl(path.join(out, 'metadata.jsonl')).length, COUNT, 'one record per URL');
    const fetched = new Map<string, number>();
    for (const e of origin.log) fetched.set(e.path, (fetched.get(e.path) ?? 0) + 1);
    const twice = [...fetched.values()].filter((n) => n > 1).length;
    // Only images in flight (fetched, or written but not yet committed) at the kill are fetched again.
    assert.ok(twice <= 2 * 8 + 256, `at most the images in flight fetched twice (${twice})`);
    const samples = [...byUrl.values()];
    for (const { rec, members } of samples) assert.ok(members.get(rec.file.split('/')[1]!)!.subarray(1, 4).equals(Buffer.from('PNG')));
  } finally {
    await origin.close();
  }
});

// ---------------------------------------------------------------- --dedupe

test('--dedupe: an image whose bytes were saved already is not saved again; its record points to the first', async () => {
  const origin = await startOrigin();
  try {
    const dir = tmpDir();
    // The same seed gives the same bytes at different paths.
    const same = ['/img/a.png?seed=7&pad=3000', '/img/b.png?seed=7&pad=3000', '/img/c.png?seed=7&pad=3000'].map((p) => origin.url(p));
    const other = origin.url('/img/d.png?seed=8&pad=3000');
    fs.writeFileSync(path.join(dir, 'list.txt'), [...same, other].join('\n') + '\n');
    const r = await runCli(['get', 'list.txt', '--dedupe', '--storage', 's', '--quiet'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const out = path.join(dir, 'list');
    const recs = readJsonl<Rec>(path.join(out, 'metadata.jsonl'));
    assert.equal(recs.length, 4, 'a record per URL');
    const firsts = recs.filter((x) => x.duplicateOf === undefined);
    const dupes = recs.filter((x) => x.duplicateOf !== undefined);
    assert.equal(firsts.length, 2);
    assert.equal(dupes.length, 2);
    const first = firsts.find((x) => same.includes(x.url))!;
    for (const d of dupes) {
      assert.equal(d.duplicateOf, first.url);
      assert.equal(d.file, first.file, "a duplicate's file is the first's");
      assert.equal(d.sha256, first.sha256);
    }
    const files = fs.readdirSync(out).filter((n) => n.endsWith('.png'));
    assert.equal(files.length, 2, 'each distinct image saved once');
    for (const f of firsts) assert.equal(sha(fs.readFileSync(path.join(out, f.file))), f.sha256);

    // Resumed with more copies of it: the run still knows it saved those bytes.
    fs.appendFileSync(path.join(dir, 'list.txt'), origin.url('/img/e.png?seed=7&pad=3000') + '\n');
    const again = await runCli(['get', 'list.txt', '--dedupe', '--storage', 's', '--quiet'], { cwd: dir });
    assert.equal(again.code, 0, again.stderr);
    const e = readJsonl<Rec>(path.join(out, 'metadata.jsonl')).find((x) => x.url.includes('/e.png'))!;
    assert.equal(e.duplicateOf, first.url);
    assert.equal(fs.readdirSync(out).filter((n) => n.endsWith('.png')).length, 2);
  } finally {
    await origin.close();
  }
});

test('--dedupe with --layout webdataset: one sample per distinct image, duplicates listed in the index', async () => {
  const origin = await startOrigin();
  try {
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    const urls = Array.from({ length: 12 }, (_, i) => origin.url(`/img/q${i}.png?seed=${i % 4}&pad=2000`));
    const summary = await get({ inputs: urls, out, storage: path.join(dir, 's'), layout: 'webdataset', dedupe: true, concurrency: 4 });
    assert.equal(summary.failed, 0);
    const { byUrl } = await checkShards(out);
    assert.equal(byUrl.size, 4, 'one sample per distinct image');
    const recs = readJsonl<Rec>(path.join(out, 'metadata.jsonl'));
    assert.equal(recs.length, 12);
    for (const r of recs.filter((x) => x.duplicateOf)) assert.equal(byUrl.get(r.duplicateOf!)!.rec.file, r.file);
    const index = readJsonl<{ status: string }>(path.join(out, '00000.jsonl'));
    assert.equal(index.filter((l) => l.status === 'duplicate').length, 8);
  } finally {
    await origin.close();
  }
});

test('without sharp installed, processing is one clear line, exit 2, before any request', async () => {
  const origin = await startOrigin();
  try {
    const dir = tmpDir();
    // A resolve hook that makes `sharp` unresolvable, as in a project that did not install it.
    const hook = `export async function resolve(s, c, next) { if (s === 'sharp') { const e = new Error("Cannot find package 'sharp'"); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }`;
    fs.writeFileSync(path.join(dir, 'no-sharp.mjs'), `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));\n`);
    const r = await runProcessWith(['--import', './no-sharp.mjs', BIN, 'get', origin.url('/img/x.png'), '--resize', '64', '--storage', 's', '--quiet'], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /needs sharp: npm install sharp/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(origin.log.length, 0);
    // A run without processing never loads it.
    const plain = await runProcessWith(['--import', './no-sharp.mjs', BIN, 'get', origin.url('/img/x.png'), '--storage', 's', '--quiet'], dir);
    assert.equal(plain.code, 0, plain.stderr);
  } finally {
    await origin.close();
  }
});

function runProcessWith(args: string[], cwd: string) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['IMGDL_STORAGE'];
  return runProcess(process.execPath, args, { cwd, env, timeoutMs: 60_000 });
}
