/**
 * W9, politeness: a limiting host (at most 4 image requests in flight, 429 beyond, with or without Retry-After: 1)
 * and a fast host in one list, 1,000 images each, interleaved. imgdl at its default settings against the undici loop
 * and aiohttp + gather at their fixed concurrency (64). Per tool: wall time, images saved, failures, 429s received,
 * and when each host's share ended (from the origins' first image request). Rounds alternate the tools; the table
 * shows medians (min-max) over them.
 *
 * The limiting host delays each answer by LATENCY_MS, so its best possible time at 4 in flight is
 * 1,000 / 4 × LATENCY_MS; the fast host answers at once.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runMeasured, startService, type Command } from './proc.ts';
import type { Skipped } from './results.ts';
import { lastJson, originStats, resetOrigin } from './throughput.ts';
import { imgdlCli, pythonModuleMissing, PYTHON } from './tools.ts';
import { CONCURRENCY, SMALL_BYTES } from './workloads.ts';

export const W9_IMAGES = 1_000;
export const W9_CAPACITY = 4;
export const W9_LATENCY_MS = 20;
const VARIANTS = [
  { id: '429', retryAfter: null },
  { id: '429+Retry-After:1', retryAfter: '1' },
] as const;

export type PoliteToolName = 'imgdl' | 'undici-loop' | 'aiohttp-gather';

export interface PoliteRun {
  variant: string;
  tool: PoliteToolName;
  round: number;
  status: 'ok' | 'timeout' | 'failed';
  reason?: string;
  seconds: number;
  saved: number;
  failed: number;
  /** 429s the limiting host sent this tool. */
  rejected: number;
  /** From the limiting host's first image request to its last image answered in full. */
  limitedSeconds: number | null;
  /** The same for the fast host. */
  fastSeconds: number | null;
}

interface PoliteTool {
  name: PoliteToolName;
  missing: () => Promise<string | null>;
  command: (ctx: { repoRoot: string; benchDir: string; list: string; outDir: string; storageDir: string }) => Command;
}

const TOOLS: PoliteTool[] = [
  {
    name: 'imgdl',
    missing: async () => null,
    // Default settings: no --per-host, no --concurrency.
    command: (ctx) => ({ cmd: process.execPath, args: [imgdlCli(ctx.repoRoot), 'get', ctx.list, '--out', ctx.outDir, '--storage', ctx.storageDir, '--json', '--quiet'], cwd: ctx.repoRoot }),
  },
  {
    name: 'undici-loop',
    missing: async () => null,
    command: (ctx) => ({ cmd: process.execPath, args: ['--import', 'tsx', join(ctx.benchDir, 'peers', 'undici-loop.ts'), ctx.list, ctx.outDir, String(CONCURRENCY)], cwd: ctx.repoRoot }),
  },
  {
    name: 'aiohttp-gather',
    missing: pythonModuleMissing('aiohttp', 'python3-aiohttp'),
    command: (ctx) => ({ cmd: PYTHON, args: [join(ctx.benchDir, 'peers', 'aiohttp_gather.py'), ctx.list, ctx.outDir, String(CONCURRENCY)] }),
  },
];

export const POLITE_TOOL_NAMES: PoliteToolName[] = TOOLS.map((t) => t.name);

