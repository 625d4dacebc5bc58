/**
 * A hand-written SVG bar chart: one group per workload, one labelled bar per tool, each group
 * on its own scale (W3 in MB/s, the others in images/s). Bars are wall-clock rates (spawn to
 * exit); on the image-rate groups the in-run rate (measured by the origin) follows the value.
 */
import type { BenchReport, ScaleRun, ToolRun, WorkloadInfo } from './results.ts';
import { TOOL_NAMES, type ToolName } from './tools.ts';

const WIDTH = 900;
const LABEL_X = 16;
const BAR_X = 230;
const BAR_MAX = 480;
const ROW = 22;
const BAR_H = 15;
const GROUP_GAP = 18;
const TITLE_H = 26;

const COLORS: Record<ToolName, string> = {
  imgdl: '#d62728',
  'undici-loop': '#1f77b4',
  'aiohttp-gather': '#2ca02c',
  'requests-threads': '#9467bd',
  'requests-sequential': '#8c564b',
  aria2c: '#ff7f0e',
  wget2: '#17becf',
};

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x}" y="${y}" ${attrs}>${escape(content)}</text>`;
}

function size(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / 1024 / 1024)} MB` : `${Math.round(bytes / 1024)} KB`;
}

function describe(info: WorkloadInfo, concurrency: number): string {
  const parts = [`${info.count.toLocaleString('en-US')} × ${size(info.bytesPerImage)}`];
  if (info.latencyMs) parts.push(`${info.latencyMs} ms latency`);
  if (info.ports > 1) parts.push(`${info.ports} hosts`);
  if (info.concurrency !== concurrency) parts.push(`concurrency ${info.concurrency}`);
  return parts.join(', ');
}

function scaleText(run: ScaleRun): string {
  const s = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)} s`);
  if (run.status !== 'ok') return `W4 scale (imgdl, ${run.urls.toLocaleString('en-US')} URLs): ${run.status}${run.reason ? `: ${run.reason}` : ''}`;
  return (
    `W4 scale (imgdl, ${run.urls.toLocaleString('en-US')} URLs): first image ${s(run.firstImageSeconds)}, ` +
    `peak RSS ${Math.round(run.peakRssMb)} MB, state ${(run.stateBytes / 1024 / 1024).toFixed(1)} MB, resume open ${s(run.resumeOpenSeconds)}`
  );
}

function metricOf(workload: string): { key: 'imagesPerSec' | 'mbPerSec'; unit: string } {
  return workload === 'W3' ? { key: 'mbPerSec', unit: 'MB/s' } : { key: 'imagesPerSec', unit: 'images/s' };
}

function group(report: BenchReport, workload: string, runs: ToolRun[], top: number): { svg: string[]; height: number } {
  const info = report.workloads.find((w) => w.id === workload);
  const { key, unit } = metricOf(workload);
  const max = Math.max(1, ...runs.filter((r) => r.status === 'ok').map((r) => r[key]));
  const title = info ? `${workload} ${info.title}: ${describe(info, report.concurrency)} (${unit})` : workload;
  const svg = [text(LABEL_X, top + 17, title, 'class="title"')];
  runs.forEach((run, i) => {
    const y = top + TITLE_H + i * ROW;
    const label = run.capped ? `${run.tool} (${run.urls} URLs)` : run.tool;
    svg.push(text(LABEL_X, y + 12, label, 'class="label"'));
    if (run.status !== 'ok') {
      const word = { failed: 'failed', timeout: 'timed out', skipped: 'skipped (time budget)' }[run.status];
      svg.push(text(BAR_X + 4, y + 12, word, 'class="failed"'));
      return;
    }
    const width = Math.max(1, (run[key] / max) * BAR_MAX);
    let value = key === 'mbPerSec' ? run[key].toFixed(1) : Math.round(run[key]).toLocaleString('en-US');
    if (key === 'imagesPerSec' && run.inRunImagesPerSec !== null) {
      value += ` (in-run ${Math.round(run.inRunImagesPerSec).toLocaleString('en-US')})`;
    }
    svg.push(`<rect x="${BAR_X}" y="${y}" width="${width.toFixed(1)}" height="${BAR_H}" fill="${COLORS[run.tool]}"/>`);
    svg.push(text(BAR_X + width + 6, y + 12, value, 'class="value"'));
  });
  return { svg, height: TITLE_H + runs.length * ROW + GROUP_GAP };
}

export function renderSvg(report: BenchReport): string {
  const order = (tool: ToolName): number => TOOL_NAMES.indexOf(tool);
  const workloads = [...new Set(report.runs.map((r) => r.workload))];
  const body: string[] = [];
  let top = 48;
  for (const workload of workloads) {
    const runs = report.runs.filter((r) => r.workload === workload).sort((a, b) => order(a.tool) - order(b.tool));
    const drawn = group(report, workload, runs, top);
    body.push(...drawn.svg);
    top += drawn.height;
  }
  if (report.scale) {
    body.push(text(LABEL_X, top + 12, scaleText(report.scale), 'class="label"'));
    top += 28;
  }
  const m = report.machine;
  const others = [...new Set(report.workloads.map((w) => w.concurrency).filter((c) => c !== report.concurrency))];
  const heading =
    `imgdl benchmark${report.quick ? ' (quick)' : ''}: throughput per tool, concurrency ${report.concurrency}` +
    (others.length > 0 ? ` (${others.join(', ')} where marked)` : '');
  const sub =
    `${report.date.slice(0, 10)} · ${m.cpus} × ${m.cpuModel} · Node ${m.node} · loopback origin; ` +
    "bars: spawn to exit; in-run: origin's first image request to last response";
  const height = top + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold}.label,.value{font-size:12px}.failed{font-size:12px;fill:#999;font-style:italic}.sub{font-size:11px;fill:#555}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    text(LABEL_X, 22, heading, 'class="title"'),
    text(LABEL_X, 38, sub, 'class="sub"'),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
