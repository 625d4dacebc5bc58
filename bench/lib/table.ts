/** The printed report: one table of throughput runs, the W4 lines, and the target checks. */
import { spread } from './pin.ts';
import { MB, type PluginRun, type ScaleRun, type TargetCheck, type ToolRun } from './results.ts';

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const dec = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function imgdlRate(runs: ToolRun[], run: ToolRun): number | null {
  const own = runs.find((r) => r.workload === run.workload && r.tool === 'imgdl');
  return own && own.status === 'ok' ? own.imagesPerSec : null;
}

function ratio(runs: ToolRun[], run: ToolRun): string {
  const base = imgdlRate(runs, run);
  if (base === null) return 'n/a';
  if (run.status !== 'ok') return '-';
  return `×${(run.imagesPerSec / base).toFixed(2)}`;
}

function status(run: ToolRun): string {
  if (run.status === 'ok') return 'ok';
  const word = { failed: 'FAILED', timeout: 'TIMEOUT', skipped: 'skipped' }[run.status];
  return `${word}${run.reason ? `: ${run.reason}` : ''}`;
}

function images(run: ToolRun): string {
  return `${int.format(run.files)}/${int.format(run.urls)}${run.capped ? ' (cap)' : ''}`;
}

function render(rows: string[][], rightAligned: Set<number>): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  const line = (row: string[]): string =>
    row
      .map((cell, col) => (rightAligned.has(col) ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0)))
      .join('  ')
      .trimEnd();
  const [head, ...body] = rows;
  if (!head) return '';
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(head), rule, ...body.map(line)].join('\n');
}

export function throughputTable(runs: ToolRun[]): string {
  const head = ['workload', 'tool', 'images', 'images/s', 'in-run img/s', 'MB/s', 'peak RSS MB', 'CPU ms/image', 'vs imgdl', 'status'];
  const rows = runs.map((run) => {
    const ok = run.status === 'ok';
    return [
      run.workload,
      run.tool,
      images(run),
      ok ? int.format(run.imagesPerSec) : '-',
      ok && run.inRunImagesPerSec !== null ? int.format(run.inRunImagesPerSec) : '-',
      ok ? dec.format(run.mbPerSec) : '-',
      run.peakRssMb > 0 ? int.format(run.peakRssMb) : '-',
      ok && run.cpuMsPerImage !== null ? run.cpuMsPerImage.toFixed(2) : '-',
      ratio(runs, run),
      status(run),
    ];
  });
  return render([head, ...rows], new Set([2, 3, 4, 5, 6, 7, 8]));
}

function seconds(value: number | null): string {
  return value === null ? 'n/a' : `${value.toFixed(2)} s`;
}

export function scaleLines(run: ScaleRun): string {
  const lines = [
    `W4 scale: imgdl on ${int.format(run.urls)} URLs, SIGINT after ${run.windowSeconds} s — ${run.status}${run.reason ? `: ${run.reason}` : ''}`,
    `  time to first saved image  ${seconds(run.firstImageSeconds)}`,
    `  images in the window       ${int.format(run.imagesInWindow)}`,
    `  state size on disk         ${dec.format(run.stateBytes / MB)} MB`,
    `  peak RSS                   ${run.peakRssMb > 0 ? `${int.format(run.peakRssMb)} MB` : '-'}`,
    `  exit after SIGINT          ${seconds(run.sigintExitSeconds)}`,
    `  resume: open to next image ${seconds(run.resumeOpenSeconds)}${run.resumeNote ? ` (${run.resumeNote})` : ''}`,
  ];
  return lines.join('\n');
}

export function targetLines(checks: TargetCheck[]): string {
  const width = Math.max(...checks.map((c) => c.target.length));
  return checks.map((c) => `  ${c.verdict.padEnd(4)}  ${c.target.padEnd(width)}  ${c.detail}`).join('\n');
}

function secs(value: number | null | undefined): string {
  return value === null || value === undefined ? '-' : value.toFixed(2);
}

function pluginStatus(run: PluginRun): string {
  if (run.status === 'ok') return 'ok';
  const word = { failed: 'FAILED', timeout: 'TIMEOUT', skipped: 'skipped' }[run.status];
  return `${word}${run.reason ? `: ${run.reason}` : ''}`;
}

/** imgdl's wall time over this run's, for the same workload and case (>1: the peer took longer). */
function pluginRatio(runs: PluginRun[], run: PluginRun): string {
  const own = runs.find((r) => r.workload === run.workload && r.case === run.case && r.tool === 'imgdl');
  if (!own || own.status !== 'ok') return 'n/a';
  if (run.status !== 'ok') return '-';
  return `×${(run.seconds / own.seconds).toFixed(2)}`;
}

