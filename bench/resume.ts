/**
 * Issue 4's figures: a big `imgdl get` killed part-way and resumed.
 *
 *   node --import tsx bench/resume.ts                   # 100,000 URLs, SIGKILL at ~50%, resume to the end
 *   node --import tsx bench/resume.ts --open-million    # time to open a 1,000,000-URL run for resume
 *   node --import tsx bench/resume.ts --all             # both
 *
 * Kill-and-resume: the local origin (bench/origin.ts, its own process) counts every image request per path.
 * `imgdl get list.txt --json` runs until the origin has been asked for ~50% of the list, is killed with SIGKILL,
 * and the same command runs again to the end. Reported: images saved at the kill; extra requests (image requests
 * over both runs minus N; at most the concurrency, the downloads in flight at the kill) and URLs requested twice;
 * the time from spawning the resumed run to its first image request and to its first new image on disk (Node
 * start-up included); the resumed run's own summary; and the checks on the folder: exactly N images, N records with
 * N distinct URLs in metadata.jsonl, no .imgdl-tmp left.
 *
 * Open-million: the same against a 1,000,000-URL list; the first run is killed (SIGKILL) once the whole list is in
 * its state (its progress line says N in total) and it has saved images, then resumed a few times, each killed just
 * after its first new image, timing spawn → first request and spawn → first new image.
 *
 * Writes bench/results/resume-<date>.json and prints a table. Every child process and wait is bounded; the origin
 * and temp folder are removed on any way out.
 */
import { createReadStream, existsSync, mkdtempSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { listImages, NewImageWatch, tally } from './lib/files.ts';
import { cpuBusyShare, machine } from './lib/machine.ts';
import { cleanUpOnExit, killAll, killGroup, startMeasured, startService, waitExit, type Command, type Measured, type RunResult } from './lib/proc.ts';
import { imgdlCli } from './lib/tools.ts';
import { writeUrlList } from './lib/workloads.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = dirname(benchDir);
const resultsDir = join(benchDir, 'results');

const POLL_MS = 20;

const USAGE = `Usage: node --import tsx bench/resume.ts [--urls N] [--open-million] [--all] [options]

  --urls N            URLs of the kill-and-resume run (default 100000)
  --kill-at F         share of the list requested before the SIGKILL (default 0.5)
  --open-million      only the open-for-resume timing on a big list (--million-urls, default 1000000)
  --all               both
  --million-urls N    URLs of the open-for-resume run (default 1000000)
  --samples N         resumes timed in the open-for-resume run (default 3)
  -c, --concurrency N imgdl's --concurrency (default 64)
  --bytes N           size of each image (default 2048; W1's is 12288)

Writes bench/results/resume-<date>.json. IMGDL_BENCH_CLI=path/to/imgdl.js measures another build of the CLI.
`;

interface Options {
  urls: number;
  killAt: number;
  resume: boolean;
  open: boolean;
  millionUrls: number;
  samples: number;
  concurrency: number;
  bytes: number;
}

function fail(message: string): never {
  process.stderr.write(`bench/resume: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function readOptions(): Options {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        urls: { type: 'string', default: '100000' },
        'kill-at': { type: 'string', default: '0.5' },
        'open-million': { type: 'boolean', default: false },
        all: { type: 'boolean', default: false },
        'million-urls': { type: 'string', default: '1000000' },
        samples: { type: 'string', default: '3' },
        concurrency: { type: 'string', short: 'c', default: '64' },
        bytes: { type: 'string', default: '2048' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got ${raw}`);
    return n;
  };
  const killAt = Number(values['kill-at']);
  if (!(killAt > 0 && killAt < 1)) fail(`--kill-at must be between 0 and 1, got ${values['kill-at']}`);
  return {
    urls: int('urls', values.urls, 100),
    killAt,
    resume: values.all || !values['open-million'],
    open: values.all || values['open-million'],
    millionUrls: int('million-urls', values['million-urls'], 1000),
    samples: int('samples', values.samples, 1),
    concurrency: int('concurrency', values.concurrency, 1),
    bytes: int('bytes', values.bytes, 100),
  };
}

// ---------------------------------------------------------------- the origin and its counters

