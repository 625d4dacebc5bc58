/**
 * Which tool runs on which workload, in what order. A quick run has a time budget: the runs
 * the targets need come first, and the others start only while the budget allows them.
 */
import { workersOf, type Tool, type ToolName } from './tools.ts';
import type { Workload, WorkloadId } from './workloads.ts';

/** Extra runs start only if they should end by then, so a quick run ends within ~60 s. */
export const QUICK_BUDGET_S = 52;
/** On a machine busy with other work, a quick run starts nothing after this, essential or not. */
export const QUICK_DEADLINE_S = 120;
/** Large-file copy speed assumed for the estimate, bytes per second. */
const NOMINAL_BYTES_PER_S = 150 * 1024 * 1024;
/** Per-request overhead on top of the origin's latency, seconds. */
const REQUEST_OVERHEAD_S = 0.005;

/**
 * The runs a quick run always does: imgdl, the engine's floor, and the peers the targets name.
 * On W7 only imgdl (its target), so that the quick run stays near a minute; the peers run there
 * while the budget allows (`--only W7` runs them all).
 */
function essential(tool: ToolName, workload: WorkloadId): boolean {
  if (workload === 'W6') return false;
  if (workload === 'W7') return tool === 'imgdl';
  if (tool === 'imgdl' || tool === 'undici-loop' || tool === 'aiohttp-gather') return true;
  return tool === 'aria2c' && (workload === 'W1' || workload === 'W3');
}

/** Seconds a run should take by the tool's nominal speed: start-up, then rate- or latency-bound. */
export function estimateSeconds(tool: Tool, workload: Workload, urls: number): number {
  const { imagesPerSec, startupS } = tool.nominal;
  const workers = workersOf(tool, workload.concurrency);
  const latencyS = workload.origin.latencyMs / 1000;
  const rate = latencyS > 0 ? Math.min(imagesPerSec, workers / (latencyS + REQUEST_OVERHEAD_S)) : imagesPerSec;
  return startupS + urls / rate + (urls * workload.origin.bytes) / NOMINAL_BYTES_PER_S;
}

export interface Job {
  kind: 'throughput' | 'scale';
  workload: Workload;
  tool: Tool;
  /** URLs the tool gets: the workload's count, or the tool's cap. */
  urls: number;
  capped: boolean;
  essential: boolean;
  estimateS: number;
}

function job(workload: Workload, tool: Tool, quick: boolean): Job {
  const cap = tool.cap ? Math.min(tool.cap(quick), workload.count) : workload.count;
  return {
    kind: workload.mode,
    workload,
    tool,
    urls: cap,
    capped: cap < workload.count,
    essential: !quick || workload.mode === 'scale' || essential(tool.name, workload.id),
    estimateS: estimateSeconds(tool, workload, cap),
  };
}

function runsOn(tool: Tool, workload: Workload): boolean {
  if (workload.mode === 'scale' || workload.id === 'W6') return tool.name === 'imgdl';
  return !tool.only || tool.only.includes(workload.id);
}

/**
 * Full runs keep workload order. Quick runs do the essential runs first, then the others in
 * workload order, each only if its estimate still fits in the budget.
 */
export function planJobs(workloads: Workload[], tools: Tool[], quick: boolean): Job[] {
  const jobs = workloads.flatMap((w) => tools.filter((t) => runsOn(t, w)).map((t) => job(w, t, quick)));
  if (!quick) return jobs;
  return [...jobs.filter((j) => j.essential), ...jobs.filter((j) => !j.essential)];
}

/** Null when the job may start; otherwise why it is skipped. */
export function budgetVeto(job: Job, quick: boolean, elapsedS: number): string | null {
  if (quick && elapsedS > QUICK_DEADLINE_S) return `quick deadline (${QUICK_DEADLINE_S} s) passed`;
  if (!quick || job.essential) return null;
  if (elapsedS + job.estimateS <= QUICK_BUDGET_S) return null;
  return `quick time budget (${QUICK_BUDGET_S} s) spent`;
}
