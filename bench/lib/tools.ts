/** The tools compared: imgdl and its peers, how to find them, and how to run them. */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import type { Command } from './proc.ts';
import type { WorkloadId } from './workloads.ts';

export const PYTHON = '/usr/bin/python3';
/** requests-threads' pool size (seed 004's), whatever the workload's concurrency. */
const THREADS = 20;

export type ToolName =
  | 'imgdl'
  | 'undici-loop'
  | 'aiohttp-gather'
  | 'requests-threads'
  | 'requests-sequential'
  | 'aria2c'
  | 'wget2';

export interface RunContext {
  repoRoot: string;
  benchDir: string;
  list: string;
  outDir: string;
  storageDir: string;
  /** The run's temp dir, for small files of the harness's own. */
  scratchDir: string;
  quick: boolean;
  /** Requests in flight the workload asks for (64, or 512 on W7); each command passes it on. */
  concurrency: number;
}

export interface Nominal {
  /** Small images per second with no latency. */
  imagesPerSec: number;
  /** Process start-up, seconds. */
  startupS: number;
}

export interface Tool {
  name: ToolName;
  /** Workloads it runs on; all throughput workloads when absent. */
  only?: WorkloadId[];
  /** Runs only the first N URLs of the list (no extrapolation: the count is reported). */
  cap?: (quick: boolean) => number;
  /** Rough speed on this kind of machine, for the quick run's time budget (not a result). */
  nominal: Nominal;
  /** Requests in flight by design, whatever the workload's concurrency; absent: `ctx.concurrency`. */
  fixedWorkers?: number;
  /** Why it cannot run here, with the install command; null when it can. */
  missing: (repoRoot: string) => Promise<string | null>;
  command: (ctx: RunContext) => Command;
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function onPath(binary: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && (await executable(join(dir, binary)))) return true;
  }
  return false;
}

function pythonHas(module: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(PYTHON, ['-c', `import ${module}`], { timeout: 10_000 }, (error) => resolve(error === null));
  });
}

function resolvable(repoRoot: string, specifier: string): boolean {
  try {
    createRequire(join(repoRoot, 'package.json')).resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

function nodeTs(ctx: RunContext, script: string, args: string[]): Command {
  return { cmd: process.execPath, args: ['--import', 'tsx', script, ...args], cwd: ctx.repoRoot };
}

export function pythonModuleMissing(module: string, pkg: string) {
  return async (): Promise<string | null> => {
    if (!(await executable(PYTHON))) return `${PYTHON} not found (apt-get install python3)`;
    return (await pythonHas(module)) ? null : `python module ${module} not installed (apt-get install ${pkg})`;
  };
}

function binaryMissing(binary: string, pkg: string) {
  return async (): Promise<string | null> =>
    (await onPath(binary)) ? null : `not installed (apt-get install ${pkg})`;
}

/** The CLI under test: the repo's own, or another build named by IMGDL_BENCH_CLI. */
export function imgdlCli(repoRoot: string): string {
  return process.env.IMGDL_BENCH_CLI ?? join(repoRoot, 'bin', 'imgdl.js');
}

/** Requests a tool has in flight at once on a workload of the given concurrency. */
export function workersOf(tool: Tool, concurrency: number): number {
  return tool.fixedWorkers ?? concurrency;
}

export const TOOLS: Tool[] = [
  {
    name: 'imgdl',
    nominal: { imagesPerSec: 2000, startupS: 0.6 },
    // never skipped: until the CLI exists its run fails, and that is reported
    missing: async () => null,
    command: (ctx) => ({
      cmd: process.execPath,
      args: [
        imgdlCli(ctx.repoRoot),
        'get',
        ctx.list,
        '--out',
        ctx.outDir,
        '--concurrency',
        String(ctx.concurrency),
        '--json',
        '--storage',
        ctx.storageDir,
      ],
      cwd: ctx.repoRoot,
    }),
  },
  {
    name: 'undici-loop',
    nominal: { imagesPerSec: 2000, startupS: 0.6 },
    missing: async (repoRoot) => {
      for (const dep of ['undici', 'tsx']) {
        if (!resolvable(repoRoot, dep)) return `${dep} not in node_modules (npm install)`;
      }
      return null;
    },
    command: (ctx) =>
      nodeTs(ctx, join(ctx.benchDir, 'peers', 'undici-loop.ts'), [ctx.list, ctx.outDir, String(ctx.concurrency)]),
  },
  {
    name: 'aiohttp-gather',
    nominal: { imagesPerSec: 1500, startupS: 0.4 },
    missing: pythonModuleMissing('aiohttp', 'python3-aiohttp'),
    command: (ctx) => ({
      cmd: PYTHON,
      args: [join(ctx.benchDir, 'peers', 'aiohttp_gather.py'), ctx.list, ctx.outDir, String(ctx.concurrency)],
    }),
  },
  {
    name: 'requests-threads',
    nominal: { imagesPerSec: 550, startupS: 0.3 },
    fixedWorkers: THREADS,
    missing: pythonModuleMissing('requests', 'python3-requests'),
    command: (ctx) => ({
      cmd: PYTHON,
      args: [join(ctx.benchDir, 'peers', 'requests_threads.py'), ctx.list, ctx.outDir, String(THREADS)],
    }),
  },
  {
    name: 'requests-sequential',
    nominal: { imagesPerSec: 200, startupS: 0.3 },
    fixedWorkers: 1,
    only: ['W2'],
    cap: (quick) => (quick ? 200 : 1_000),
    missing: pythonModuleMissing('requests', 'python3-requests'),
    command: (ctx) => ({
      cmd: PYTHON,
      args: [join(ctx.benchDir, 'peers', 'requests_sequential.py'), ctx.list, ctx.outDir],
    }),
  },
  {
    name: 'aria2c',
    nominal: { imagesPerSec: 350, startupS: 0.1 },
    missing: binaryMissing('aria2c', 'aria2'),
    command: (ctx) => ({
      cmd: 'aria2c',
      args: [
        '--input-file',
        ctx.list,
        '--max-concurrent-downloads',
        String(ctx.concurrency),
        '--max-connection-per-server',
        '1',
        '--dir',
        ctx.outDir,
        '--auto-file-renaming=false',
        '--allow-overwrite=true',
        '--console-log-level=warn',
        '--summary-interval=0',
        '--file-allocation=none',
        '--quiet=true',
      ],
    }),
  },
  {
    name: 'wget2',
    nominal: { imagesPerSec: 1200, startupS: 0.1 },
    missing: binaryMissing('wget2', 'wget2'),
    command: (ctx) => ({
      cmd: 'wget2',
      args: [
        `--max-threads=${ctx.concurrency}`,
        '--input-file',
        ctx.list,
        '--directory-prefix',
        ctx.outDir,
        '--quiet',
        '--no-robots',
        '--no-hsts',
        '--no-netrc',
        '--no-config',
        '--tries=1',
        '--timeout=30',
      ],
    }),
  },
];

export const TOOL_NAMES: ToolName[] = TOOLS.map((t) => t.name);