interface Stats {
  requests: number;
  images: number;
  untracked: number;
  /** Epoch ms of the first image request after the last `mark`. */
  firstImageAfterMark: number | null;
  distinct?: number;
  twice?: number;
  maxPerPath?: number;
  twiceSample?: number[];
}

class Origin {
  constructor(readonly port: number) {}

  async stats(query = ''): Promise<Stats> {
    const response = await fetch(`http://127.0.0.1:${this.port}/__stats${query}`, { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) throw new Error(`origin /__stats: HTTP ${response.status}`);
    return (await response.json()) as Stats;
  }

  reset(): Promise<Stats> {
    return this.stats('?reset=1');
  }

  mark(): Promise<Stats> {
    return this.stats('?mark=1');
  }

  /** Bytes of the image it serves (this request is counted: ask before a reset). */
  async imageBytes(): Promise<number> {
    const response = await fetch(`http://127.0.0.1:${this.port}/img/999999999.png`, { signal: AbortSignal.timeout(10_000) });
    return (await response.arrayBuffer()).byteLength;
  }
}

async function startOrigin(bytes: number): Promise<Origin> {
  const { firstLine } = await startService(
    { cmd: process.execPath, args: ['--import', 'tsx', join(benchDir, 'origin.ts'), '--bytes', String(bytes), '--latency', '0'], cwd: repoRoot },
    20_000,
  );
  const { ports } = JSON.parse(firstLine) as { ports: number[] };
  return new Origin(ports[0]!);
}

// ---------------------------------------------------------------- small helpers

/** Polls `check` every POLL_MS until it returns a value (not undefined), or `ms` pass (undefined). */
async function poll<T>(ms: number, check: () => Promise<T | undefined> | T | undefined): Promise<T | undefined> {
  const until = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > until) return undefined;
    await sleep(POLL_MS);
  }
}

/**
 * Waits until no process of a killed run's group is left, zombies included (bounded). The CLI runs under GNU time,
 * so a SIGKILL leaves imgdl's node as an orphan zombie until init reaps it, and imgdl's run lock counts a zombie
 * holder as alive: a rerun started before that would be refused. Returns the milliseconds waited.
 */
