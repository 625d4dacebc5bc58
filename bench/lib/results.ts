/** What one benchmark run produces, shared by the runner, the table, the targets and the chart. */
import type { Bound } from './bound.ts';
import type { StartupRun } from './startup.ts';
import type { PoliteRun } from './polite.ts';
import type { ToolName } from './tools.ts';
import type { WorkloadId } from './workloads.ts';

export type Status = 'ok' | 'failed' | 'timeout' | 'skipped';

/** What the origin saw of one run (its `/__stats`, reset just before the run and read just after). */
export interface OriginWindow {
  /** Image requests that arrived. */
  images: number;
  /** Image responses written out in full. */
  imagesDone: number;
  /** The most image requests in flight at once in the origin (arrived, response not yet written). */
  maxInFlight: number;
  /** Epoch ms (fractional) at which the first image request arrived; null if none did. */
  firstImageAt: number | null;
  /** Epoch ms (fractional) at which the last image response finished being written; null if none did. */
  lastImageDoneAt: number | null;
}

export interface ToolRun {
  workload: WorkloadId;
  tool: ToolName;
  /** Round of the --pin pass (1, 2, ...); absent in the unpinned pass. */
  round?: number;
  status: Status;
  reason?: string;
  /** URLs the tool was given (smaller than the workload when the tool has a cap). */
  urls: number;
  capped: boolean;
  /** Requests in flight the tool was run with (the workload's, or the tool's fixed worker count). */
  concurrency: number;
  files: number;
  bytes: number;
  /** Wall time from spawn to exit (process start-up and exit included). */
  seconds: number;
  /** files / seconds: the wall-clock rate. */
  imagesPerSec: number;
  mbPerSec: number;
  /** The origin's first image request to its last image response, seconds; null when not measured. */
  inRunSeconds: number | null;
  /** files / inRunSeconds: the rate while the tool was downloading (no start-up); null with fewer than 2 images. */
  inRunImagesPerSec: number | null;
  /** The origin's counts for this run; null when they could not be read. */
  origin: OriginWindow | null;
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
  tool: ToolName | PluginToolName;
  reason: string;
}

export type PluginToolName = 'imgdl' | 'flags-aiohttp' | 'gallery-aiohttp';
export type PluginCase = 'flags' | 'gallery';

/** One plugin run (W8, W12): imgdl's `run <plugin>` or a plain asyncio peer on the same site. */
export interface PluginRun {
  workload: 'W8' | 'W12';
  case: PluginCase;
  tool: PluginToolName;
  status: Status;
  reason?: string;
  /** Run under taskset (origin on one core, the tool on the other), in the pinned pass. */
  pinned: boolean;
  /** Round of the pinned pass (1, 2, ...); 0 in the unpinned pass. */
  round: number;
  concurrency: number;
  /** Images expected, and image files found in the output folder afterwards. */
  expected: number;
  files: number;
  /** Wall time from spawn to exit (start-up included). */
  seconds: number;
  /** Spawn to the origin's first image response written in full; null when none was. */
  firstImageSeconds: number | null;
  /** The origin's first request to its last response written, seconds. */
  inRunSeconds: number | null;
  /** Requests the origin saw for the site (pages, metadata and images, retries included). */
  requests: number;
  /** Other requests it saw (e.g. `/robots.txt 404 after 1.23 s`): not in the bound, their time is in the wall time. */
  otherRequests: string[];
  /** The most requests (of any kind) in flight in the origin at once. */
  maxRequestsInFlight: number;
  /** Connections the origin accepted during the run, and the most open at once. */
  connections: number;
  maxOpenConnections: number;
  /** Per second since the origin's reset: the most requests in flight and connections open in that second. */
  inFlightPerSecond: number[];
  openPerSecond: number[];
  /** The concurrency bound over the delays served (slow origin only). */
  bound: Bound | null;
  /** seconds / bound.simulatedSeconds. */
  vsBound: number | null;
  peakRssMb: number;
  cpuSeconds: number | null;
  exitCode: number | null;
  reported?: Record<string, unknown>;
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
  /** Requests in flight each tool was asked for. */
  concurrency: number;
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
  units: { mb: string; rss: string; inRun: string };
  /** The default concurrency (W7's is in its WorkloadInfo, each run's in its ToolRun). */
  concurrency: number;
  workloads: WorkloadInfo[];
  runs: ToolRun[];
  scale: ScaleRun | null;
  /** W0: start-up, one image (unpinned and pinned runs). */
  startup?: StartupRun[];
  /** W8 and W12. */
  plugins?: PluginRun[];
  /** W9, politeness (bench/lib/polite.ts). */
  polite?: PoliteRun[];
  /** The --pin pass: origin and tool on separate cores, several alternating rounds (absent without --pin). */
  pinned?: { rounds: number; runs: ToolRun[]; plugins: PluginRun[]; note?: string };
  skipped: Skipped[];
  targets: TargetCheck[];
  totalSeconds: number;
}

export const MB = 1024 * 1024;
