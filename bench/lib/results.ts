/** What one benchmark run produces, shared by the runner, the table, the targets and the chart. */
import type { ToolName } from './tools.ts';
import type { WorkloadId } from './workloads.ts';

export type Status = 'ok' | 'failed' | 'timeout' | 'skipped';

export interface ToolRun {
  workload: WorkloadId;
  tool: ToolName;
  status: Status;
  reason?: string;
  /** URLs the tool was given (smaller than the workload when the tool has a cap). */
  urls: number;
  capped: boolean;
  files: number;
  bytes: number;
  seconds: number;
  imagesPerSec: number;
  mbPerSec: number;
  peakRssMb: number;
  /** CPU milliseconds (user + system) per saved image, start-up included; null without GNU time. */
  cpuMsPerImage: number | null;
  exitCode: number | null;
  /** The JSON summary the tool printed last on stdout, if any. */
  reported?: Record<string, unknown>;
}

export interface ScaleRun {
  workload: 'W4';
  tool: 'imgdl';
  status: Status;
  reason?: string;
  urls: number;
  windowSeconds: number;
  firstImageSeconds: number | null;
  imagesInWindow: number;
  stateBytes: number;
  peakRssMb: number;
  /** From SIGINT to exit; null when it was killed or had already exited. */
  sigintExitSeconds: number | null;
  resumeOpenSeconds: number | null;
  resumeNote?: string;
}

export interface Skipped {
  tool: ToolName;
  reason: string;
}

export type Verdict = 'PASS' | 'MISS' | 'n/a';

export interface TargetCheck {
  target: string;
  verdict: Verdict;
  detail: string;
}

export interface WorkloadInfo {
  id: WorkloadId;
  title: string;
  count: number;
  bytesPerImage: number;
  latencyMs: number;
  ports: number;
}

export interface BenchReport {
  date: string;
  quick: boolean;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryMb: number;
    node: string;
    platform: string;
    kernel: string;
    /** os.loadavg() when the run ended. */
    loadAverage: number[];
    /** Share of all CPUs busy with other processes just before the run (0..1). */
    busyBeforeStart: number | null;
  };
  units: { mb: string; rss: string };
  concurrency: number;
  workloads: WorkloadInfo[];
  runs: ToolRun[];
  scale: ScaleRun | null;
  skipped: Skipped[];
  targets: TargetCheck[];
  totalSeconds: number;
}

export const MB = 1024 * 1024;