async function waitGone(m: Measured, ms = 10_000): Promise<number> {
  const from = performance.now();
  const pid = m.child.pid;
  if (pid === undefined) return 0;
  await poll(ms, () => {
    try {
      process.kill(-pid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
  return performance.now() - from;
}

const exited = (m: Measured): boolean => m.child.exitCode !== null || m.child.signalCode !== null;
const round = (n: number | null, digits = 3): number | null => (n === null ? null : Math.round(n * 10 ** digits) / 10 ** digits);
const epochOf = (performanceMs: number): number => performance.timeOrigin + performanceMs;

function lastJson(text: string): Record<string, unknown> | null {
  const line = text.trim().split('\n').pop();
  try {
    return line ? (JSON.parse(line) as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function tail(result: RunResult): string {
  return result.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 400);
}

/** metadata.jsonl: lines, well-formed records, distinct URLs. */
async function readMetadata(file: string): Promise<{ lines: number; records: number; distinctUrls: number }> {
  if (!existsSync(file)) return { lines: 0, records: 0, distinctUrls: 0 };
  const urls = new Set<string>();
  let lines = 0;
  let records = 0;
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    lines++;
    try {
      const record = JSON.parse(line) as { url?: unknown };
      if (typeof record.url === 'string') {
        records++;
        urls.add(record.url);
      }
    } catch {
      // a torn line: counted in `lines`, not in `records`
    }
  }
  return { lines, records, distinctUrls: urls.size };
}

/** Files directly in the output folder, apart from the two .jsonl files. */
async function outputFiles(out: string): Promise<{ images: number; other: string[]; tmpLeft: boolean }> {
  const entries = await readdir(out, { withFileTypes: true }).catch(() => []);
  let images = 0;
  const other: string[] = [];
  for (const e of entries) {
    if (e.name === 'metadata.jsonl' || e.name === 'failures.jsonl') continue;
    if (e.isFile() && /^\d+\.png$/.test(e.name)) images++;
    else if (e.name !== '.imgdl-tmp') other.push(e.name);
  }
  return { images, other, tmpLeft: existsSync(join(out, '.imgdl-tmp')) };
}

interface Paths {
  list: string;
  out: string;
  storage: string;
  scratch: string;
}

function imgdlGet(p: Paths, concurrency: number, extra: string[]): Command {
  return {
    cmd: process.execPath,
    args: [imgdlCli(repoRoot), 'get', p.list, '--out', p.out, '--storage', p.storage, '--concurrency', String(concurrency), ...extra],
    cwd: repoRoot,
  };
}

/** Starts a resumed run and times it: spawn → first image request at the origin, spawn → first new image on disk. */
async function startTimed(origin: Origin, command: Command, out: string, timeoutMs: number, scratch: string) {
  const known = await listImages(out);
  const watch = new NewImageWatch(out, known);
  await watch.start();
  await origin.mark();
  const run = startMeasured(command, timeoutMs, scratch);
  let firstImageAt: number | null = null;
  void watch.seen.then((at) => {
    firstImageAt = at;
    watch.close();
  });
  const timings = async () => {
    const stats = await origin.stats();
    return {
      firstRequestSeconds: stats.firstImageAfterMark === null ? null : (stats.firstImageAfterMark - epochOf(run.startedAt)) / 1000,
      firstNewImageSeconds: firstImageAt === null ? null : (firstImageAt - run.startedAt) / 1000,
    };
  };
  return { run, known: known.size, watch, timings, seen: watch.seen };
}

// ---------------------------------------------------------------- kill at ~50%, resume to the end

interface KillResume {
  urls: number;
  concurrency: number;
  imageBytes: number;
  firstRun: { seconds: number; requestedAtKill: number; savedAtKill: number; metadataLinesAtKill: number; peakRssMb: number };
  resumed: {
    exitCode: number | null;
    seconds: number;
    firstRequestSeconds: number | null;
    firstNewImageSeconds: number | null;
    peakRssMb: number;
    summary: Record<string, unknown> | null;
  };
  requests: { images: number; extra: number; urlsRequestedTwice: number; maxPerUrl: number; sampleTwice: number[] };
  checks: {
    imagesInFolder: number;
    metadataLines: number;
    metadataDistinctUrls: number;
    tmpLeft: boolean;
    otherFiles: string[];
    extraWithinConcurrency: boolean;
    ok: boolean;
  };
  stateBytes: number;
}

async function killAndResume(origin: Origin, o: Options, tmp: string): Promise<KillResume> {
  const dir = join(tmp, `resume-${o.urls}`);
  const p: Paths = { list: join(dir, 'list.txt'), out: join(dir, 'out'), storage: join(dir, 'state'), scratch: dir };
  await mkdir(p.out, { recursive: true });
  await writeUrlList(p.list, [origin.port], o.urls);
  const command = imgdlGet(p, o.concurrency, ['--json']);
  // Bounds: a generous rate floor of 200 images/s on this machine, never less than 60 s a run.
  const runLimitMs = Math.max(60_000, (o.urls / 200) * 1000);
  const imageBytes = await origin.imageBytes();

  await origin.reset();
  const first = startMeasured(command, runLimitMs, p.scratch);
  const killAfter = Math.floor(o.urls * o.killAt);
  const atKill = await poll(runLimitMs, async () => {
    if (exited(first)) return null;
    const s = await origin.stats();
    return s.images >= killAfter ? s : undefined;
  });
  if (!atKill) {
    killGroup(first.child);
    const r = await first.done;
    throw new Error(atKill === null ? `the first run exited (${r.exitCode ?? r.signal}) before the kill: ${tail(r)}` : `the first run did not reach ${killAfter} requests in ${runLimitMs / 1000} s`);
  }
  killGroup(first.child, 'SIGKILL');
  const firstResult = await first.done;
  const reapMs = await waitGone(first);
  const requestedAtKill = (await origin.stats()).images;
  const savedAtKill = (await listImages(p.out)).size;
  const metadataLinesAtKill = (await readMetadata(join(p.out, 'metadata.jsonl'))).lines;
  process.stdout.write(`  killed the first run after ${firstResult.seconds.toFixed(1)} s: ${requestedAtKill} requested, ${savedAtKill} saved (gone ${reapMs.toFixed(0)} ms after exit)\n`);

  const resumed = await startTimed(origin, command, p.out, runLimitMs, p.scratch);
  const result = await resumed.run.done;
  const { firstRequestSeconds, firstNewImageSeconds } = await resumed.timings();
  resumed.watch.close();
  const final = await origin.stats('?paths=1');
  const files = await outputFiles(p.out);
  const metadata = await readMetadata(join(p.out, 'metadata.jsonl'));
  const extra = final.images - o.urls;
  const extraWithinConcurrency = extra <= o.concurrency;
  const ok =
    result.exitCode === 0 &&
    files.images === o.urls &&
    files.other.length === 0 &&
    !files.tmpLeft &&
    metadata.lines === o.urls &&
    metadata.records === o.urls &&
    metadata.distinctUrls === o.urls &&
    final.distinct === o.urls &&
    extraWithinConcurrency;
  if (result.exitCode !== 0) process.stdout.write(`  the resumed run exited ${result.exitCode ?? result.signal}: ${tail(result)}\n`);
  return {
    urls: o.urls,
    concurrency: o.concurrency,
    imageBytes,
    firstRun: { seconds: round(firstResult.seconds)!, requestedAtKill, savedAtKill, metadataLinesAtKill, peakRssMb: round(firstResult.peakRssMb, 1)! },
    resumed: {
      exitCode: result.exitCode,
      seconds: round(result.seconds)!,
      firstRequestSeconds: round(firstRequestSeconds),
      firstNewImageSeconds: round(firstNewImageSeconds),
      peakRssMb: round(result.peakRssMb, 1)!,
      summary: lastJson(result.stdout),
    },
    requests: { images: final.images, extra, urlsRequestedTwice: final.twice ?? 0, maxPerUrl: final.maxPerPath ?? 0, sampleTwice: final.twiceSample ?? [] },
    checks: {
      imagesInFolder: files.images,
      metadataLines: metadata.lines,
      metadataDistinctUrls: metadata.distinctUrls,
      tmpLeft: files.tmpLeft,
      otherFiles: files.other.slice(0, 10),
      extraWithinConcurrency,
      ok,
    },
    stateBytes: (await tally(p.storage)).allBytes,
  };
}

// ---------------------------------------------------------------- open a 1,000,000-URL run for resume

interface OpenSample {
  firstRequestSeconds: number | null;
  firstNewImageSeconds: number | null;
  peakRssMb: number;
  note?: string;
}

interface OpenMillion {
  urls: number;
  concurrency: number;
  firstRun: { seconds: number; ingestedSeconds: number | null; totalAtKill: number; savedAtKill: number; requestedAtKill: number };
  stateBytes: number;
  samples: OpenSample[];
  firstRequestMedianSeconds: number | null;
  firstNewImageMedianSeconds: number | null;
}

const PROGRESS_LINE = /imgdl: (\d+)\/(\d+) handled/;

function median(values: Array<number | null>): number | null {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

async function openMillion(origin: Origin, o: Options, tmp: string): Promise<OpenMillion> {
  const n = o.millionUrls;
  const dir = join(tmp, `open-${n}`);
  const p: Paths = { list: join(dir, 'list.txt'), out: join(dir, 'out'), storage: join(dir, 'state'), scratch: dir };
  await mkdir(p.out, { recursive: true });
  await writeUrlList(p.list, [origin.port], n);
  // No --json: the quiet progress line (every 5 s, "imgdl: done/total handled") says when the list is all in.
  const command = imgdlGet(p, o.concurrency, []);
  const ingestLimitMs = 150_000;

  await origin.reset();
  const first = startMeasured(command, ingestLimitMs + 30_000, p.scratch);
  let total = 0;
  let buffered = '';
  first.child.stderr?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const m = PROGRESS_LINE.exec(line);
      if (m) total = Math.max(total, Number(m[2]));
    }
  });
  const ingested = await poll(ingestLimitMs, () => (exited(first) ? false : total >= n ? true : undefined));
  const ingestedSeconds = ingested ? (performance.now() - first.startedAt) / 1000 : null;
  killGroup(first.child, 'SIGKILL');
  const firstResult = await first.done;
  await waitGone(first);
  if (ingested === false) throw new Error(`the first run exited (${firstResult.exitCode ?? firstResult.signal}) before its list was in: ${tail(firstResult)}`);
  const savedAtKill = (await listImages(p.out)).size;
  const requestedAtKill = (await origin.stats()).images;
  const stateBytes = (await tally(p.storage)).allBytes;
  process.stdout.write(
    `  first run: ${total.toLocaleString('en-US')} URLs in its state${ingestedSeconds === null ? ' (not all: ingestion did not finish in time)' : ` after ${ingestedSeconds.toFixed(1)} s`}, ` +
      `killed with ${savedAtKill} saved; state ${(stateBytes / 2 ** 20).toFixed(0)} MB\n`,
  );

  const samples: OpenSample[] = [];
  for (let i = 0; i < o.samples; i++) {
    const resumed = await startTimed(origin, command, p.out, 90_000, p.scratch);
    const seen = await Promise.race([resumed.seen.then(() => true), resumed.run.done.then(() => false), sleep(60_000).then(() => false)]);
    // Let it settle the first images' records, then crash it again, like the first run.
    if (seen) await sleep(300);
    killGroup(resumed.run.child, 'SIGKILL');
    await waitExit(resumed.run.child, 10_000);
    const result = await resumed.run.done;
    await waitGone(resumed.run);
    const t = await resumed.timings();
    resumed.watch.close();
    const sample: OpenSample = {
      firstRequestSeconds: round(t.firstRequestSeconds),
      firstNewImageSeconds: round(t.firstNewImageSeconds),
      peakRssMb: round(result.peakRssMb, 1)!,
    };
    if (!seen) sample.note = `no new image (exit ${result.exitCode ?? result.signal}): ${tail(result)}`;
    samples.push(sample);
    process.stdout.write(
      `  resume ${i + 1}: first request ${sample.firstRequestSeconds?.toFixed(2) ?? 'n/a'} s, first new image ${sample.firstNewImageSeconds?.toFixed(2) ?? 'n/a'} s${sample.note ? ` (${sample.note})` : ''}\n`,
    );
  }
  return {
    urls: n,
    concurrency: o.concurrency,
    firstRun: { seconds: round(firstResult.seconds)!, ingestedSeconds: round(ingestedSeconds), totalAtKill: total, savedAtKill, requestedAtKill },
    stateBytes,
    samples,
    firstRequestMedianSeconds: round(median(samples.map((s) => s.firstRequestSeconds))),
    firstNewImageMedianSeconds: round(median(samples.map((s) => s.firstNewImageSeconds))),
  };
}

/** Seconds `imgdl --help` takes from spawn to exit (Node + tsx + the CLI's imports): the floor of any time to first image. */
async function startupSeconds(scratch: string): Promise<number | null> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await startMeasured({ cmd: process.execPath, args: [imgdlCli(repoRoot), 'get', '--help'], cwd: repoRoot }, 30_000, scratch).done;
    if (r.exitCode === 0) times.push(r.seconds);
  }
  return round(median(times));
}

// ---------------------------------------------------------------- report

function table(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
}

const s = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined ? 'n/a' : `${x.toFixed(digits)} s`);
const int = (x: number): string => x.toLocaleString('en-US');

