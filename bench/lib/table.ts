/** The printed report: one table of throughput runs, the W4 lines, and the target checks. */
import { MB, type ScaleRun, type TargetCheck, type ToolRun } from './results.ts';

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