async function startOrigin(benchDir: string, repoRoot: string, extra: string[]): Promise<number> {
  const command = { cmd: process.execPath, args: ['--import', 'tsx', join(benchDir, 'origin.ts'), '--bytes', String(SMALL_BYTES), ...extra], cwd: repoRoot };
  const { firstLine } = await startService(command, 20_000);
  return (JSON.parse(firstLine) as { ports: number[] }).ports[0]!;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function span(stats: Record<string, unknown>): number | null {
  const first = num(stats['firstImageAt']);
  const last = num(stats['lastImageDoneAt']);
  return first !== null && last !== null ? (last - first) / 1000 : null;
}

/** Runs W9: every variant, `rounds` rounds each, the tools alternating within a round. */
export async function runPolite(opts: {
  repoRoot: string;
  benchDir: string;
  tmp: string;
  rounds: number;
  tools: string[];
  progress: (line: string) => void;
}): Promise<{ runs: PoliteRun[]; skipped: Skipped[] }> {
  const available: PoliteTool[] = [];
  const skipped: Skipped[] = [];
  for (const tool of TOOLS.filter((t) => opts.tools.includes(t.name))) {
    const reason = await tool.missing();
    if (reason) skipped.push({ tool: tool.name, reason });
    else available.push(tool);
  }
  for (const s of skipped) opts.progress(`  W9 skipped ${s.tool}: ${s.reason}`);
  const runs: PoliteRun[] = [];
  const fastPort = await startOrigin(opts.benchDir, opts.repoRoot, []);
  for (const variant of VARIANTS) {
    const limitedPort = await startOrigin(opts.benchDir, opts.repoRoot, [
      '--latency', String(W9_LATENCY_MS), '--capacity', String(W9_CAPACITY), ...(variant.retryAfter === null ? [] : ['--retry-after', variant.retryAfter]),
    ]);
    // Interleaved: one of each host in turn (the peers name files by the URL's last segment: the list's order keeps
    // them apart by a prefix of the host).
    const lines: string[] = [];
    for (let i = 0; i < W9_IMAGES; i++) lines.push(`http://127.0.0.1:${limitedPort}/img/${i}.png`, `http://127.0.0.1:${fastPort}/img/${W9_IMAGES + i}.png`);
    const list = join(opts.tmp, `w9-${variant.retryAfter ?? 'none'}.txt`);
    await writeFile(list, `${lines.join('\n')}\n`);
    for (let round = 1; round <= opts.rounds; round++) {
      for (const tool of available) {
        const label = `w9-${tool.name}`;
        const outDir = join(opts.tmp, 'out', label);
        const storageDir = join(opts.tmp, 'state', label);
        for (const dir of [outDir, storageDir]) {
          await rm(dir, { recursive: true, force: true });
          await mkdir(dir, { recursive: true });
        }
        await Promise.all([resetOrigin(limitedPort), resetOrigin(fastPort)]);
        const result = await runMeasured(tool.command({ repoRoot: opts.repoRoot, benchDir: opts.benchDir, list, outDir, storageDir }), 120_000, opts.tmp);
        const [limited, fast] = await Promise.all([originStats(limitedPort, ''), originStats(fastPort, '')]);
        const reported = lastJson(result.stdout) ?? {};
        const saved = num(reported['downloaded']) ?? 0;
        const failed = num(reported['failed']) ?? 2 * W9_IMAGES - saved;
        const run: PoliteRun = {
          variant: variant.id,
          tool: tool.name,
          round,
          status: result.timedOut ? 'timeout' : saved + failed === 2 * W9_IMAGES ? 'ok' : 'failed',
          ...(result.timedOut ? { reason: `killed after ${result.seconds.toFixed(0)} s` } : saved + failed !== 2 * W9_IMAGES ? { reason: `exit ${result.exitCode}: no summary` } : {}),
          seconds: result.seconds,
          saved,
          failed,
          rejected: num(limited['rejected']) ?? 0,
          limitedSeconds: span(limited),
          fastSeconds: span(fast),
        };
        runs.push(run);
        opts.progress(
          `  W9 ${variant.id.padEnd(17)} ${tool.name.padEnd(15)} ${run.seconds.toFixed(2).padStart(6)} s  ${run.saved} saved, ${run.failed} failed, ` +
            `${run.rejected} × 429; limited host ${run.limitedSeconds?.toFixed(2) ?? '-'} s, fast host ${run.fastSeconds?.toFixed(2) ?? '-'} s${run.reason ? ` (${run.status}: ${run.reason})` : ''}`,
        );
        await rm(outDir, { recursive: true, force: true });
        await rm(storageDir, { recursive: true, force: true });
      }
    }
  }
  return { runs, skipped };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function cell(values: number[], digits: number): string {
  if (values.length === 0) return '-';
  const m = median(values).toFixed(digits);
  if (values.length === 1) return m;
  return `${m} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`;
}

/** The W9 table: per variant and tool, medians (min-max) over the rounds. */
export function politeTable(runs: PoliteRun[]): string {
  const head = ['variant', 'tool', 'rounds', 'wall s', 'saved', 'failed', '429s', 'limited host s', 'fast host s'];
  const rows: string[][] = [head];
  const best = (W9_IMAGES / W9_CAPACITY) * (W9_LATENCY_MS / 1000);
  for (const variant of [...new Set(runs.map((r) => r.variant))]) {
    for (const tool of [...new Set(runs.map((r) => r.tool))]) {
      const mine = runs.filter((r) => r.variant === variant && r.tool === tool);
      if (mine.length === 0) continue;
      const of = (f: (r: PoliteRun) => number | null) => mine.map(f).filter((v): v is number => v !== null);
      rows.push([variant, tool, String(mine.length), cell(of((r) => r.seconds), 2), cell(of((r) => r.saved), 0), cell(of((r) => r.failed), 0), cell(of((r) => r.rejected), 0), cell(of((r) => r.limitedSeconds), 2), cell(of((r) => r.fastSeconds), 2)]);
    }
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return [
    `W9: a limiting host (${W9_CAPACITY} in flight, 429 beyond, ${W9_LATENCY_MS} ms per answer) and a fast host, ${W9_IMAGES} images each, interleaved;`,
    `imgdl at default settings, the peers at concurrency ${CONCURRENCY}. Medians (min-max) over the rounds. The limiting host's best`,
    `possible time at ${W9_CAPACITY} in flight: ${best.toFixed(2)} s. Host times: from its first image request to its last image answered in full.`,
    ...lines,
  ].join('\n');
}