function killResumeTable(r: KillResume): string {
  const sum = r.resumed.summary as { downloaded?: number; skipped?: number; failed?: number; seconds?: number; imagesPerSecond?: number } | null;
  return table([
    ['URLs, concurrency', `${int(r.urls)}, ${r.concurrency} (${r.imageBytes} B images)`],
    ['first run killed after', `${s(r.firstRun.seconds, 1)}: ${int(r.firstRun.requestedAtKill)} requested, ${int(r.firstRun.savedAtKill)} saved (${int(r.firstRun.metadataLinesAtKill)} in metadata.jsonl)`],
    ['extra requests', `${r.requests.extra} (${r.requests.images} image requests for ${int(r.urls)} URLs; limit ${r.concurrency})`],
    ['URLs requested twice', `${r.requests.urlsRequestedTwice} (most for one URL: ${r.requests.maxPerUrl})`],
    ['resume: first request', s(r.resumed.firstRequestSeconds)],
    ['resume: first new image', s(r.resumed.firstNewImageSeconds)],
    ['resume: whole run', `${s(r.resumed.seconds, 1)}, exit ${r.resumed.exitCode}; own summary: ${sum ? `${sum.downloaded} downloaded, ${sum.skipped} skipped, ${sum.failed} failed, ${sum.seconds} s, ${sum.imagesPerSecond} img/s` : 'none'}`],
    ['checks', `${int(r.checks.imagesInFolder)} images, ${int(r.checks.metadataLines)} metadata lines, ${int(r.checks.metadataDistinctUrls)} distinct URLs, .imgdl-tmp ${r.checks.tmpLeft ? 'LEFT' : 'gone'}${r.checks.otherFiles.length ? `, other files: ${r.checks.otherFiles.join(' ')}` : ''} → ${r.checks.ok ? 'ok' : 'FAILED'}`],
    ['peak RSS', `${r.firstRun.peakRssMb} MB first run, ${r.resumed.peakRssMb} MB resumed; state ${(r.stateBytes / 2 ** 20).toFixed(1)} MB`],
  ]);
}

