/**
 * imgdl's benchmark: imgdl and its peers on a local origin, one table, one JSON, one SVG.
 *
 *   node --import tsx bench/run.ts [--quick] [--only W1,W2] [--tools imgdl,undici-loop,...]
 *
 * Self-contained and bounded: every tool run has a timeout, the origins and temp dirs are
 * removed at the end, on an error and on Ctrl-C. `bash bench/setup.sh` installs the peers.
 */
import { mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuBusyShare, machine } from './lib/machine.ts';
import { cleanUpOnExit, killAll, startService } from './lib/proc.ts';
import type { BenchReport, ScaleRun, Skipped, ToolRun } from './lib/results.ts';
import { runScale } from './lib/scale.ts';
import { budgetVeto, planJobs, type Job } from './lib/schedule.ts';
import { renderSvg } from './lib/svg.ts';
import { scaleLines, targetLines, throughputTable } from './lib/table.ts';
import { checkTargets } from './lib/targets.ts';
import { runThroughput } from './lib/throughput.ts';
import { TOOL_NAMES, TOOLS, workersOf, type RunContext, type Tool, type ToolName } from './lib/tools.ts';
import { CONCURRENCY, originKey, workloads, writeUrlList, type OriginSpec, type Workload, type WorkloadId } from './lib/workloads.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = dirname(benchDir);
const resultsDir = join(benchDir, 'results');

