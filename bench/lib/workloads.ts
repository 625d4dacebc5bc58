/** The workloads: what the origin serves and which URL list each tool gets. */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

export const SMALL_BYTES = 12 * 1024;
export const LARGE_BYTES = 5 * 1024 * 1024;
/** Requests in flight per tool (the CLI's default concurrency), on every workload but W7. */
export const CONCURRENCY = 64;
/** W7's concurrency: W2 again, eight times wider. */
export const HIGH_CONCURRENCY = 512;
/** The origin's latency per response on W2 and W7, ms. */
export const LATENCY_MS = 50;

export type WorkloadId = 'W1' | 'W2' | 'W3' | 'W4' | 'W5' | 'W6' | 'W7';

/** How the origin for a workload is started. */
export interface OriginSpec {
  bytes: number;
  latencyMs: number;
  ports: number;
  /** A uniformly random delay per answer (seeded by path), ms: the plugin workloads' slow origin (W12). */
  delay?: { minMs: number; maxMs: number; seed: number };
}

export interface Workload {
  id: WorkloadId;
  title: string;
  count: number;
  origin: OriginSpec;
  /** Requests in flight each tool is asked for (a tool with a fixed worker count keeps its own). */
  concurrency: number;
  /** W4 runs imgdl alone in the background-and-interrupt mode. */
  mode: 'throughput' | 'scale';
}

interface Sizes {
  W1: number;
  W2: number;
  W3: number;
  W4: number;
  W5: number;
  W6: number;
  W7: number;
}

// W6 is W1 ten times over, for imgdl alone: its CPU time per image should not grow with the size of the run.
// W7 is W2 at concurrency 512 (same origin process), with twice W2's URLs so that the run is not all ramp-up.
const FULL: Sizes = { W1: 20_000, W2: 5_000, W3: 200, W4: 1_000_000, W5: 20_000, W6: 200_000, W7: 10_000 };
const QUICK: Sizes = { W1: 2_000, W2: 1_000, W3: 20, W4: 100_000, W5: 2_000, W6: 20_000, W7: 2_000 };

export function workloads(quick: boolean): Workload[] {
  const n = quick ? QUICK : FULL;
  const small = (latencyMs: number, ports: number): OriginSpec => ({ bytes: SMALL_BYTES, latencyMs, ports });
  const c = CONCURRENCY;
  return [
    { id: 'W1', title: 'many small', count: n.W1, origin: small(0, 1), concurrency: c, mode: 'throughput' },
    { id: 'W2', title: 'latency', count: n.W2, origin: small(LATENCY_MS, 1), concurrency: c, mode: 'throughput' },
    {
      id: 'W3',
      title: 'large',
      count: n.W3,
      origin: { bytes: LARGE_BYTES, latencyMs: 0, ports: 1 },
      concurrency: c,
      mode: 'throughput',
    },
    { id: 'W4', title: 'scale', count: n.W4, origin: small(0, 1), concurrency: c, mode: 'scale' },
    { id: 'W5', title: 'many hosts', count: n.W5, origin: small(0, 50), concurrency: c, mode: 'throughput' },
    { id: 'W6', title: 'many small ×10', count: n.W6, origin: small(0, 1), concurrency: c, mode: 'throughput' },
    {
      id: 'W7',
      title: 'latency ×512',
      count: n.W7,
      origin: small(LATENCY_MS, 1),
      concurrency: HIGH_CONCURRENCY,
      mode: 'throughput',
    },
  ];
}

/** Same bytes, latency and port count: one origin process can serve both workloads. */
export function originKey(spec: OriginSpec): string {
  const delay = spec.delay ? `/delay ${spec.delay.minMs}-${spec.delay.maxMs} seed ${spec.delay.seed}` : '';
  return `${spec.bytes}/${spec.latencyMs}/${spec.ports}${delay}`;
}

/** The origin's command-line arguments for a spec. */
export function originArgs(spec: OriginSpec): string[] {
  const args = ['--bytes', String(spec.bytes), '--latency', String(spec.latencyMs), '--ports', String(spec.ports)];
  if (spec.delay) args.push('--delay', `${spec.delay.minMs}-${spec.delay.maxMs}`, '--seed', String(spec.delay.seed));
  return args;
}

/** Writes `count` unique URLs, spread round-robin over `ports`, one per line. */
export async function writeUrlList(path: string, ports: number[], count: number): Promise<void> {
  const out = createWriteStream(path);
  const batch: string[] = [];
  for (let i = 0; i < count; i++) {
    batch.push(`http://127.0.0.1:${ports[i % ports.length]}/img/${i}.png\n`);
    if (batch.length === 10_000 || i === count - 1) {
      if (!out.write(batch.join(''))) await once(out, 'drain');
      batch.length = 0;
    }
  }
  out.end();
  await once(out, 'finish');
}
