import type { ReasonCode } from '../errors.ts';
import type { Counts, FailureRecord, RunStore } from '../storage/state.ts';

/** `stats.json`, written in the output folder at the end of every run (and rewritten by each resume: whole run). */
export interface RunStats {
  /** The run's name. */
  run: string;
  /** When this file was written (ISO 8601). */
  generatedAt: string;
  /** Images the run was asked for, by outcome (over every session of the run, not only the last). */
  images: { total: number; saved: number; failed: number; pending: number };
  /** saved / (saved + failed), 0..1; null while nothing is settled. */
  successRate: number | null;
  /** Bytes of every image saved by the run. */
  bytes: number;
  /** The session that wrote this file (the last one): what it downloaded and how fast. */
  session: { downloaded: number; bytes: number; seconds: number; imagesPerSecond: number; interrupted: boolean };
  failures: {
    /** Every line of failures.jsonl (images, and plugin pages), by reason code. */
    byCode: Partial<Record<ReasonCode, number>>;
    /** A few URLs per code, as examples (URLs are as recorded: passwords shown as `***`). */
    examples: Partial<Record<ReasonCode, string[]>>;
    /** Hosts with failures, most failures first (at most MAX_HOSTS), with their saved images and codes. */
    byHost: HostStats[];
    /** How many hosts had failures (byHost lists the first MAX_HOSTS). */
    hosts: number;
  };
  /** Plugin runs: pages that failed. */
  pagesFailed?: number;
  /**
   * Images saved, failed and bytes saved per bucket of `bucketSeconds` from `start` (`t` is the bucket's start in
   * seconds after `start`); buckets with nothing settled are left out. The bucket grows (1, 2, 5, 10, 30 s, 1 min…)
   * so that a run of any length has at most MAX_BUCKETS of them.
   */
  throughput: { start: string | null; bucketSeconds: number; buckets: Array<{ t: number; images: number; bytes: number; failed: number }> };
}

export interface HostStats {
  host: string;
  failed: number;
  saved: number;
  byCode: Partial<Record<ReasonCode, number>>;
  examples: string[];
}

/** Most hosts listed under failures.byHost. */
export const MAX_HOSTS = 50;
/** Most example URLs per code and per host. */
export const MAX_EXAMPLES = 3;
/** Most throughput buckets. */
export const MAX_BUCKETS = 600;
const BUCKET_SECONDS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

/** What the engine knows of the session that ends. */
export interface SessionFigures {
  run: string;
  counts: Counts;
  downloaded: number;
  bytes: number;
  seconds: number;
  interrupted: boolean;
  pagesFailed: number;
}

/** The host of a recorded URL (`host:port`), or `(none)` for text that is not a URL. */
function hostOf(url: string): string {
  try {
    return new URL(url).host || '(none)';
  } catch {
    return '(none)';
  }
}

/** The run's statistics from its store, and its failure lines (as failures.jsonl has them). */
export function runStats(store: RunStore, failures: readonly FailureRecord[], session: SessionFigures): RunStats {
  const { counts } = session;
  const byCode: Partial<Record<ReasonCode, number>> = {};
  const examples: Partial<Record<ReasonCode, string[]>> = {};
  const hosts = new Map<string, { failed: number; byCode: Partial<Record<ReasonCode, number>>; examples: string[] }>();
  for (const f of failures) {
    byCode[f.code] = (byCode[f.code] ?? 0) + 1;
    const list = (examples[f.code] ??= []);
    if (list.length < MAX_EXAMPLES) list.push(f.url);
    const host = hostOf(f.url);
    let h = hosts.get(host);
    if (!h) hosts.set(host, (h = { failed: 0, byCode: {}, examples: [] }));
    h.failed++;
    h.byCode[f.code] = (h.byCode[f.code] ?? 0) + 1;
    if (h.examples.length < MAX_EXAMPLES) h.examples.push(f.url);
  }
  const byHost: HostStats[] = [...hosts]
    .sort((a, b) => b[1].failed - a[1].failed || (a[0] < b[0] ? -1 : 1))
    .slice(0, MAX_HOSTS)
    .map(([host, h]) => ({ host, failed: h.failed, saved: host === '(none)' ? 0 : store.hostCounts(host, 0).images, byCode: h.byCode, examples: h.examples }));
  const settled = counts.done + counts.failed;
  const seconds = session.seconds;
  const stats: RunStats = {
    run: session.run,
    generatedAt: new Date().toISOString(),
    images: { total: counts.total, saved: counts.done, failed: counts.failed, pending: counts.pending },
    successRate: settled > 0 ? Math.round((counts.done / settled) * 10_000) / 10_000 : null,
    bytes: store.savedBytes(),
    session: {
      downloaded: session.downloaded,
      bytes: session.bytes,
      seconds: Math.round(seconds * 1000) / 1000,
      imagesPerSecond: seconds > 0 ? Math.round((session.downloaded / seconds) * 10) / 10 : 0,
      interrupted: session.interrupted,
    },
    failures: { byCode, examples, byHost, hosts: hosts.size },
    throughput: throughput(store),
  };
  if (session.pagesFailed > 0) stats.pagesFailed = session.pagesFailed;
  return stats;
}

function throughput(store: RunStore): RunStats['throughput'] {
  const span = store.settledSpan();
  if (!span) return { start: null, bucketSeconds: 1, buckets: [] };
  const seconds = (span.last - span.first) / 1000;
  const bucketSeconds = BUCKET_SECONDS.find((s) => seconds / s < MAX_BUCKETS) ?? Math.ceil(seconds / MAX_BUCKETS);
  // Buckets start on a whole second, so a resumed run's buckets line up with the first session's.
  const start = Math.floor(span.first / 1000) * 1000;
  const buckets = store.timeline(start, bucketSeconds * 1000).map((b) => ({ t: b.bucket * bucketSeconds, images: b.images, bytes: b.bytes, failed: b.failed }));
  return { start: new Date(start).toISOString(), bucketSeconds, buckets };
}