interface Options {
  quick: boolean;
  only: WorkloadId[];
  tools: ToolName[];
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const USAGE = `Usage: node --import tsx bench/run.ts [--quick] [--only W1,W2,...] [--tools imgdl,aria2c,...]

  --quick        small counts, done in about a minute (runs beyond the essential ones stop at a time budget)
  --only LIST    workloads: W1 many small, W2 latency (50 ms), W3 large, W4 scale (imgdl only), W5 many hosts,
                 W6 W1 ×10 (imgdl only: does the CPU cost per image grow with the run?),
                 W7 latency ×512 (W2 at concurrency 512 instead of ${CONCURRENCY})
  --tools LIST   ${TOOL_NAMES.join(', ')}

Each run gets two rates: images/s over the wall time from spawn to exit (start-up included), and
in-run img/s over the origin's first image request to its last image response (W2 and W7 are judged on it).
Writes bench/results/latest.json and latest.svg. bash bench/setup.sh installs the Debian peers.
IMGDL_BENCH_CLI=path/to/imgdl.js measures another build of the CLI.
`;

function readOptions(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        tools: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    fail(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const ids = workloads(false).map((w) => w.id);
  const only = values.only ? values.only.split(',').map((s) => s.trim().toUpperCase()) : ids;
  for (const id of only) if (!ids.includes(id as WorkloadId)) fail(`unknown workload ${id} (expected ${ids.join(', ')})`);
  const tools = values.tools ? values.tools.split(',').map((s) => s.trim()) : TOOL_NAMES;
  for (const t of tools) if (!TOOL_NAMES.includes(t as ToolName)) fail(`unknown tool ${t} (expected ${TOOL_NAMES.join(', ')})`);
  return { quick: values.quick ?? false, only: only as WorkloadId[], tools: tools as ToolName[] };
}

async function detectTools(names: ToolName[]): Promise<{ available: Tool[]; skipped: Skipped[] }> {
  const available: Tool[] = [];
  const skipped: Skipped[] = [];
  for (const tool of TOOLS.filter((t) => names.includes(t.name))) {
    const reason = await tool.missing(repoRoot);
    if (reason) skipped.push({ tool: tool.name, reason });
    else available.push(tool);
  }
  return { available, skipped };
}

/** Starts one origin process per distinct origin spec; returns the ports of each. */
async function startOrigins(specs: OriginSpec[]): Promise<Map<string, number[]>> {
  const unique = new Map(specs.map((spec) => [originKey(spec), spec]));
  const started = await Promise.all(
    [...unique.entries()].map(async ([key, spec]) => {
      const { firstLine } = await startService(
        {
          cmd: process.execPath,
          args: [
            '--import',
            'tsx',
            join(benchDir, 'origin.ts'),
            '--bytes',
            String(spec.bytes),
            '--latency',
            String(spec.latencyMs),
            '--ports',
            String(spec.ports),
          ],
          cwd: repoRoot,
        },
        20_000,
      );
      const { ports } = JSON.parse(firstLine) as { ports: number[] };
      return [key, ports] as const;
    }),
  );
  return new Map(started);
}

function progress(run: ToolRun, latencyMs: number): void {
  // Without latency the origin answers at once: the most in flight only means something with it.
  const inFlight = run.origin && latencyMs > 0 ? `, ${run.origin.maxInFlight} in flight at most` : '';
  const inRun = run.inRunImagesPerSec === null ? '' : ` (in-run ${Math.round(run.inRunImagesPerSec)}${inFlight})`;
  const what =
    run.status === 'ok'
      ? `${Math.round(run.imagesPerSec)} images/s${inRun}, ${run.mbPerSec.toFixed(1)} MB/s, ${Math.round(run.peakRssMb)} MB RSS`
      : `${run.status}${run.reason ? `: ${run.reason}` : ''}`;
  process.stdout.write(`  ${run.workload} ${run.tool.padEnd(20)} ${run.seconds.toFixed(2).padStart(6)} s  ${what}\n`);
}

/** "W2 1,000", with the concurrency when it is not the default: "W7 2,000 at -c 512". */
function describeWorkload(w: Workload): string {
  const at = w.concurrency === CONCURRENCY ? '' : ` at -c ${w.concurrency}`;
  return `${w.id} ${w.count.toLocaleString('en-US')}${at}`;
}

interface Plan {
  options: Options;
  tmp: string;
  tools: Tool[];
  origins: Map<string, number[]>;
}

function context(plan: Plan, workload: Workload, list: string, label: string): RunContext {
  return {
    repoRoot,
    benchDir,
    list,
    outDir: join(plan.tmp, 'out', label),
    storageDir: join(plan.tmp, 'state', label),
    scratchDir: plan.tmp,
    quick: plan.options.quick,
    concurrency: workload.concurrency,
  };
}

/** Writes each workload's URL list, and a shorter one for each capped tool. */
async function writeLists(plan: Plan, jobs: Job[]): Promise<Map<string, string>> {
  const lists = new Map<string, string>();
  for (const job of jobs) {
    const key = `${job.workload.id}/${job.urls}`;
    if (lists.has(key)) continue;
    const path = join(plan.tmp, `${job.workload.id}-${job.urls}.txt`);
    await writeUrlList(path, plan.origins.get(originKey(job.workload.origin)) ?? [], job.urls);
    lists.set(key, path);
  }
  return lists;
}

function skippedRun(job: Job, reason: string): ToolRun {
  return {
    workload: job.workload.id,
    tool: job.tool.name,
    status: 'skipped',
    reason,
    urls: job.urls,
    capped: job.capped,
    concurrency: workersOf(job.tool, job.workload.concurrency),
    files: 0,
    bytes: 0,
    seconds: 0,
    imagesPerSec: 0,
    mbPerSec: 0,
    inRunSeconds: null,
    inRunImagesPerSec: null,
    origin: null,
    peakRssMb: 0,
    cpuMsPerImage: null,
    exitCode: null,
  };
}

function skippedScale(job: Job, reason: string): ScaleRun {
  return {
    workload: 'W4',
    tool: 'imgdl',
    status: 'skipped',
    reason,
    urls: job.urls,
    windowSeconds: 0,
    firstImageSeconds: null,
    imagesInWindow: 0,
    stateBytes: 0,
    peakRssMb: 0,
    sigintExitSeconds: null,
    resumeOpenSeconds: null,
  };
}

async function runThroughputJob(plan: Plan, job: Job, list: string): Promise<ToolRun> {
  const run = await runThroughput({
    workload: job.workload.id,
    tool: job.tool,
    urls: job.urls,
    capped: job.capped,
    ctx: context(plan, job.workload, list, `${job.workload.id}-${job.tool.name}`),
    // The stats go to one of the workload's own ports (its origin serves them on every port).
    statsPort: plan.origins.get(originKey(job.workload.origin))?.[0] ?? null,
    // At least 300 images/s before a run counts as hung (W6's 200,000 URLs need more than the default).
    timeoutMs: Math.max(plan.options.quick ? 30_000 : 180_000, (job.urls / 300) * 1000),
  });
  progress(run, job.workload.origin.latencyMs);
  return run;
}

async function runScaleJob(plan: Plan, job: Job, list: string): Promise<ScaleRun> {
  const run = await runScale({
    command: job.tool.command,
    ctx: context(plan, job.workload, list, `${job.workload.id}-${job.tool.name}`),
    urls: job.urls,
    windowMs: plan.options.quick ? 3_000 : 20_000,
    imageLimitMs: plan.options.quick ? 15_000 : 60_000,
  });
  const first = run.firstImageSeconds?.toFixed(2) ?? 'n/a';
  const resume = run.resumeOpenSeconds?.toFixed(2) ?? 'n/a';
  process.stdout.write(
    `  W4 imgdl ${run.status}${run.reason ? `: ${run.reason}` : ''}; first image ${first} s, resume ${resume} s\n`,
  );
  return run;
}

/** Runs every job in plan order; returns the throughput runs in table order, and W4's run. */
async function runJobs(plan: Plan, jobs: Job[], startedAt: number): Promise<{ runs: ToolRun[]; scale: ScaleRun | null }> {
  const lists = await writeLists(plan, jobs);
  const runs: ToolRun[] = [];
  let scale: ScaleRun | null = null;
  for (const job of jobs) {
    const list = lists.get(`${job.workload.id}/${job.urls}`) as string;
    const veto = budgetVeto(job, plan.options.quick, (performance.now() - startedAt) / 1000);
    if (veto) {
      if (job.kind === 'scale') scale = skippedScale(job, veto);
      else runs.push(skippedRun(job, veto));
    } else if (job.kind === 'scale') scale = await runScaleJob(plan, job, list);
    else runs.push(await runThroughputJob(plan, job, list));
  }
  const rank = (run: ToolRun): number => Number(run.workload.slice(1)) * 100 + TOOL_NAMES.indexOf(run.tool);
  runs.sort((a, b) => rank(a) - rank(b));
  return { runs, scale };
}

async function writeResults(report: BenchReport): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(join(resultsDir, 'latest.svg'), renderSvg(report));
}

/** What the two rate columns measure, and the workloads that do not run at the default concurrency. */
function tableNotes(report: BenchReport): string {
  const lines = [
    'images/s: wall time from spawn to exit (start-up included); in-run img/s: from the origin\'s first image',
    'request to its last image response written (W2 and W7 targets use it).',
  ];
  for (const w of report.workloads.filter((w) => w.concurrency !== report.concurrency)) {
    const fixed = TOOLS.filter((t) => t.fixedWorkers !== undefined && report.runs.some((r) => r.workload === w.id && r.tool === t.name));
    const keep = fixed.map((t) => `${t.name} keeps ${t.fixedWorkers}`).join(', ');
    lines.push(`${w.id}: every tool at concurrency ${w.concurrency}${keep ? ` (${keep})` : ''}; other workloads: ${report.concurrency}.`);
  }
  return lines.join('\n');
}

function printReport(report: BenchReport): void {
  const out: string[] = [''];
  if (report.runs.length > 0) out.push(throughputTable(report.runs), tableNotes(report), '');
  if (report.scale) out.push(scaleLines(report.scale), '');
  out.push(
    `Targets${report.quick ? ' (quick run: small counts, process start-up inside the wall-clock rates; indicative only)' : ''}:`,
    targetLines(report.targets),
    '',
    `Wrote ${join('bench', 'results', 'latest.json')} and ${join('bench', 'results', 'latest.svg')} in ${report.totalSeconds.toFixed(1)} s.`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const options = readOptions();
  const tmp = mkdtempSync(join(os.tmpdir(), 'imgdl-bench-'));
  cleanUpOnExit(tmp, 'bench');

  const busy = await cpuBusyShare(300);
  if (busy !== null && busy > 0.25) {
    process.stdout.write(
      `note: ${Math.round(busy * 100)}% of the CPUs were busy with other processes just before the start: numbers will be low and noisy\n`,
    );
  }
  const selected = workloads(options.quick).filter((w) => options.only.includes(w.id));
  const [{ available, skipped }, origins] = await Promise.all([
    detectTools(options.tools),
    startOrigins(selected.map((w) => w.origin)),
  ]);
  for (const s of skipped) process.stdout.write(`skipped ${s.tool}: ${s.reason}\n`);
  if (skipped.length > 0) process.stdout.write('  (bash bench/setup.sh installs every Debian peer)\n');
  const plan: Plan = { options, tmp, tools: available, origins };
  process.stdout.write(
    `imgdl bench${options.quick ? ' --quick' : ''}: ${selected.map(describeWorkload).join(', ')}; ` +
      `tools: ${available.map((t) => t.name).join(', ')}\n`,
  );

  const { runs, scale } = await runJobs(plan, planJobs(selected, available, options.quick), started);

  killAll();
  const report: BenchReport = {
    date: new Date().toISOString(),
    quick: options.quick,
    machine: machine(busy),
    units: {
      mb: 'MB = 2^20 bytes of image files saved',
      rss: 'MB = 2^20 bytes, peak of the tool process tree',
      inRun: "images saved / seconds from the origin's first image request to its last image response written",
    },
    concurrency: CONCURRENCY,
    workloads: selected.map((w) => ({
      id: w.id,
      title: w.title,
      count: w.count,
      bytesPerImage: w.origin.bytes,
      latencyMs: w.origin.latencyMs,
      ports: w.origin.ports,
      concurrency: w.concurrency,
    })),
    runs,
    scale,
    skipped,
    targets: checkTargets(runs, scale),
    totalSeconds: (performance.now() - started) / 1000,
  };
  await writeResults(report);
  printReport(report);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
// the 'exit' handler kills whatever is left and removes the temp dir
process.exit();
