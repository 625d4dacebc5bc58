/**
 * W10: a dataset run. 2,000 JPEGs of about 1 MB from a local origin, resized (shorter side 256), converted to WebP
 * and written as WebDataset shards by imgdl, against a Python peer in the seeds' style (aiohttp + Pillow in a thread
 * pool, bench/peers/aiohttp_pillow.py, writing WebP files). Images per second (wall, spawn to exit) and peak RSS
 * (VmHWM) of each, in alternating rounds, medians reported.
 *
 *   npm run build --silent && node --import tsx bench/w10.ts [--rounds N] [--count 2000] [--tools imgdl,aiohttp-pillow]
 *
 * The images are made once with sharp and cached in bench/results/w10-images-2048x1536/ (12 distinct photo-like JPEGs,
 * each URL serving one of them with its own JPEG comment, so every body is distinct). Bounded: each run has a
 * timeout, the origin and temp folders go at the end. The peer is skipped, with a message, when python3 with
 * aiohttp and Pillow is absent (bash bench/setup.sh installs them).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.dirname(benchDir);
const DISTINCT = 12;
const WIDTH = 2048;
const HEIGHT = 1536;
const cacheDir = path.join(benchDir, 'results', `w10-images-${WIDTH}x${HEIGHT}`);
const CONCURRENCY = 64;
const SIZE = 256;
const RUN_TIMEOUT_MS = 40 * 60_000;

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' }, count: { type: 'string', default: '2000' }, tools: { type: 'string', default: 'imgdl,aiohttp-pillow' } } });
const rounds = Number(values.rounds);
const count = Number(values.count);
const tools = values.tools.split(',');

/** The base images: made once (about 1 MB each), then read from the cache. */
async function baseImages(): Promise<Buffer[]> {
  fs.mkdirSync(cacheDir, { recursive: true });
  const files = Array.from({ length: DISTINCT }, (_, i) => path.join(cacheDir, `${i}.jpg`));
  if (files.every((f) => fs.existsSync(f))) return files.map((f) => fs.readFileSync(f));
  const { default: sharp } = await import('sharp');
  process.stdout.write(`W10: making ${DISTINCT} JPEGs of ${WIDTH}x${HEIGHT} in ${path.relative(repoRoot, cacheDir)} (once)\n`);
  for (const [i, file] of files.entries()) {
    const raw = Buffer.alloc(WIDTH * HEIGHT * 3);
    // A 3-megapixel photo's worth of detail: smooth shapes plus grain, about 1 MB as a JPEG at quality 85.
    let x = 1 + i * 7919;
    for (let p = 0; p < raw.length; p++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      const col = (p / 3) % WIDTH;
      const row = Math.floor(p / 3 / WIDTH);
      raw[p] = 128 + 60 * Math.sin((col + i * 31) / 97 + (p % 3)) * Math.cos(row / (61 + i)) + (x % 56) - 28;
    }
    fs.writeFileSync(file, await sharp(raw, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).jpeg({ quality: 85 }).toBuffer());
  }
  return files.map((f) => fs.readFileSync(f));
}

/** A JPEG with a comment segment (COM) holding `n` right after its SOI: other bytes, the same pixels. */
function withComment(jpeg: Buffer, n: number): Buffer {
  const text = Buffer.from(`w10 image ${n}`);
  const com = Buffer.alloc(4);
  com.writeUInt16BE(0xfffe, 0);
  com.writeUInt16BE(text.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), com, text, jpeg.subarray(2)]);
}

interface Result {
  tool: string;
  round: number;
  ok: boolean;
  images: number;
  seconds: number;
  imagesPerSecond: number;
  peakRssMb: number | null;
  /** CPU time (user + system, all threads) per image, from /proc; what a loaded machine does not change much. */
  cpuMsPerImage: number | null;
  note?: string;
}

/** Runs a command with a timeout, sampling its peak RSS (VmHWM of the process and, for the peer, itself only). */
function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; ms: number; stdout: string; stderr: string; peakKb: number | null; cpuMs: number | null }> {
  const started = Date.now();
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IMGDL_STORAGE: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let peakKb: number | null = null;
  let cpuMs: number | null = null;
  const tick = 1000 / 100; // USER_HZ: 100 on Linux
  const sampler = setInterval(() => {
    try {
      // utime + stime (fields 14 and 15), threads included; the last sample before exit.
      const fields = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      cpuMs = (Number(fields[11]) + Number(fields[12])) * tick;
      const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb ?? 0, Number(m[1]));
    } catch {
      // Gone, or not Linux.
    }
  }, 50);
  const killer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearInterval(sampler);
      clearTimeout(killer);
      resolve({ code, ms: Date.now() - started, stdout, stderr, peakKb, cpuMs });
    }),
  );
}

