/** One tool on one throughput workload: run it, count what it saved, judge it. */
import { mkdir, rm } from 'node:fs/promises';
import { tally } from './files.ts';
import { runMeasured, type Command, type RunResult } from './proc.ts';
import { MB, type OriginWindow, type Status, type ToolRun } from './results.ts';
import { workersOf, type RunContext, type Tool } from './tools.ts';
import type { WorkloadId } from './workloads.ts';

/** A tool that saved fewer than this share of its URLs failed, whatever its exit code. */
const MIN_SHARE = 0.99;
const STATS_TIMEOUT_MS = 10_000;

/** `GET /__stats[query]` on the origin's `port`. */
export async function originStats(port: number, query: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${port}/__stats${query}`, { signal: AbortSignal.timeout(STATS_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`origin /__stats: HTTP ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Zeroes the origin's counts just before a run; false when the origin did not answer. */
export async function resetOrigin(port: number): Promise<boolean> {
  try {
    await originStats(port, '?reset=1');
    return true;
  } catch {
    return false;
  }
}

/** The origin's counts since the reset; null when it did not answer. */
async function readOrigin(port: number): Promise<OriginWindow | null> {
  try {
    const stats = await originStats(port, '');
    return {
      images: numberOrNull(stats.images) ?? 0,
      imagesDone: numberOrNull(stats.imagesDone) ?? 0,
      maxInFlight: numberOrNull(stats.maxInFlight) ?? 0,
      firstImageAt: numberOrNull(stats.firstImageAt),
      lastImageDoneAt: numberOrNull(stats.lastImageDoneAt),
    };
  } catch {
    return null;
  }
}

/**
 * The in-run rate: images saved over the time from the origin's first image request to its last
 * image response written, so the tool's start-up, list reading and exit are left out.
 */
export function inRunRate(files: number, origin: OriginWindow | null): { seconds: number | null; imagesPerSec: number | null } {
  if (!origin || origin.firstImageAt === null || origin.lastImageDoneAt === null) return { seconds: null, imagesPerSec: null };
  const seconds = (origin.lastImageDoneAt - origin.firstImageAt) / 1000;
  if (!(seconds > 0)) return { seconds: null, imagesPerSec: null };
  return { seconds, imagesPerSec: files >= 2 ? files / seconds : null };
}

/** The last line of stdout that is a JSON object, if any. */
export function lastJson(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('{')) continue;
    try {
      const value: unknown = JSON.parse(trimmed);
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // not JSON: keep looking
    }
  }
  return undefined;
}

/** The stderr line that best says why a run failed (the last one naming an error), shortened. */
export function lastWords(result: RunResult): string {
  const lines = result.stderr
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('at ') && !l.startsWith('Node.js v'));
  const line = [...lines].reverse().find((l) => /error|cannot|not found|refused|denied/i.test(l)) ?? lines.at(-1) ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

function judge(result: RunResult, files: number, urls: number): { status: Status; reason?: string } {
  if (result.timedOut) return { status: 'timeout', reason: `killed after ${result.seconds.toFixed(0)} s` };
  if (result.exitCode !== 0) {
    const how = result.exitCode === null ? `signal ${result.signal}` : `exit ${result.exitCode}`;
    const words = lastWords(result);
    return { status: 'failed', reason: words ? `${how}: ${words}` : how };
  }
  if (files < urls * MIN_SHARE) return { status: 'failed', reason: `only ${files} of ${urls} images saved` };
  return { status: 'ok' };
}

export interface ThroughputJob {
  workload: WorkloadId;
  tool: Tool;
  urls: number;
  capped: boolean;
  ctx: RunContext;
  timeoutMs: number;
  /** A port of this workload's origin, for its `/__stats` (reset before the run, read after). */
  statsPort: number | null;
  /** Wraps the tool's command (the pinned pass runs it under `taskset`). */
  wrap?: (command: Command) => Command;
}

export async function runThroughput(job: ThroughputJob): Promise<ToolRun> {
  const { ctx } = job;
  await rm(ctx.outDir, { recursive: true, force: true });
  await rm(ctx.storageDir, { recursive: true, force: true });
  await mkdir(ctx.outDir, { recursive: true });
  await mkdir(ctx.storageDir, { recursive: true });

  const counted = job.statsPort !== null && (await resetOrigin(job.statsPort));
  const command = job.tool.command(ctx);
  const result = await runMeasured(job.wrap ? job.wrap(command) : command, job.timeoutMs, ctx.scratchDir);
  const origin = counted && job.statsPort !== null ? await readOrigin(job.statsPort) : null;
  const saved = await tally(ctx.outDir);
  const inRun = inRunRate(saved.images, origin);
  const verdict = judge(result, saved.images, job.urls);
  const seconds = result.seconds;
  const run: ToolRun = {
    workload: job.workload,
    tool: job.tool.name,
    ...verdict,
    urls: job.urls,
    capped: job.capped,
    concurrency: workersOf(job.tool, ctx.concurrency),
    files: saved.images,
    bytes: saved.imageBytes,
    seconds,
    imagesPerSec: saved.images / seconds,
    mbPerSec: saved.imageBytes / MB / seconds,
    inRunSeconds: inRun.seconds,
    inRunImagesPerSec: inRun.imagesPerSec,
    origin,
    peakRssMb: result.peakRssMb,
    cpuMsPerImage: result.cpuSeconds !== null && saved.images > 0 ? (result.cpuSeconds * 1000) / saved.images : null,
    exitCode: result.exitCode,
  };
  const reported = lastJson(result.stdout);
  if (reported) run.reported = reported;

  await rm(ctx.outDir, { recursive: true, force: true });
  await rm(ctx.storageDir, { recursive: true, force: true });
  return run;
}
