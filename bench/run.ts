/**
 * imgdl's benchmark: imgdl and its peers on a local origin, one table, one JSON, one SVG.
 *
 *   node --import tsx bench/run.ts [--quick] [--only W1,W2] [--tools imgdl,undici-loop,...] [--pin [--repeat N]]
 *   (W9, politeness: bench/lib/polite.ts)
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
import { pinned, pinning, type Pinning } from './lib/pin.ts';
import {
  detectPluginTools,
  PLUGIN_TOOL_NAMES,
  PLUGIN_WORKLOAD_IDS,
  pluginProgress,
  pluginWorkloads,
  runPlugin,
  type PluginTool,
  type PluginWorkload,
  type PluginWorkloadId,
} from './lib/plugins.ts';
import type { BenchReport, PluginRun, ScaleRun, Skipped, ToolRun } from './lib/results.ts';
import { politeTable, POLITE_TOOL_NAMES, runPolite } from './lib/polite.ts';
import { runScale } from './lib/scale.ts';
import { runStartup, startupTable, startupTargets, type StartupRun } from './lib/startup.ts';
import { budgetVeto, planJobs, type Job } from './lib/schedule.ts';
import { renderSvg } from './lib/svg.ts';
import { pinnedTable, pluginTable, pluginTimelines, scaleLines, targetLines, throughputTable } from './lib/table.ts';
import { checkTargets, medianPluginRuns, medianRuns } from './lib/targets.ts';
import { runThroughput } from './lib/throughput.ts';
import { TOOL_NAMES, TOOLS, workersOf, type RunContext, type Tool, type ToolName } from './lib/tools.ts';
import {
  CONCURRENCY,
  originArgs,
  originKey,
  SMALL_BYTES,
  workloads,
  writeUrlList,
  type OriginSpec,
  type Workload,
  type WorkloadId,
} from './lib/workloads.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = dirname(benchDir);
const resultsDir = join(benchDir, 'results');

interface Options {
  quick: boolean;
  only: (WorkloadId | PluginWorkloadId | 'W0' | 'W9')[];
  tools: string[];
  pin: boolean;
  /** Rounds of the pinned pass; null: the default (quick 3, full 5; W12 at most 2 / 3). */
  repeat: number | null;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const USAGE = `Usage: node --import tsx bench/run.ts [--quick] [--only W1,W2,...] [--tools imgdl,aria2c,...] [--pin [--repeat N]]

  --quick        small counts, done in about a minute (runs beyond the essential ones stop at a time budget)
  --only LIST    workloads: W0 start-up (one image, spawn to exit), W1 many small, W2 latency (50 ms), W3 large, W4 scale (imgdl only), W5 many hosts,
                 W6 W1 ×10 (imgdl only: does the CPU cost per image grow with the run?),
                 W7 latency ×512 (W2 at concurrency 512 instead of ${CONCURRENCY}),
                 W8 flags plugin (194 countries) against an asyncio script,
                 W12 flags and gallery plugins on an origin delaying each answer 0.5-5 s, against the concurrency bound,
                 W9 a limiting host (4 in flight, 429 beyond) and a fast host, 1,000 images each (imgdl, undici loop, aiohttp)
  --tools LIST   ${[...new Set([...TOOL_NAMES, ...PLUGIN_TOOL_NAMES])].join(', ')}
  --pin          then run again with the origin on one core and the tool on the other (taskset), in alternating
                 rounds, and print a second table: median (min-max) of each figure
  --repeat N     rounds of the pinned pass (default: quick 3, full 5; W12 at most 2 / 3)

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
        pin: { type: 'boolean', default: false },
        repeat: { type: 'string' },
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
  const ids: string[] = ['W0', ...workloads(false).map((w) => w.id), ...PLUGIN_WORKLOAD_IDS, 'W9'];
  const only = values.only ? values.only.split(',').map((s) => s.trim().toUpperCase()) : ids;
  for (const id of only) if (!ids.includes(id)) fail(`unknown workload ${id} (expected ${ids.join(', ')})`);
  const names: string[] = [...new Set([...TOOL_NAMES, ...PLUGIN_TOOL_NAMES, ...POLITE_TOOL_NAMES])];
  const tools = values.tools ? values.tools.split(',').map((s) => s.trim()) : names;
  for (const t of tools) if (!names.includes(t)) fail(`unknown tool ${t} (expected ${names.join(', ')})`);
  const repeat = values.repeat === undefined ? null : Number(values.repeat);
  if (repeat !== null && !(Number.isInteger(repeat) && repeat >= 1 && repeat <= 20)) fail(`--repeat: expected 1-20, got ${values.repeat}`);
  if (repeat !== null && !values.pin) fail('--repeat goes with --pin');
  return {
    quick: values.quick ?? false,
    only: only as (WorkloadId | PluginWorkloadId | 'W0' | 'W9')[],
    tools,
    pin: values.pin ?? false,
    repeat,
  };
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

/** Starts one origin process per distinct origin spec (on one CPU when `cpu` is given); returns the ports of each. */
async function startOrigins(specs: OriginSpec[], cpu?: number): Promise<Map<string, number[]>> {
  const unique = new Map(specs.map((spec) => [originKey(spec), spec]));
  const started = await Promise.all(
    [...unique.entries()].map(async ([key, spec]) => {
      const command = { cmd: process.execPath, args: ['--import', 'tsx', join(benchDir, 'origin.ts'), ...originArgs(spec)], cwd: repoRoot };
      const { firstLine } = await startService(cpu === undefined ? command : pinned(command, cpu), 20_000);
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
  pluginTools: PluginTool[];
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

async function runThroughputJob(plan: Plan, job: Job, list: string, pin?: { cpu: number; round: number }): Promise<ToolRun> {
  const run = await runThroughput({
    ...(pin ? { wrap: (command) => pinned(command, pin.cpu) } : {}),
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
  if (pin) run.round = pin.round;
  progress(run, job.workload.origin.latencyMs);
  return run;
}

/** The plugin tools for one plugin workload, imgdl first. */
function pluginToolsFor(plan: Plan, workload: PluginWorkload): PluginTool[] {
  return plan.pluginTools.filter((t) => t.cases.includes(workload.case));
}

async function runPluginJob(
  plan: Plan,
  workload: PluginWorkload,
  tool: PluginTool,
  pin?: { cpu: number; round: number },
): Promise<PluginRun> {
  const port = plan.origins.get(originKey(workload.origin))?.[0];
  if (port === undefined) throw new Error(`no origin for ${workload.id}`);
  const label = `${workload.id}-${workload.case}-${tool.name}`;
  const run = await runPlugin({
    workload,
    tool,
    ctx: {
      repoRoot,
      benchDir,
      base: `http://127.0.0.1:${port}`,
      outDir: join(plan.tmp, 'out', label),
      storageDir: join(plan.tmp, 'state', label),
      workload,
    },
    statsPort: port,
    scratchDir: plan.tmp,
    // W12's runs are the origin's delays: ~20 s (flags) and ~60 s (gallery, a chain of 20 pages) at best.
    timeoutMs: workload.origin.delay ? 180_000 : 60_000,
    pinned: pin !== undefined,
    round: pin?.round ?? 0,
    ...(pin ? { wrap: (command) => pinned(command, pin.cpu) } : {}),
  });
  process.stdout.write(`${pluginProgress(run)}\n`);
  return run;
}

