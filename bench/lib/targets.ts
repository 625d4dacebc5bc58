/** The targets imgdl is held to, each checked as PASS, MISS or n/a (with the reason). */
import type { ScaleRun, TargetCheck, ToolRun, Verdict } from './results.ts';
import { CONCURRENCY, type ToolName } from './tools.ts';
import type { WorkloadId } from './workloads.ts';

const W2_LATENCY_S = 0.05;

type Lookup = (workload: WorkloadId, tool: ToolName) => ToolRun | undefined;

function verdict(pass: boolean): Verdict {
  return pass ? 'PASS' : 'MISS';
}

function usable(run: ToolRun | undefined, who: string): string | null {
  if (!run) return `${who} not run`;
  if (run.status !== 'ok') return `${who} ${run.status}`;
  return null;
}

/** imgdl's value against a peer's, scaled by `factor`. */
function versusPeer(
  find: Lookup,
  workload: WorkloadId,
  peer: ToolName,
  factor: number,
  metric: 'imagesPerSec' | 'mbPerSec',
): TargetCheck {
  const unit = metric === 'imagesPerSec' ? 'images/s' : 'MB/s';
  const target = `${workload} imgdl ${unit} ≥ ${factor === 1 ? '' : `${factor}× `}${peer}`;
  const own = find(workload, 'imgdl');
  const other = find(workload, peer);
  const why = usable(own, 'imgdl') ?? usable(other, peer);
  if (why || !own || !other) return { target, verdict: 'n/a', detail: why ?? '' };
  const need = other[metric] * factor;
  return {
    target,
    verdict: verdict(own[metric] >= need),
    detail: `${own[metric].toFixed(1)} vs ${need.toFixed(1)}`,
  };
}

function imgdlBound(
  find: Lookup,
  workload: WorkloadId,
  target: string,
  measure: (run: ToolRun) => number,
  pass: (value: number) => boolean,
  unit: string,
): TargetCheck {
  const own = find(workload, 'imgdl');
  const why = usable(own, 'imgdl');
  if (why || !own) return { target, verdict: 'n/a', detail: why ?? '' };
  const value = measure(own);
  return { target, verdict: verdict(pass(value)), detail: `${value.toFixed(1)} ${unit}` };
}

function scaleBound(
  scale: ScaleRun | null,
  target: string,
  value: (run: ScaleRun) => number | null,
  limit: number,
  unit: string,
): TargetCheck {
  if (!scale) return { target, verdict: 'n/a', detail: 'W4 not run' };
  const v = value(scale);
  if (v === null || scale.status !== 'ok') {
    return { target, verdict: 'n/a', detail: scale.status !== 'ok' ? `imgdl ${scale.status}` : 'not measured' };
  }
  return { target, verdict: verdict(v < limit), detail: `${v.toFixed(2)} ${unit}` };
}

/** W6 (W1 ten times over) against W1: imgdl's CPU time per image must not grow by more than 10%. */
function cpuGrowth(find: Lookup): TargetCheck {
  const target = 'W6 imgdl CPU per image ≤ 1.1 × W1\'s';
  const small = find('W1', 'imgdl');
  const big = find('W6', 'imgdl');
  const why = usable(small, 'W1 imgdl') ?? usable(big, 'W6 imgdl');
  if (why || !small || !big) return { target, verdict: 'n/a', detail: why ?? '' };
  if (small.cpuMsPerImage === null || big.cpuMsPerImage === null) return { target, verdict: 'n/a', detail: 'no CPU time (GNU time missing)' };
  return {
    target,
    verdict: verdict(big.cpuMsPerImage <= 1.1 * small.cpuMsPerImage),
    detail: `${big.cpuMsPerImage.toFixed(3)} vs ${small.cpuMsPerImage.toFixed(3)} ms (×${(big.cpuMsPerImage / small.cpuMsPerImage).toFixed(2)})`,
  };
}

export function checkTargets(runs: ToolRun[], scale: ScaleRun | null): TargetCheck[] {
  const find: Lookup = (workload, tool) => runs.find((r) => r.workload === workload && r.tool === tool);
  const w2Floor = 0.9 * (CONCURRENCY / W2_LATENCY_S);
  return [
    versusPeer(find, 'W1', 'aiohttp-gather', 1, 'imagesPerSec'),
    versusPeer(find, 'W1', 'aria2c', 3, 'imagesPerSec'),
    imgdlBound(
      find,
      'W2',
      `W2 imgdl images/s ≥ 90% of ${CONCURRENCY}/${W2_LATENCY_S}s (${w2Floor.toFixed(0)})`,
      (r) => r.imagesPerSec,
      (v) => v >= w2Floor,
      'images/s',
    ),
    versusPeer(find, 'W3', 'aria2c', 1, 'mbPerSec'),
    imgdlBound(find, 'W3', 'W3 imgdl peak RSS < 150 MB', (r) => r.peakRssMb, (v) => v < 150, 'MB'),
    cpuGrowth(find),
    scaleBound(scale, 'W4 first image < 2 s', (s) => s.firstImageSeconds, 2, 's'),
    scaleBound(scale, 'W4 peak RSS < 500 MB', (s) => s.peakRssMb, 500, 'MB'),
    scaleBound(scale, 'W4 resume open < 5 s', (s) => s.resumeOpenSeconds, 5, 's'),
  ];
}
