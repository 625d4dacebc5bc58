/**
 * --pin: the origin on one core and the tool under test on another, with `taskset` (util-linux), so that the two
 * do not take turns on the same core and the figures spread less. Several alternating rounds; medians and spreads.
 */
import os from 'node:os';
import type { Command } from './proc.ts';
import { onPath } from './tools.ts';

export interface Pinning {
  originCpu: number;
  toolCpu: number;
}

/** The two CPUs to pin to (the first two this process may run on), or why pinning is not possible here. */
export async function pinning(): Promise<Pinning | string> {
  if (!(await onPath('taskset'))) return 'taskset not found (apt-get install util-linux)';
  const cpus = os.availableParallelism();
  if (cpus < 2) return `only ${cpus} CPU available: nothing to pin apart`;
  return { originCpu: 0, toolCpu: 1 };
}

/** The command run under `taskset -c <cpu>` (its children, threads included, inherit the affinity). */
export function pinned(command: Command, cpu: number): Command {
  return { ...command, cmd: 'taskset', args: ['-c', String(cpu), command.cmd, ...command.args] };
}

/** Median and range of a list of numbers (null when empty). */
export function spread(values: number[]): { median: number; min: number; max: number; n: number } | null {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}
