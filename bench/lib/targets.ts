/** The targets imgdl is held to, each checked as PASS, MISS or n/a (with the reason). */
import type { PluginCase, PluginRun, ScaleRun, TargetCheck, ToolRun, Verdict } from './results.ts';
import type { ToolName } from './tools.ts';
import { CONCURRENCY, HIGH_CONCURRENCY, LATENCY_MS, type WorkloadId } from './workloads.ts';

const LATENCY_S = LATENCY_MS / 1000;

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

/**
 * W2 and W7: imgdl's in-run rate (origin's first image request to last image response, so no
 * process start-up) against 90% of the concurrency / latency ceiling.
 */
function latencyBound(find: Lookup, workload: WorkloadId, concurrency: number): TargetCheck {
  const floor = 0.9 * (concurrency / LATENCY_S);
  const target = `${workload} imgdl in-run images/s ≥ 90% of ${concurrency}/${LATENCY_S}s (${floor.toFixed(0)})`;
  const own = find(workload, 'imgdl');
  const why = usable(own, 'imgdl');
  if (why || !own) return { target, verdict: 'n/a', detail: why ?? '' };
  if (own.inRunImagesPerSec === null) return { target, verdict: 'n/a', detail: 'no in-run rate (origin stats unavailable)' };
  const wall = `wall-clock ${own.imagesPerSec.toFixed(1)}`;
  return {
    target,
    verdict: verdict(own.inRunImagesPerSec >= floor),
    detail: `${own.inRunImagesPerSec.toFixed(1)} images/s (${wall})`,
  };
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

function pluginRun(plugins: PluginRun[], workload: 'W8' | 'W12', kase: PluginCase, tool: string): PluginRun | undefined {
  return plugins.find((r) => r.workload === workload && r.case === kase && r.tool === tool);
}

function usablePlugin(run: PluginRun | undefined, who: string): string | null {
  if (!run) return `${who} not run`;
  if (run.status !== 'ok') return `${who} ${run.status}`;
  return null;
}

/** W8: imgdl's wall time (start-up included) against the asyncio script's on the same 194 flags. */
function flagsVersusAiohttp(plugins: PluginRun[]): TargetCheck {
  const target = 'W8 imgdl wall time ≤ 1.0× flags-aiohttp';
  const own = pluginRun(plugins, 'W8', 'flags', 'imgdl');
  const peer = pluginRun(plugins, 'W8', 'flags', 'flags-aiohttp');
  const why = usablePlugin(own, 'imgdl') ?? usablePlugin(peer, 'flags-aiohttp');
  if (why || !own || !peer) return { target, verdict: 'n/a', detail: why ?? '' };
  return {
    target,
    verdict: verdict(own.seconds <= peer.seconds),
    detail: `${own.seconds.toFixed(2)} vs ${peer.seconds.toFixed(2)} s (×${(own.seconds / peer.seconds).toFixed(2)})`,
  };
}

/** W12: imgdl's wall time against the concurrency bound of the delays the origin served (`bound.ts`). */
function slowBound(plugins: PluginRun[], kase: PluginCase): TargetCheck {
  const target = `W12 ${kase} imgdl wall time ≤ 1.3× the concurrency bound`;
  const own = pluginRun(plugins, 'W12', kase, 'imgdl');
  const why = usablePlugin(own, 'imgdl');
  if (why || !own) return { target, verdict: 'n/a', detail: why ?? '' };
  if (!own.bound || own.vsBound === null) return { target, verdict: 'n/a', detail: 'no bound (origin log unavailable)' };
  return {
    target,
    verdict: verdict(own.vsBound <= 1.3),
    detail: `${own.seconds.toFixed(2)} vs ${own.bound.simulatedSeconds.toFixed(2)} s (×${own.vsBound.toFixed(2)})`,
  };
}

/** W12: spawn to the origin's first image response written. */
function slowFirstImage(plugins: PluginRun[], kase: PluginCase): TargetCheck {
  const target = `W12 ${kase} imgdl first image ≤ 6 s`;
  const own = pluginRun(plugins, 'W12', kase, 'imgdl');
  const why = usablePlugin(own, 'imgdl');
  if (why || !own) return { target, verdict: 'n/a', detail: why ?? '' };
  if (own.firstImageSeconds === null) return { target, verdict: 'n/a', detail: 'not measured' };
  const best = own.bound?.firstImageSeconds;
  const floor = best === null || best === undefined ? '' : ` (the origin's delays alone: ${best.toFixed(2)} s)`;
  return { target, verdict: verdict(own.firstImageSeconds <= 6), detail: `${own.firstImageSeconds.toFixed(2)} s${floor}` };
}

export function checkTargets(runs: ToolRun[], scale: ScaleRun | null, plugins: PluginRun[] = [], label = ''): TargetCheck[] {
  const find: Lookup = (workload, tool) => runs.find((r) => r.workload === workload && r.tool === tool);
  const checks = [
    // Issue 12: faster than the seeds' script on any machine, within reach of the raw undici loop.
    versusPeer(find, 'W1', 'aiohttp-gather', 1.3, 'imagesPerSec'),
    versusPeer(find, 'W1', 'undici-loop', 0.85, 'imagesPerSec'),
    versusPeerCost(find, 'W1', 'undici-loop', 1.25, 'CPU per image', (r) => r.cpuMsPerImage, 'ms'),
    versusPeerCost(find, 'W1', 'undici-loop', 1.2, 'peak RSS', (r) => r.peakRssMb, 'MB'),
    versusPeer(find, 'W1', 'aria2c', 3, 'imagesPerSec'),
    latencyBound(find, 'W2', CONCURRENCY),
    bestPeerInRun(find, 'W2', ['undici-loop', 'aiohttp-gather'], 0.9),
    latencyBound(find, 'W7', HIGH_CONCURRENCY),
    versusPeer(find, 'W3', 'aria2c', 1, 'mbPerSec'),
    imgdlBound(find, 'W3', 'W3 imgdl peak RSS < 150 MB', (r) => r.peakRssMb, (v) => v < 150, 'MB'),
    cpuGrowth(find),
    scaleBound(scale, 'W4 first image < 2 s', (s) => s.firstImageSeconds, 2, 's'),
    scaleBound(scale, 'W4 peak RSS < 500 MB', (s) => s.peakRssMb, 500, 'MB'),
    scaleBound(scale, 'W4 resume open < 5 s', (s) => s.resumeOpenSeconds, 5, 's'),
    flagsVersusAiohttp(plugins),
    slowBound(plugins, 'flags'),
    slowFirstImage(plugins, 'flags'),
    slowBound(plugins, 'gallery'),
    slowFirstImage(plugins, 'gallery'),
  ];
  return label ? checks.map((c) => ({ ...c, target: `${c.target} ${label}` })) : checks;
}

/** imgdl's cost (CPU per image, memory) against `factor` × a peer's: lower is better. */
function versusPeerCost(
  find: Lookup,
  workload: WorkloadId,
  peer: ToolName,
  factor: number,
  what: string,
  measure: (run: ToolRun) => number | null,
  unit: string,
): TargetCheck {
  const target = `${workload} imgdl ${what} ≤ ${factor}× ${peer}'s`;
  const own = find(workload, 'imgdl');
  const other = find(workload, peer);
  const why = usable(own, 'imgdl') ?? usable(other, peer);
  if (why || !own || !other) return { target, verdict: 'n/a', detail: why ?? '' };
  const mine = measure(own);
  const theirs = measure(other);
  if (mine === null || theirs === null) return { target, verdict: 'n/a', detail: 'not measured (GNU time missing)' };
  return { target, verdict: verdict(mine <= factor * theirs), detail: `${mine.toFixed(3)} vs ${theirs.toFixed(3)} ${unit} (×${(mine / theirs).toFixed(2)})` };
}

/** imgdl's in-run rate against `factor` × the best in-run rate of `peers` (latency-bound workloads). */
function bestPeerInRun(find: Lookup, workload: WorkloadId, peers: ToolName[], factor: number): TargetCheck {
  const target = `${workload} imgdl in-run images/s ≥ ${factor}× the best of ${peers.join(', ')}`;
  const own = find(workload, 'imgdl');
  const why = usable(own, 'imgdl');
  if (why || !own || own.inRunImagesPerSec === null) return { target, verdict: 'n/a', detail: why ?? 'no in-run rate' };
  const rates = peers.map((p) => find(workload, p)).filter((r): r is ToolRun => r?.status === 'ok' && r.inRunImagesPerSec !== null);
  if (rates.length === 0) return { target, verdict: 'n/a', detail: `none of ${peers.join(', ')} ran` };
  const best = rates.reduce((a, b) => (b.inRunImagesPerSec! > a.inRunImagesPerSec! ? b : a));
  const need = factor * best.inRunImagesPerSec!;
  return { target, verdict: verdict(own.inRunImagesPerSec >= need), detail: `${own.inRunImagesPerSec.toFixed(1)} vs ${need.toFixed(1)} (${best.tool} ${best.inRunImagesPerSec!.toFixed(1)})` };
}

/**
 * One run per workload and tool standing for the pinned pass's rounds: each figure the median of the rounds' (a
 * tool that failed in any round counts as failed), so a target is judged on medians, not on one run.
 */
export function medianRuns(runs: ToolRun[]): ToolRun[] {
  const groups = new Map<string, ToolRun[]>();
  for (const run of runs) {
    const key = `${run.workload}/${run.tool}`;
    groups.set(key, [...(groups.get(key) ?? []), run]);
  }
  const med = (values: Array<number | null>): number | null => {
    const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
    if (v.length === 0) return null;
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  };
  return [...groups.values()].map((group) => {
    const failed = group.find((r) => r.status !== 'ok');
    if (failed) return failed;
    return {
      ...group[0]!,
      imagesPerSec: med(group.map((r) => r.imagesPerSec))!,
      mbPerSec: med(group.map((r) => r.mbPerSec))!,
      inRunImagesPerSec: med(group.map((r) => r.inRunImagesPerSec)),
      peakRssMb: med(group.map((r) => r.peakRssMb))!,
      cpuMsPerImage: med(group.map((r) => r.cpuMsPerImage)),
    };
  });
}

/** The pinned pass's plugin runs: per workload, case and tool, the round with the median wall time. */
export function medianPluginRuns(runs: PluginRun[]): PluginRun[] {
  const groups = new Map<string, PluginRun[]>();
  for (const run of runs) {
    const key = `${run.workload}/${run.case}/${run.tool}`;
    groups.set(key, [...(groups.get(key) ?? []), run]);
  }
  return [...groups.values()].map((group) => {
    const failed = group.find((r) => r.status !== 'ok');
    if (failed) return failed;
    const sorted = [...group].sort((a, b) => a.seconds - b.seconds);
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  });
}
