/**
 * The plugin workloads: imgdl's `run flags` / `run gallery` against plain asyncio + aiohttp scripts on the same
 * site, served by the bench origin (`lib/sites.ts`).
 *
 * - W8: flags of 194 countries (metadata.json, then the GIF), no delay: wall time, start-up included.
 * - W12: the same flags, and the gallery (20 pages x 20 images, `--max-depth 19`), on an origin that delays every
 *   answer by a uniformly random 0.5-5 s (seeded by path): wall time against the concurrency bound (`bound.ts`),
 *   time to the first image, and the most requests in flight at the origin.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { concurrencyBound } from './bound.ts';
import { tally } from './files.ts';
import { runMeasured, type Command } from './proc.ts';
import type { PluginCase, PluginRun, PluginToolName, Skipped } from './results.ts';
import { COUNTRY_CODES, GALLERY_IMAGES, GALLERY_PAGES, galleryPagePath, parentOf } from './sites.ts';
import { lastJson, lastWords, originStats, resetOrigin } from './throughput.ts';
import { imgdlCli, pythonModuleMissing, PYTHON } from './tools.ts';
import { CONCURRENCY, SMALL_BYTES, type OriginSpec } from './workloads.ts';

export type PluginWorkloadId = 'W8' | 'W12';
export const PLUGIN_WORKLOAD_IDS: PluginWorkloadId[] = ['W8', 'W12'];

/** W12's slow origin: every answer delayed by 0.5-5 s, drawn from this seed and the path. */
export const SLOW_DELAY = { minMs: 500, maxMs: 5_000, seed: 12 };
const MIN_SHARE = 0.99;

export interface PluginWorkload {
  id: PluginWorkloadId;
  case: PluginCase;
  title: string;
  origin: OriginSpec;
  expected: number;
  concurrency: number;
  /** The gallery's --max-depth: every page after the start page. */
  maxDepth?: number;
}

/** Same in quick and full runs: W8 takes seconds, and W12's time is the origin's delays (not CPU). */
export function pluginWorkloads(): PluginWorkload[] {
  const plain: OriginSpec = { bytes: SMALL_BYTES, latencyMs: 0, ports: 1 };
  const slow: OriginSpec = { ...plain, delay: SLOW_DELAY };
  const c = CONCURRENCY;
  const flags = COUNTRY_CODES.length;
  return [
    { id: 'W8', case: 'flags', title: `flags ×${flags}`, origin: plain, expected: flags, concurrency: c },
    { id: 'W12', case: 'flags', title: `flags ×${flags}, 0.5-5 s`, origin: slow, expected: flags, concurrency: c },
    {
      id: 'W12',
      case: 'gallery',
      title: `gallery ${GALLERY_PAGES}×${GALLERY_IMAGES}, 0.5-5 s`,
      origin: slow,
      expected: GALLERY_PAGES * GALLERY_IMAGES,
      concurrency: c,
      maxDepth: GALLERY_PAGES - 1,
    },
  ];
}

export interface PluginContext {
  repoRoot: string;
  benchDir: string;
  /** http://127.0.0.1:<port> */
  base: string;
  outDir: string;
  storageDir: string;
  workload: PluginWorkload;
}

export interface PluginTool {
  name: PluginToolName;
  cases: PluginCase[];
  missing: () => Promise<string | null>;
  command: (ctx: PluginContext) => Command;
}

function imgdlPlugin(ctx: PluginContext): Command {
  const w = ctx.workload;
  const plugin =
    w.case === 'flags'
      ? ['flags', '--codes', COUNTRY_CODES.join(','), '--base-url', `${ctx.base}/data/flags`]
      : ['gallery', `${ctx.base}${galleryPagePath(0)}`, '--max-depth', String(w.maxDepth ?? GALLERY_PAGES - 1)];
  return {
    cmd: process.execPath,
    args: [
      imgdlCli(ctx.repoRoot),
      'run',
      ...plugin,
      '--out',
      ctx.outDir,
      '--storage',
      ctx.storageDir,
      '--concurrency',
      String(w.concurrency),
      '--json',
    ],
    cwd: ctx.repoRoot,
  };
}

export const PLUGIN_TOOLS: PluginTool[] = [
  { name: 'imgdl', cases: ['flags', 'gallery'], missing: async () => null, command: imgdlPlugin },
  {
    name: 'flags-aiohttp',
    cases: ['flags'],
    missing: pythonModuleMissing('aiohttp', 'python3-aiohttp'),
    command: (ctx) => ({
      cmd: PYTHON,
      args: [
        join(ctx.benchDir, 'peers', 'flags_aiohttp.py'),
        `${ctx.base}/data/flags`,
        COUNTRY_CODES.join(','),
        ctx.outDir,
        String(ctx.workload.concurrency),
      ],
    }),
  },
  {
    name: 'gallery-aiohttp',
    cases: ['gallery'],
    missing: pythonModuleMissing('aiohttp', 'python3-aiohttp'),
    command: (ctx) => ({
      cmd: PYTHON,
      args: [
        join(ctx.benchDir, 'peers', 'gallery_aiohttp.py'),
        `${ctx.base}${galleryPagePath(0)}`,
        ctx.outDir,
        String(ctx.workload.concurrency),
        String(ctx.workload.maxDepth ?? GALLERY_PAGES - 1),
      ],
    }),
  },
];

export const PLUGIN_TOOL_NAMES: PluginToolName[] = PLUGIN_TOOLS.map((t) => t.name);

/** The plugin tools that can run here (by name), and why the others cannot. */
export async function detectPluginTools(names: string[]): Promise<{ available: PluginTool[]; skipped: Skipped[] }> {
  const available: PluginTool[] = [];
  const skipped: Skipped[] = [];
  for (const tool of PLUGIN_TOOLS.filter((t) => names.includes(t.name))) {
    const reason = await tool.missing();
    if (reason) skipped.push({ tool: tool.name, reason });
    else available.push(tool);
  }
  return { available, skipped };
}