async function runPluginJobs(plan: Plan, selected: PluginWorkload[]): Promise<PluginRun[]> {
  const runs: PluginRun[] = [];
  for (const workload of selected) {
    for (const tool of pluginToolsFor(plan, workload)) runs.push(await runPluginJob(plan, workload, tool));
  }
  return runs;
}

/**
 * The --pin pass: new origins on one CPU, each tool on the other, the runs of the unpinned pass again in
 * alternating rounds (imgdl, its peers, imgdl, ...), workload by workload.
 */
async function runPinnedPass(
  plan: Plan,
  cpus: Pinning,
  jobs: Job[],
  selected: Workload[],
  selectedPlugins: PluginWorkload[],
): Promise<{ rounds: number; runs: ToolRun[]; plugins: PluginRun[] }> {
  const rounds = plan.options.repeat ?? (plan.options.quick ? 3 : 5);
  const slowRounds = Math.min(rounds, plan.options.repeat ?? (plan.options.quick ? 2 : 3));
  process.stdout.write(
    `\npinned pass: origin on CPU ${cpus.originCpu}, tools on CPU ${cpus.toolCpu}; ${rounds} rounds` +
      `${selectedPlugins.some((w) => w.origin.delay) && slowRounds !== rounds ? ` (W12: ${slowRounds})` : ''}\n`,
  );
  const origins = await startOrigins([...selected.map((w) => w.origin), ...selectedPlugins.map((w) => w.origin)], cpus.originCpu);
  const pinnedPlan: Plan = { ...plan, origins };
  const lists = await writeLists(pinnedPlan, jobs);
  const runs: ToolRun[] = [];
  for (const workload of selected) {
    const mine = jobs.filter((j) => j.workload.id === workload.id);
    for (let round = 1; round <= rounds; round++) {
      for (const job of mine) {
        const list = lists.get(`${job.workload.id}/${job.urls}`) as string;
        runs.push(await runThroughputJob(pinnedPlan, job, list, { cpu: cpus.toolCpu, round }));
      }
    }
  }
  const plugins: PluginRun[] = [];
  for (const workload of selectedPlugins) {
    const n = workload.origin.delay ? slowRounds : rounds;
    for (let round = 1; round <= n; round++) {
      for (const tool of pluginToolsFor(plan, workload)) {
        plugins.push(await runPluginJob(pinnedPlan, workload, tool, { cpu: cpus.toolCpu, round }));
      }
    }
  }
  return { rounds, runs, plugins };
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
  if (report.startup && report.startup.length > 0) out.push(startupTable(report.startup), '');
  if (report.runs.length > 0) out.push(throughputTable(report.runs), tableNotes(report), '');
  if (report.scale) out.push(scaleLines(report.scale), '');
  const plugins = report.plugins ?? [];
  if (plugins.length > 0) {
    out.push(
      pluginTable(plugins),
      'wall s: spawn to exit (start-up included); first image s: spawn to the origin\'s first image response written;',
      'bound s: the best time at 64 in flight given the delays served: a critical-path-first schedule of 64 slots over',
      'the pages → images chain (≥: max(total delay / 64, longest chain), no client can beat it); vs bound: wall s / bound s;',
      'max in flight: most requests of any kind at the origin at once; conns: connections it accepted.',
    );
    const timelines = pluginTimelines(plugins);
    if (timelines) out.push('W12 at the origin, second by second:', timelines);
    out.push('');
  }
  if (report.polite && report.polite.length > 0) out.push(politeTable(report.polite), '');
  if (report.pinned) {
    const { rounds, runs, plugins: pinnedPlugins, note } = report.pinned;
    if (note) out.push(`Pinned pass skipped: ${note}`, '');
    // W0 alone has no throughput or plugin runs: its pinned figures are in its own table above.
    else if (runs.length > 0 || pinnedPlugins.length > 0) {
      out.push(
        `Pinned (origin and tool on separate CPUs), ${rounds} alternating rounds: median (min-max)`,
        pinnedTable(runs, pinnedPlugins),
        '',
      );
    }
  }
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
  const selectedPlugins = pluginWorkloads().filter((w) => options.only.includes(w.id));
  const startupOrigin: OriginSpec = { bytes: SMALL_BYTES, latencyMs: 0, ports: 1 };
  const wantStartup = options.only.includes('W0');
  const [{ available, skipped }, plugin, origins] = await Promise.all([
    detectTools(options.tools as ToolName[]),
    detectPluginTools(selectedPlugins.length > 0 ? options.tools : []),
    startOrigins([...selected.map((w) => w.origin), ...selectedPlugins.map((w) => w.origin), ...(wantStartup ? [startupOrigin] : [])]),
  ]);
  skipped.push(...plugin.skipped);
  for (const s of skipped) process.stdout.write(`skipped ${s.tool}: ${s.reason}\n`);
  if (skipped.length > 0) process.stdout.write('  (bash bench/setup.sh installs every Debian peer)\n');
  const plan: Plan = { options, tmp, tools: available, pluginTools: plugin.available, origins };
  const described = [...(wantStartup ? ['W0 start-up'] : []), ...selected.map(describeWorkload), ...selectedPlugins.map((w) => `${w.id} ${w.title}`), ...(options.only.includes('W9') ? ['W9 politeness (imgdl, undici-loop, aiohttp-gather)'] : [])];
  const toolNames = [...new Set([...(selected.length > 0 ? available : []).map((t) => t.name), ...plugin.available.map((t) => t.name)])];
  process.stdout.write(`imgdl bench${options.quick ? ' --quick' : ''}: ${described.join(', ')}; tools: ${toolNames.join(', ')}\n`);

  let startup: StartupRun[] = [];
  if (wantStartup) {
    const base = `http://127.0.0.1:${origins.get(originKey(startupOrigin))![0]}`;
    const result = await runStartup({ repoRoot, tmp, base, rounds: options.quick ? 5 : 9 });
    for (const s of result.skipped) process.stdout.write(`skipped ${s}\n`);
    startup = result.runs;
    process.stdout.write(`${startupTable(startup)}\n`);
  }
  const jobs = planJobs(selected, available, options.quick);
  const { runs, scale } = await runJobs(plan, jobs, started);
  const plugins = await runPluginJobs(plan, selectedPlugins);
  let polite: BenchReport['polite'];
  if (options.only.includes('W9')) {
    // Alternating rounds, medians: quick 1 round, full 3 (each tool's run is well under a minute).
    const w9 = await runPolite({ repoRoot, benchDir, tmp, rounds: options.quick ? 1 : 3, tools: options.tools, progress: (line) => process.stdout.write(`${line}\n`) });
    polite = w9.runs;
    skipped.push(...w9.skipped);
  }
  let pinnedReport: BenchReport['pinned'];
  if (options.pin) {
    const cpus = await pinning();
    if (typeof cpus === 'string') {
      process.stdout.write(`--pin: ${cpus}; no pinned pass\n`);
      pinnedReport = { rounds: 0, runs: [], plugins: [], note: cpus };
    } else {
      // the runs the unpinned pass did (not W4's, not those the quick budget skipped)
      const ran = jobs.filter((j) => j.kind === 'throughput' && runs.some((r) => r.workload === j.workload.id && r.tool === j.tool.name && r.status !== 'skipped'));
      pinnedReport = await runPinnedPass(plan, cpus, ran, selected.filter((w) => ran.some((j) => j.workload.id === w.id)), selectedPlugins);
      if (wantStartup) {
        const pinnedOrigin = await startOrigins([startupOrigin], cpus.originCpu);
        const base = `http://127.0.0.1:${pinnedOrigin.get(originKey(startupOrigin))![0]}`;
        startup.push(...(await runStartup({ repoRoot, tmp, base, rounds: plan.options.repeat ?? (options.quick ? 5 : 9), cpu: cpus.toolCpu })).runs);
      }
    }
  }

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
    ...(selectedPlugins.length > 0 ? { plugins } : {}),
    ...(wantStartup ? { startup } : {}),
    ...(polite ? { polite } : {}),
    ...(pinnedReport ? { pinned: pinnedReport } : {}),
    skipped,
    targets: [
      ...startupTargets(startup),
      ...checkTargets(runs, scale, plugins),
      // The same targets on the pinned pass's medians: the verdicts that do not hinge on one run.
      ...(pinnedReport && pinnedReport.rounds > 0
        ? checkTargets(medianRuns(pinnedReport.runs), null, medianPluginRuns(pinnedReport.plugins), `(pinned, median of ${pinnedReport.rounds})`).filter((c) => !c.target.startsWith('W4'))
        : []),
    ],
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
