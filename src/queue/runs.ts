// `imgdl runs --queue`: the distributed runs in a Redis, with their shards and images, and the workers alive.
import { connect, keys, parseRedisUrl, PREFIX, QUEUE_NAME, WORKER_TTL_MS } from './redis.ts';
import { runProgress } from './coordinator.ts';

export interface QueueRunListing {
  run: string;
  outDir: string;
  createdAt: string;
  shards: number;
  done: number;
  active: number;
  /** Waiting, or delayed before a retry. */
  waiting: number;
  failed: number;
  /** Images saved by any worker (done shards, and shards in hand as last reported). */
  saved: number;
  /** Images that failed. */
  imagesFailed: number;
  urls: number;
  /** All shards done and merged into the run's metadata.jsonl. */
  merged: boolean;
}

export interface WorkerListing {
  name: string;
  host: string;
  pid: number;
  /** The shard in hand, if any. */
  run?: string;
  shard?: number;
  /** Milliseconds since it was last heard from. */
  seenMsAgo: number;
}

/** Every run in the Redis at `queue` (newest first) and the workers heard from in the last 15 s. */
export async function listQueueRuns(queue: string): Promise<{ runs: QueueRunListing[]; workers: WorkerListing[] }> {
  const redis = await connect(parseRedisUrl(queue), 'imgdl-runs');
  try {
    const names = await redis.zrevrange(keys.runs, 0, -1);
    const activeIds = await redis.lrange(`${PREFIX}:${QUEUE_NAME}:active`, 0, -1);
    const runs: QueueRunListing[] = [];
    for (const run of names) {
      const [meta, p] = await Promise.all([redis.hgetall(keys.run(run)), runProgress(redis, run, Date.now())]);
      const active = activeIds.filter((id) => id.startsWith(`${run}#`)).length;
      runs.push({
        run,
        outDir: meta['outDir'] ?? '?',
        createdAt: meta['createdAt'] ? new Date(Number(meta['createdAt'])).toISOString() : '',
        shards: p.shards,
        done: p.shardsDone,
        active,
        waiting: Math.max(0, p.shards - p.shardsDone - p.shardsFailed - active),
        failed: p.shardsFailed,
        saved: meta['merged'] === '1' ? Number(meta['saved'] ?? p.saved) : p.saved,
        imagesFailed: meta['merged'] === '1' ? Number(meta['failed'] ?? p.failed) : p.failed,
        urls: p.total,
        merged: meta['merged'] === '1',
      });
    }
    const now = Date.now();
    const alive = await redis.zrangebyscore(keys.workers, now - WORKER_TTL_MS, '+inf', 'WITHSCORES');
    const workers: WorkerListing[] = [];
    for (let i = 0; i < alive.length; i += 2) {
      const name = alive[i]!;
      const info = JSON.parse((await redis.get(keys.worker(name))) ?? '{}') as Partial<WorkerListing>;
      workers.push({
        name,
        host: info.host ?? name.split(':')[0]!,
        pid: info.pid ?? 0,
        ...(info.run !== undefined ? { run: info.run, shard: info.shard } : {}),
        seenMsAgo: now - Number(alive[i + 1]),
      });
    }
    return { runs, workers };
  } finally {
    redis.disconnect();
  }
}
