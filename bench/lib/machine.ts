/** What the numbers were measured on, and how busy it was before we started. */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchReport } from './results.ts';

async function cpuTimes(): Promise<{ busy: number; total: number } | null> {
  const text = await readFile('/proc/stat', 'latin1').catch(() => '');
  const fields = /^cpu\s+(.+)$/m.exec(text)?.[1]?.split(/\s+/).map(Number);
  if (!fields || fields.length < 5) return null;
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** Share (0..1) of all CPUs busy with other work over `ms`; null where /proc/stat is missing. */
export async function cpuBusyShare(ms: number): Promise<number | null> {
  const before = await cpuTimes();
  await sleep(ms);
  const after = await cpuTimes();
  if (!before || !after || after.total === before.total) return null;
  return (after.busy - before.busy) / (after.total - before.total);
}

export function machine(busyBeforeStart: number | null): BenchReport['machine'] {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryMb: Math.round(os.totalmem() / 1024 / 1024),
    node: process.versions.node,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    busyBeforeStart,
  };
}