function peerAvailable(): string | undefined {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import aiohttp, PIL'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'python3 with aiohttp and Pillow not found (bash bench/setup.sh installs python3-aiohttp and python3-pil)';
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(repoRoot, 'dist', '.built'))) throw new Error('Build first: npm run build');
  const bases = await baseImages();
  const mean = bases.reduce((s, b) => s + b.length, 0) / bases.length;
  const server = http.createServer((req, res) => {
    const m = /^\/w10\/(\d+)\.jpg$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const n = Number(m[1]);
    const body = withComment(bases[n % DISTINCT]!, n);
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-w10-'));
  const list = path.join(work, 'list.txt');
  fs.writeFileSync(list, Array.from({ length: count }, (_, i) => `${base}/w10/${i}.jpg`).join('\n') + '\n');
  process.stdout.write(`W10: ${count} JPEGs of ${WIDTH}x${HEIGHT}, ${(mean / 1e6).toFixed(2)} MB on average, resized to ${SIZE} (shorter side) as WebP, concurrency ${CONCURRENCY}; ${rounds} round(s), alternating\n`);
  const skipped = peerAvailable();
  if (skipped && tools.includes('aiohttp-pillow')) process.stdout.write(`skipped aiohttp-pillow: ${skipped}\n`);
  const results: Result[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const tool of tools) {
        if (tool === 'aiohttp-pillow' && skipped) continue;
        const out = path.join(work, `${tool}-${round}`);
        const r =
          tool === 'imgdl'
            ? await run(process.execPath, [path.join(repoRoot, 'bin', 'imgdl.js'), 'get', list, '--out', out, '--storage', path.join(work, `state-${round}`), '-c', String(CONCURRENCY), '--resize', String(SIZE), '--resize-mode', 'keep-ratio', '--format', 'webp', '--layout', 'webdataset', '--quiet', '--json'], work)
            : await run('/usr/bin/python3', [path.join(benchDir, 'peers', 'aiohttp_pillow.py'), list, out, String(CONCURRENCY), String(SIZE)], work);
        let images = 0;
        try {
          const summary = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { downloaded?: number };
          images = summary.downloaded ?? 0;
        } catch {
          images = 0;
        }
        const seconds = r.ms / 1000;
        const result: Result = { tool, round, ok: r.code === 0 && images === count, images, seconds, imagesPerSecond: images / seconds, peakRssMb: r.peakKb === null ? null : Math.round(r.peakKb / 1024), cpuMsPerImage: r.cpuMs === null || images === 0 ? null : Math.round((r.cpuMs / images) * 10) / 10 };
        if (!result.ok) result.note = `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`;
        results.push(result);
        process.stdout.write(`  round ${round} ${tool.padEnd(15)} ${result.imagesPerSecond.toFixed(1).padStart(7)} images/s  ${seconds.toFixed(1).padStart(6)} s  peak RSS ${result.peakRssMb ?? '?'} MB  CPU ${result.cpuMsPerImage ?? '?'} ms/image${result.note ? `  (${result.note})` : ''}\n`);
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
  } finally {
    server.close();
    server.closeAllConnections();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const byTool = new Map<string, { ips: number; rss: number; cpu: number }>();
  for (const tool of tools) {
    const ok = results.filter((r) => r.tool === tool && r.ok);
    if (ok.length === 0) continue;
    byTool.set(tool, { ips: median(ok.map((r) => r.imagesPerSecond)), rss: median(ok.map((r) => r.peakRssMb ?? NaN)), cpu: median(ok.map((r) => r.cpuMsPerImage ?? NaN)) });
  }
  process.stdout.write('\n| tool | images/s (median) | peak RSS MB (median) | CPU ms per image (median) |\n|---|---|---|---|\n');
  for (const [tool, m] of byTool) process.stdout.write(`| ${tool} | ${m.ips.toFixed(1)} | ${m.rss} | ${m.cpu} |\n`);
  const a = byTool.get('imgdl');
  const b = byTool.get('aiohttp-pillow');
  if (a && b) {
    process.stdout.write(`\nimgdl / peer: ${(a.ips / b.ips).toFixed(2)}× the images per second (target ≥ 2×: ${a.ips >= 2 * b.ips ? 'met' : 'missed'}); ${(b.cpu / a.cpu).toFixed(2)}× less CPU per image\n`);
  }
  fs.mkdirSync(path.join(benchDir, 'results'), { recursive: true });
  fs.writeFileSync(path.join(benchDir, 'results', 'w10.json'), JSON.stringify({ date: new Date().toISOString(), count, meanBytes: Math.round(mean), results }, null, 2));
}

main().catch((error: unknown) => {
  process.stderr.write(`W10: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
