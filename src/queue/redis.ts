// Where a distributed run lives in Redis, and connecting to it. BullMQ (and ioredis, which it brings) are loaded with
// a dynamic import only when a queue is used, so `imgdl get` without --queue and the library on Bun or Deno never
// load them.
import type { Redis, RedisOptions } from 'ioredis';
import { UsageError } from '../errors.ts';

/** The BullMQ queue every run's shards go through (keys `imgdl:shards:*`). */
export const QUEUE_NAME = 'shards';
/** The prefix of every key imgdl writes in Redis. */
export const PREFIX = 'imgdl';
/** The folder, in a distributed run's output folder, that holds one small local run per shard. */
export const SHARDS_DIR = '.imgdl-shards';

/** How long a worker's hold on a shard lasts without being renewed (BullMQ lockDuration); a dead worker's shard is
 * retaken after about this long plus the stalled check. */
export const DEFAULT_LOCK_MS = 30_000;
/** A worker not heard from for this long is no longer counted as alive. */
export const WORKER_TTL_MS = 15_000;
export const HEARTBEAT_MS = 5_000;
/** Attempts of a shard that fails (an error in the shard itself, not a worker dying: that is a stall). */
export const SHARD_ATTEMPTS = 5;
/** Stalls (its worker died or lost Redis) a shard may go through before BullMQ gives up on it: many, since each is
 * survivable (the next worker skips what is saved). */
export const MAX_STALLS = 1000;

/** The Redis keys of a run (`imgdl:run:<id>…`) and of the workers. */
export const keys = {
  runs: `${PREFIX}:runs`,
  run: (run: string) => `${PREFIX}:run:${run}`,
  /** shard → its result (JSON ShardResult), once done. */
  done: (run: string) => `${PREFIX}:run:${run}:done`,
  /** shard → why it failed for good. */
  failed: (run: string) => `${PREFIX}:run:${run}:failed`,
  /** shard → progress of a shard being worked on (JSON LiveShard). */
  live: (run: string) => `${PREFIX}:run:${run}:live`,
  /** `<shard> <worker>` → when: the shards' folders a worker has open (or is waiting to open); the coordinator merges
   * and removes them only once none is left (see claimShard). */
  open: (run: string) => `${PREFIX}:run:${run}:open`,
  workers: `${PREFIX}:workers`,
  /** Runs whose coordinator is still adding shards (run → until when, in ms, renewed while it does). */
  cutting: `${PREFIX}:cutting`,
  worker: (id: string) => `${PREFIX}:worker:${id}`,
  /** A shared per-host limiter's keys (see limiter.ts). */
  host: (run: string, host: string) => `${PREFIX}:run:${run}:host:${host}`,
};

/** A shard job's id: the run and the shard's number, so adding the same shard again adds nothing. */
export function jobId(run: string, shard: number): string {
  return `${run}#${shard}`;
}

/** What a worker records for a shard once it is done: counts over the shard's whole state, whoever saved them. */
export interface ShardResult {
  saved: number;
  failed: number;
  /** URLs in the shard. */
  urls: number;
  /** The worker that finished it (host:pid). */
  by: string;
  at: number;
}

/** A shard being worked on, as its worker reports it every few seconds. */
export interface LiveShard {
  saved: number;
  failed: number;
  by: string;
  at: number;
}

/** `redis://[user:password@]host:port/db` (or `rediss://` for TLS), checked; the password never shown. */
export function parseRedisUrl(value: unknown): URL {
  if (typeof value !== 'string' || !URL.canParse(value)) throw new UsageError(`Expected \`queue\` to be a Redis URL like redis://host:6379/0, got ${JSON.stringify(value)}`);
  const url = new URL(value);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new UsageError(`Expected \`queue\` to be a Redis URL like redis://host:6379/0, got ${JSON.stringify(shownUrl(url))}`);
  }
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new UsageError(`Expected \`queue\`'s database to be a number (redis://host:6379/0), got ${JSON.stringify(db)}`);
  return url;
}

/** The URL as shown: its password as `***`. */
export function shownUrl(url: URL): string {
  if (!url.password) return url.href;
  const copy = new URL(url.href);
  copy.password = '***';
  return copy.href;
}

/** Options for ioredis from a redis:// URL: what BullMQ's workers need (no per-command retry limit: a command waits
 * for the connection to come back), with reconnects every 0.2 s to 2 s for ever. */
export function redisOptions(url: URL): RedisOptions {
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 6379,
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}

/** A new connection, once it answers PING; a UsageError (one line) when Redis cannot be reached within 5 s. */
export async function connect(url: URL, name = 'imgdl'): Promise<Redis> {
  const { Redis } = await import('ioredis');
  const probe = new Redis({ ...redisOptions(url), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000, connectionName: name });
  // The socket's own error (ECONNREFUSED, ENOTFOUND, NOAUTH…) says more than the "Connection is closed" that follows.
  let cause: Error | undefined;
  probe.on('error', (error: Error) => (cause ??= error));
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    probe.disconnect();
    throw new UsageError(`Cannot reach Redis at ${shownUrl(url)}: ${(cause ?? (error as Error)).message.split('\n')[0]}`);
  }
  probe.disconnect();
  const redis = new Redis({ ...redisOptions(url), connectionName: name });
  // Errors while the connection is down are retried by ioredis; they must not crash the process.
  redis.on('error', () => {});
  return redis;
}

/** `host:pid`: who a worker is. */
export function workerName(host: string, pid: number): string {
  return `${host}:${pid}`;
}

/**
 * Registers a worker's use of a shard's folder (`keys.open`), unless the run is being merged (its coordinator set
 * `merging` in the run's hash): one script, so a worker either registers before the coordinator looks, and is waited
 * for, or sees the mark and leaves the folder alone. True when registered.
 */
export async function claimShard(redis: Redis, run: string, entry: string): Promise<boolean> {
  const answer = await redis.eval(CLAIM_SCRIPT, 2, keys.run(run), keys.open(run), entry, String(Date.now()));
  return Number(answer) === 1;
}

const CLAIM_SCRIPT = `
if redis.call('hget', KEYS[1], 'merging') == '1' or redis.call('hget', KEYS[1], 'merged') == '1' then return 0 end
redis.call('hset', KEYS[2], ARGV[1], ARGV[2])
return 1
`;

/** `<shard> <worker>`: a field of `keys.open`. */
export function openEntry(shard: number, worker: string): string {
  return `${shard} ${worker}`;
}