/** W8 and W12: one row per tool and case. */
export function pluginTable(runs: PluginRun[]): string {
  const head = ['workload', 'tool', 'images', 'wall s', 'first image s', 'in-run s', 'bound s', 'vs bound', 'max in flight', 'conns', 'peak RSS MB', 'time vs imgdl', 'status'];
  const rows = runs.map((run) => {
    const ok = run.status === 'ok';
    return [
      `${run.workload} ${run.case}`,
      run.tool,
      `${int.format(run.files)}/${int.format(run.expected)}`,
      secs(run.seconds),
      secs(run.firstImageSeconds),
      secs(run.inRunSeconds),
      run.bound ? `${run.bound.simulatedSeconds.toFixed(2)} (≥${run.bound.lowerBoundSeconds.toFixed(2)})` : '-',
      ok && run.vsBound !== null ? `×${run.vsBound.toFixed(2)}` : '-',
      String(run.maxRequestsInFlight),
      String(run.connections),
      run.peakRssMb > 0 ? int.format(run.peakRssMb) : '-',
      pluginRatio(runs, run),
      pluginStatus(run),
    ];
  });
  return render([head, ...rows], new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
}

/** The slow origin's view of each W12 run: requests in flight and connections open, second by second. */
export function pluginTimelines(runs: PluginRun[]): string {
  const lines: string[] = [];
  for (const run of runs.filter((r) => r.workload === 'W12')) {
    lines.push(
      `  ${run.case} ${run.tool}: in flight per s  ${run.inFlightPerSecond.join(' ')}`,
      `  ${' '.repeat(run.case.length + run.tool.length + 1)}  conns open per s ${run.openPerSecond.join(' ')}`,
    );
  }
  return lines.join('\n');
}

function median(values: number[], digits: number): string {
  const s = spread(values);
  if (!s) return '-';
  const f = (v: number): string => v.toFixed(digits);
  return s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}-${f(s.max)})`;
}

/**
 * The --pin pass: one row per workload and tool, each figure as median (min-max) over the alternating rounds.
 * Failed runs are left out of the figures (and counted in `ok`).
 */
export function pinnedTable(runs: ToolRun[], plugins: PluginRun[]): string {
  const head = ['workload', 'tool', 'ok/runs', 'wall s', 'images/s', 'in-run img/s', 'first image s', 'vs bound', 'max in flight'];
  const rows: string[][] = [];
  const groups = new Map<string, ToolRun[]>();
  for (const run of runs) groups.set(`${run.workload} ${run.tool}`, [...(groups.get(`${run.workload} ${run.tool}`) ?? []), run]);
  for (const [key, group] of groups) {
    const ok = group.filter((r) => r.status === 'ok');
    const [workload = '', tool = ''] = key.split(' ');
    rows.push([
      workload,
      tool,
      `${ok.length}/${group.length}`,
      median(ok.map((r) => r.seconds), 2),
      median(ok.map((r) => r.imagesPerSec), 0),
      median(ok.flatMap((r) => (r.inRunImagesPerSec === null ? [] : [r.inRunImagesPerSec])), 0),
      '-',
      '-',
      median(ok.flatMap((r) => (r.origin ? [r.origin.maxInFlight] : [])), 0),
    ]);
  }
  const pluginGroups = new Map<string, PluginRun[]>();
  for (const run of plugins) {
    const key = `${run.workload} ${run.case}|${run.tool}`;
    pluginGroups.set(key, [...(pluginGroups.get(key) ?? []), run]);
  }
  for (const [key, group] of pluginGroups) {
    const ok = group.filter((r) => r.status === 'ok');
    const [workload = '', tool = ''] = key.split('|');
    rows.push([
      workload,
      tool,
      `${ok.length}/${group.length}`,
      median(ok.map((r) => r.seconds), 2),
      median(ok.map((r) => r.files / r.seconds), 0),
      '-',
      median(ok.flatMap((r) => (r.firstImageSeconds === null ? [] : [r.firstImageSeconds])), 2),
      median(ok.flatMap((r) => (r.vsBound === null ? [] : [r.vsBound])), 2),
      median(ok.map((r) => r.maxRequestsInFlight), 0),
    ]);
  }
  return render([head, ...rows], new Set([2, 3, 4, 5, 6, 7, 8]));
}