function openTable(r: OpenMillion): string {
  return table([
    ['URLs, concurrency', `${int(r.urls)}, ${r.concurrency}`],
    ['first run', `list in after ${s(r.firstRun.ingestedSeconds, 1)}; killed with ${int(r.firstRun.savedAtKill)} saved; state ${(r.stateBytes / 2 ** 20).toFixed(0)} MB`],
    ...r.samples.map((x, i): [string, string] => [`resume ${i + 1}`, `first request ${s(x.firstRequestSeconds)}, first new image ${s(x.firstNewImageSeconds)}, peak RSS ${x.peakRssMb} MB${x.note ? ` (${x.note})` : ''}`]),
    ['median', `first request ${s(r.firstRequestMedianSeconds)}, first new image ${s(r.firstNewImageMedianSeconds)}`],
  ]);
}

async function main(): Promise<void> {
  const started = performance.now();
  const o = readOptions();
  const tmp = mkdtempSync(join(os.tmpdir(), 'imgdl-bench-resume-'));
  cleanUpOnExit(tmp, 'bench/resume');

  const busy = await cpuBusyShare(300);
  const loadBefore = os.loadavg().map((l) => Math.round(l * 100) / 100);
  process.stdout.write(
    `bench/resume: ${os.cpus().length} CPUs, load ${loadBefore.join(' ')}${busy === null ? '' : `, ${Math.round(busy * 100)}% busy before the start`}\n`,
  );
  const [origin, startup] = await Promise.all([startOrigin(o.bytes), startupSeconds(tmp)]);
  process.stdout.write(`imgdl start-up (\`imgdl get --help\`, spawn to exit, median of 3): ${s(startup)}\n`);
  let killResume: KillResume | null = null;
  let open: OpenMillion | null = null;
  if (o.resume) {
    process.stdout.write(`kill at ~${Math.round(o.killAt * 100)}% and resume: ${int(o.urls)} URLs\n`);
    killResume = await killAndResume(origin, o, tmp);
    process.stdout.write(`${killResumeTable(killResume)}\n`);
  }
  if (o.open) {
    process.stdout.write(`open for resume: ${int(o.millionUrls)} URLs\n`);
    open = await openMillion(origin, o, tmp);
    process.stdout.write(`${openTable(open)}\n`);
  }
  killAll();

  const date = new Date();
  const report = {
    date: date.toISOString(),
    machine: { ...machine(busy), loadBefore, loadAfter: os.loadavg().map((l) => Math.round(l * 100) / 100) },
    startupSeconds: startup,
    killResume,
    openMillion: open,
    totalSeconds: round((performance.now() - started) / 1000, 1),
  };
  await mkdir(resultsDir, { recursive: true });
  const file = join(resultsDir, `resume-${date.toISOString().replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z')}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`Wrote ${join('bench', 'results', file.slice(resultsDir.length + 1))} in ${report.totalSeconds} s (load after: ${report.machine.loadAfter.join(' ')}).\n`);
  if (killResume && !killResume.checks.ok) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench/resume: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
// the 'exit' handler kills whatever is left and removes the temp dir
process.exit();