type LogEntry = [string, number, number, number | null, number];

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Per second (from the first sample): the highest of column `col` in that second. */
function perSecond(timeline: [number, number, number][], col: 1 | 2): number[] {
  const out: number[] = [];
  for (const sample of timeline) {
    const second = Math.floor(sample[0] / 1000);
    out[second] = Math.max(out[second] ?? 0, sample[col]);
  }
  return Array.from(out, (v) => v ?? 0);
}

export interface PluginJob {
  workload: PluginWorkload;
  tool: PluginTool;
  ctx: PluginContext;
  statsPort: number;
  scratchDir: string;
  timeoutMs: number;
  pinned: boolean;
  round: number;
  wrap?: (command: Command) => Command;
}

export async function runPlugin(job: PluginJob): Promise<PluginRun> {
  const { ctx, workload } = job;
  for (const dir of [ctx.outDir, ctx.storageDir]) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }
  const counted = await resetOrigin(job.statsPort);
  const command = job.tool.command(ctx);
  const spawnedAt = performance.timeOrigin + performance.now();
  const result = await runMeasured(job.wrap ? job.wrap(command) : command, job.timeoutMs, job.scratchDir);
  const stats = counted ? await originStats(job.statsPort, '?log=1').catch(() => null) : null;
  const saved = await tally(ctx.outDir);

  const log = (Array.isArray(stats?.log) ? stats.log : []) as LogEntry[];
  const timeline = (Array.isArray(stats?.timeline) ? stats.timeline : []) as [number, number, number][];
  const delays = new Map<string, number>();
  // The site's own requests make the bound; others (robots.txt: imgdl reads it before a site's first page) are counted.
  const site = log.filter((e) => parentOf(e[0]) !== undefined);
  for (const [path, , delay, , status] of site) if (status === 200) delays.set(path, delay);
  const others = log.filter((e) => parentOf(e[0]) === undefined).map((e) => `${e[0]} ${e[4]}${e[2] > 0 ? ` after ${(e[2] / 1000).toFixed(2)} s` : ''}`);
  const bound = workload.origin.delay ? concurrencyBound(delays, workload.concurrency, (path) => /\.(gif|png)$/.test(path)) : null;
  const firstAt = log.length > 0 ? Math.min(...log.map((e) => e[1])) : null;
  const lastDone = log.reduce((m, e) => Math.max(m, e[3] ?? 0), 0);
  const firstImageDoneAt = num(stats?.firstImageDoneAt);

  let status: PluginRun['status'] = 'ok';
  let reason: string | undefined;
  if (result.timedOut) [status, reason] = ['timeout', `killed after ${result.seconds.toFixed(0)} s`];
  else if (result.exitCode !== 0) {
    const words = lastWords(result);
    const how = result.exitCode === null ? `signal ${result.signal}` : `exit ${result.exitCode}`;
    [status, reason] = ['failed', words ? `${how}: ${words}` : how];
  } else if (saved.images < workload.expected * MIN_SHARE) {
    [status, reason] = ['failed', `only ${saved.images} of ${workload.expected} images saved`];
  }
  const run: PluginRun = {
    workload: workload.id,
    case: workload.case,
    tool: job.tool.name,
    status,
    ...(reason ? { reason } : {}),
    pinned: job.pinned,
    round: job.round,
    concurrency: workload.concurrency,
    expected: workload.expected,
    files: saved.images,
    seconds: result.seconds,
    firstImageSeconds: firstImageDoneAt === null ? null : (firstImageDoneAt - spawnedAt) / 1000,
    inRunSeconds: firstAt !== null && lastDone > firstAt ? (lastDone - firstAt) / 1000 : null,
    requests: site.length,
    otherRequests: others,
    maxRequestsInFlight: num(stats?.maxRequestsInFlight) ?? 0,
    connections: num(stats?.connections) ?? 0,
    maxOpenConnections: num(stats?.maxOpenConnections) ?? 0,
    inFlightPerSecond: perSecond(timeline, 2),
    openPerSecond: perSecond(timeline, 1),
    bound,
    vsBound: bound && bound.simulatedSeconds > 0 ? result.seconds / bound.simulatedSeconds : null,
    peakRssMb: result.peakRssMb,
    cpuSeconds: result.cpuSeconds,
    exitCode: result.exitCode,
  };
  const reported = lastJson(result.stdout);
  if (reported) run.reported = reported;
  await rm(ctx.outDir, { recursive: true, force: true });
  await rm(ctx.storageDir, { recursive: true, force: true });
  return run;
}

/** One progress line per plugin run. */
export function pluginProgress(run: PluginRun): string {
  const label = `${run.workload} ${run.case}`.padEnd(11);
  const head = `  ${label} ${run.tool.padEnd(16)} ${run.seconds.toFixed(2).padStart(6)} s`;
  if (run.status !== 'ok') return `${head}  ${run.status}${run.reason ? `: ${run.reason}` : ''}`;
  const first = run.firstImageSeconds === null ? '' : `, first image ${run.firstImageSeconds.toFixed(2)} s`;
  const bound = run.bound ? `, bound ${run.bound.simulatedSeconds.toFixed(1)} s (×${run.vsBound?.toFixed(2)})` : '';
  const other = run.otherRequests.length > 0 ? `; also ${run.otherRequests.slice(0, 3).join(', ')}${run.otherRequests.length > 3 ? ', ...' : ''}` : '';
  return `${head}  ${run.files}/${run.expected} images${first}${bound}, ${run.maxRequestsInFlight} in flight at most, ${run.connections} connections${other}`;
}
