// --per-host and --rate held across every worker of a distributed run: BullMQ's per-group limits are a paid
// feature, so each host's slots are a sorted-set semaphore in Redis, taken and given back with a Lua script.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { KeyedLimiter, type Outcome } from '../http/limits.ts';
import { keys } from './redis.ts';

/**
 * Takes a slot of a host: drops leases past their expiry (a dead worker's slots come back), then grants one when
 * fewer than the limit are held and, with a rate, when the host's next request time has come. Redis's own clock
 * decides, so the workers' clocks need not agree.
 * KEYS: the host's slots (zset member → lease expiry), the host's next request time.
 * ARGV: limit, member, lease ms, interval ms (0: no rate).
 * Returns 0 when granted, else the milliseconds worth waiting before trying again (-1: a slot must come free).
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then return -1 end
if interval > 0 then
  local nextAt = tonumber(redis.call('GET', KEYS[2]) or '0')
  if nextAt > now then return nextAt - now end
  redis.call('SET', KEYS[2], tostring(now + interval), 'PX', math.floor(interval) + 1000)
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 0
`;

/** Polling a full host: first wait, and the longest. */
const POLL_MIN_MS = 10;
const POLL_MAX_MS = 200;

/**
 * The engine's per-host limiter (adaptive limits, Retry-After pauses: see KeyedLimiter) with, under each local slot,
 * a slot of the run's shared one in Redis: at most `perHost` requests in flight to a host across all workers, spaced
 * by `rate` across all workers. A worker's waiters for one host take the shared slot in turn (one of them asks
 * Redis at a time). A slot is a lease: a worker that dies holding one gives it back when the lease runs out.
 */
export class RedisHostLimiter extends KeyedLimiter {
  private readonly spacing: number;
  private seq = 0;
  /** Per host, the last shared acquire asked for by this worker: the next one waits for it. */
  private readonly turns = new Map<string, Promise<void>>();
  /** Per host, the members of the shared slots this worker holds, in the order taken. */
  private readonly held = new Map<string, string[]>();
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly run: string,
    options: {
      /** This worker's ceiling per host (its adaptive limit starts there). */
      local: number;
      /** Most requests in flight to one host across all workers (--per-host); Infinity: only the rate is shared. */
      shared: number;
      /** Most requests per second to one host across all workers (--rate). */
      rate?: number;
      /** Who holds the slots (the worker's name). */
      holder: string;
      /** How long a slot lasts when its holder is gone: longer than any one attempt. */
      leaseMs: number;
    },
  ) {
    super(options.local);
    this.perHost = Number.isFinite(options.shared) ? options.shared : 1e9;
    this.spacing = options.rate !== undefined && options.rate > 0 ? 1000 / options.rate : 0;
    this.holder = options.holder;
    this.leaseMs = options.leaseMs;
    if (!('imgdlAcquire' in redis)) redis.defineCommand('imgdlAcquire', { numberOfKeys: 2, lua: ACQUIRE });
  }

  private readonly perHost: number;

  private readonly holder: string;
  private readonly leaseMs: number;

  override async acquire(key: string, signal?: AbortSignal): Promise<number> {
    const ticket = await super.acquire(key, signal);
    try {
      await this.shared(key, signal);
    } catch (error) {
      super.release(key, 'neutral', ticket);
      throw error;
    }
    return ticket;
  }

  override release(key: string, outcome: Outcome = 'neutral', ticket = -1): void {
    const members = this.held.get(key);
    const member = members?.shift();
    if (members && members.length === 0) this.held.delete(key);
    if (member !== undefined) this.redis.zrem(keys.host(this.run, key), member).catch(() => {});
    super.release(key, outcome, ticket);
  }

  /** Waits for this worker's turn at `key`, then for a shared slot. */
  private shared(key: string, signal?: AbortSignal): Promise<void> {
    const before = this.turns.get(key) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(() => this.take(key, signal));
    const settled = mine.catch(() => {});
    this.turns.set(key, settled);
    void settled.then(() => {
      if (this.turns.get(key) === settled) this.turns.delete(key);
    });
    return mine;
  }

  private async take(key: string, signal?: AbortSignal): Promise<void> {
    const member = `${this.holder}:${++this.seq}`;
    let wait = POLL_MIN_MS;
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) throw new Error('the limiter is closed');
      const redis = this.redis as Redis & { imgdlAcquire(k1: string, k2: string, limit: number, member: string, lease: number, interval: number): Promise<number> };
      const answer = Number(await redis.imgdlAcquire(keys.host(this.run, key), `${keys.host(this.run, key)}:next`, this.perHost, member, this.leaseMs, this.spacing));
      if (answer === 0) {
        const members = this.held.get(key) ?? [];
        members.push(member);
        this.held.set(key, members);
        return;
      }
      const ms = answer > 0 ? answer : wait;
      wait = Math.min(wait * 2, POLL_MAX_MS);
      await sleep(ms, undefined, signal ? { signal } : undefined);
    }
  }

  /** Gives back every shared slot this worker still holds. */
  async shutdown(): Promise<void> {
    this.closed = true;
    super.close();
    const pipeline = this.redis.multi();
    for (const [key, members] of this.held) if (members.length > 0) pipeline.zrem(keys.host(this.run, key), ...members);
    this.held.clear();
    await pipeline.exec().catch(() => {});
  }
}
