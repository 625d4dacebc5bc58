/**
 * How an attempt at a host ended, as far as that host's limit is concerned: `good` (an answer that shows no strain:
 * a 2xx, a 404, a refused body), `rejected` (429 or 503: the host turned the request away), `trouble` (a timeout or
 * a broken connection), `neutral` (nothing learnt: the run stopping, a local error).
 */
export type Outcome = 'good' | 'rejected' | 'trouble' | 'neutral';

/** A host whose limit is below the ceiling, or that is paused (Retry-After). */
export interface HostLimit {
  host: string;
  /** Requests in flight allowed now (1 … the ceiling, --per-host). */
  limit: number;
  /** The lowest it went in the run. */
  lowest: number;
  /** Times it was lowered. */
  backoffs: number;
  /** Milliseconds left of a Retry-After pause, 0 when none. */
  pausedMs: number;
}

/** Least time between probes past the level where a host last showed strain, and the most it backs off to. */
const PROBE_MS = 10_000;
const MAX_PROBE_MS = 160_000;

/** An acquire() waiting for a slot: `go` grants it; `fail` rejects it when its signal aborts. */
interface Waiter {
  go: () => void;
  fail: (reason: unknown) => void;
  signal: AbortSignal | undefined;
}

interface Slot {
  active: number;
  waiters: Waiter[];
  pausedUntil: number;
  timer?: NodeJS.Timeout;
  timerAt: number;
  /** The host's limit now: starts at the ceiling, lowered on strain, grown back on good answers. */
  limit: number;
  lowest: number;
  backoffs: number;
  /** Good answers in a row. */
  streak: number;
  /** Bumped at each halving: a timeout of a request sent before it does not halve again (TCP's rule). */
  epoch: number;
  /** The limit at which the host last showed strain: growing past it again is a probe, made rarely. */
  strainedAt: number;
  /** Wait between probes past `strainedAt`: doubles each time a probe is turned away. */
  probeMs: number;
  changedAt: number;
  /** With a rate: when the next request may go. */
  nextAt: number;
  /** When the host last answered anything (any status), or was first asked. */
  answeredAt: number;
  /** Attempts in a row that ended in trouble (timeouts, refused or broken connections), and the last one's code. */
  troubles: number;
  troubleCode: string;
  /** Down (see KeyedLimiter's `downAfterMs`): a probe is in flight; when the last one started. */
  probing: boolean;
  probedAt: number;
}

/** Attempts in a row that must fail, besides the silence, before a host is taken as down. */
const DOWN_AFTER_TROUBLES = 3;

/**
 * Thrown by acquire() for a host taken as down (see KeyedLimiter's `downAfterMs`): the attempt is not made. `code`
 * is the reason code of the host's last failed attempt (`timeout`, `network`).
 */
export class HostDown extends Error {
  override name = 'HostDown';
  constructor(
    readonly host: string,
    readonly code: string,
    silentMs: number,
    troubles: number,
  ) {
    super(`Not tried: ${host} has answered nothing for ${Math.round(silentMs / 1000)} s and its last ${troubles} attempts failed (${code}); it is taken as down for now (--retry-failed tries again later)`);
  }
}

/**
 * Per-host limits: a counting semaphore per key whose limit adapts to how the host answers, a per-key pause (a host
 * that answered 429 with Retry-After is left alone until then) and an optional rate (a token bucket of one: requests
 * evenly spaced). Written by hand because p-limit has no keyed limits, no pause and no adaptation, and this sits on
 * the hot path of every download.
 *
 * The adaptation (see docs/architecture.md, "Politeness"): a host starts at the ceiling (--per-host) — most hosts
 * take it, and a ramp would slow every one of them to find the few that do not. A 429 or 503 lowers its limit by one:
 * when L requests are in flight and the host takes C of them, its L − C refusals bring the limit to C in one round
 * (halving once per round would take log2(L/C) rounds, each a Retry-After pause; halving per refusal would collapse
 * to 1). A timeout or broken connection halves it, once per round: silence does not say how many got through. Never
 * below 1. While answers are good the limit grows by one per `limit` good answers in a row (about one more per round
 * trip) up to just below the level where the host last showed strain; going past that level is a probe, made at most
 * every 10 s, and every 10, 20, … 160 s while the host keeps refusing it. A probe that holds forgets the level.
 */
export class KeyedLimiter {
  private readonly slots = new Map<string, Slot>();
  /** Keys whose limit is below the ceiling or that are paused: what progress shows. */
  private readonly strained = new Set<string>();
  private readonly interval: number;

  constructor(
    /** The ceiling of every host's limit (--per-host). */
    private readonly ceiling: number,
    options: { rate?: number; adaptive?: boolean; downAfterMs?: number } = {},
  ) {
    this.interval = options.rate !== undefined && options.rate > 0 ? 1000 / options.rate : 0;
    this.adaptive = options.adaptive ?? true;
    this.downAfterMs = options.downAfterMs ?? 0;
  }

  /**
   * A host that has answered nothing (no status at all) for this long while its last DOWN_AFTER_TROUBLES attempts or
   * more failed with trouble is down: the images waiting for it fail at once (HostDown) instead of each waiting out
   * its attempts one slot at a time (a host's limit is 1 by then), and so do those that come later, but for one probe
   * at a time, at most one per `downAfterMs`: the first answer brings the host back. 0: never. The engine sets it to
   * the attempt time limit (--timeout), so a run ends within its attempts of its last normal response whatever a
   * host does.
   */
  private readonly downAfterMs: number;

  private readonly adaptive: boolean;

  /** Waits for a slot of `key`'s limit; returns a ticket to give back to release(). */
  async acquire(key: string, signal?: AbortSignal): Promise<number> {
    const slot = this.slot(key);
    const now = Date.now();
    if (this.isDown(slot, now)) {
      if (slot.probing || now - slot.probedAt < this.downAfterMs) throw this.downError(key, slot, now);
      // One probe, past the limit and the queue: whether the host is back.
      slot.probing = true;
      slot.probedAt = now;
      this.grant(slot, now);
      return slot.epoch;
    }
    if (slot.active < slot.limit && slot.waiters.length === 0 && slot.pausedUntil <= now && slot.nextAt <= now) {
      this.grant(slot, now);
      return slot.epoch;
    }
    await new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      // One abort listener per signal for all its waiters, not one each: a run keeps thousands of images waiting for
      // their hosts, and adding and removing a listener on a busy AbortSignal costs ~50 µs (its list is searched).
      if (signal && !this.watched.has(signal)) {
        this.watched.add(signal);
        signal.addEventListener('abort', () => this.abortWaiters(signal), { once: true });
      }
      slot.waiters.push({ go: resolve, fail: reject, signal });
      this.drain(key);
    });
    return slot.epoch;
  }

  private readonly watched = new WeakSet<AbortSignal>();

  /** Rejects every waiter of `signal`, with its reason. */
  private abortWaiters(signal: AbortSignal): void {
    for (const [key, slot] of this.slots) {
      const waiting = slot.waiters;
      slot.waiters = waiting.filter((w) => w.signal !== signal);
      for (const w of waiting) if (w.signal === signal) w.fail(signal.reason);
      this.drain(key);
    }
  }

  /**
   * Gives back a slot taken with ticket `ticket`, saying how the attempt ended (which adapts the host's limit): for a
   * failure, its reason `code`, and whether the host `answered` (any status: a 500 is an answer, a timeout is not).
   */
  release(key: string, outcome: Outcome = 'neutral', ticket = -1, code = 'timeout', answered = outcome === 'good' || outcome === 'rejected'): void {
    const slot = this.slot(key);
    slot.active--;
    const now = Date.now();
    if (answered) {
      slot.answeredAt = now;
      slot.troubles = 0;
      slot.probing = false;
    } else if (outcome === 'trouble') {
      slot.troubles++;
      slot.troubleCode = code;
      slot.probing = false;
    }
    if (this.adaptive) this.adapt(key, slot, outcome, ticket);
    if (this.isDown(slot, now) && slot.waiters.length > 0) {
      const error = this.downError(key, slot, now);
      for (const w of slot.waiters.splice(0)) w.fail(error);
    }
    this.drain(key);
  }

  private isDown(slot: Slot, now: number): boolean {
    return this.downAfterMs > 0 && slot.troubles >= DOWN_AFTER_TROUBLES && now - slot.answeredAt >= this.downAfterMs;
  }

  private downError(key: string, slot: Slot, now: number): HostDown {
    return new HostDown(key, slot.troubleCode, now - slot.answeredAt, slot.troubles);
  }

  /** Stops handing out slots for `key` for `ms` milliseconds. */
  pause(key: string, ms: number): void {
    const slot = this.slot(key);
    const until = Date.now() + ms;
    if (until <= slot.pausedUntil) return;
    slot.pausedUntil = until;
    this.strained.add(key);
    this.arm(key, slot, until);
  }

  /** The limit of `key` now (the ceiling for a host not seen or never strained). */
  limitOf(key: string): number {
    return this.slots.get(key)?.limit ?? this.ceiling;
  }

  /** Hosts backing off now (limit below the ceiling, or paused), most constrained first; at most `max`. */
  backingOff(max = 5): { count: number; hosts: HostLimit[] } {
    const now = Date.now();
    const hosts: HostLimit[] = [];
    for (const key of this.strained) {
      const slot = this.slots.get(key);
      if (!slot || (slot.limit >= this.ceiling && slot.pausedUntil <= now)) {
        this.strained.delete(key);
        continue;
      }
      hosts.push(this.state(key, slot, now));
    }
    hosts.sort((a, b) => b.pausedMs - a.pausedMs || a.limit - b.limit);
    return { count: hosts.length, hosts: hosts.slice(0, max) };
  }

  /** Every host whose limit was lowered in the run, most backoffs first; at most `max`. */
  backedOff(max = 10): HostLimit[] {
    const now = Date.now();
    const hosts: HostLimit[] = [];
    for (const [key, slot] of this.slots) if (slot.backoffs > 0) hosts.push(this.state(key, slot, now));
    return hosts.sort((a, b) => b.backoffs - a.backoffs).slice(0, max);
  }

  private state(host: string, slot: Slot, now: number): HostLimit {
    return { host, limit: slot.limit, lowest: slot.lowest, backoffs: slot.backoffs, pausedMs: Math.max(0, slot.pausedUntil - now) };
  }

  private adapt(key: string, slot: Slot, outcome: Outcome, ticket: number): void {
    const now = Date.now();
    if (outcome === 'good') {
      slot.streak++;
      if (slot.limit >= this.ceiling || slot.streak < slot.limit) return;
      if (slot.limit >= slot.strainedAt) {
        // A probe past the level that strained the host held for a round: that level is forgotten.
        slot.strainedAt = Infinity;
        slot.probeMs = PROBE_MS;
      }
      if (slot.limit + 1 >= slot.strainedAt && now - slot.changedAt < slot.probeMs) return;
      slot.limit++;
      slot.streak = 0;
      slot.changedAt = now;
      return;
    }
    if (outcome === 'rejected') {
      if (slot.limit >= slot.strainedAt) slot.probeMs = Math.min(slot.probeMs * 2, MAX_PROBE_MS);
      slot.strainedAt = slot.limit;
      this.lower(key, slot, Math.max(1, slot.limit - 1), now);
    } else if (outcome === 'trouble' && ticket >= slot.epoch) {
      if (slot.limit >= slot.strainedAt) slot.probeMs = Math.min(slot.probeMs * 2, MAX_PROBE_MS);
      slot.strainedAt = slot.limit;
      slot.epoch++;
      this.lower(key, slot, Math.max(1, Math.floor(slot.limit / 2)), now);
    }
  }

  private lower(key: string, slot: Slot, limit: number, now: number): void {
    slot.streak = 0;
    slot.changedAt = now;
    if (limit === slot.limit) return;
    slot.limit = limit;
    slot.lowest = Math.min(slot.lowest, limit);
    slot.backoffs++;
    this.strained.add(key);
  }

  private grant(slot: Slot, now: number): void {
    slot.active++;
    if (this.interval > 0) slot.nextAt = Math.max(slot.nextAt, now) + this.interval;
  }

  private drain(key: string): void {
    const slot = this.slots.get(key);
    if (!slot) return;
    const now = Date.now();
    while (slot.active < slot.limit && slot.waiters.length > 0) {
      const at = Math.max(slot.pausedUntil, slot.nextAt);
      if (at > now) {
        this.arm(key, slot, at);
        break;
      }
      this.grant(slot, now);
      slot.waiters.shift()!.go();
    }
    // A host's slot is kept while it holds anything learnt (a lowered limit, backoffs for the summary, a rate's
    // next time); an idle host that taught nothing is forgotten, so a run over a million hosts stays small.
    if (slot.active === 0 && slot.waiters.length === 0 && !slot.timer && slot.backoffs === 0 && slot.nextAt <= now && slot.troubles === 0) this.slots.delete(key);
  }

  /** Drains `key` again at `at` (the end of a pause, or the rate's next time), unless an earlier wake is set. */
  private arm(key: string, slot: Slot, at: number): void {
    if (slot.timer && slot.timerAt <= at) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timerAt = at;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      this.drain(key);
    }, Math.max(0, at - Date.now()));
    slot.timer.unref();
  }

  private slot(key: string): Slot {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = {
        active: 0, waiters: [], pausedUntil: 0, timerAt: 0,
        limit: this.ceiling, lowest: this.ceiling, backoffs: 0, streak: 0, epoch: 0,
        strainedAt: Infinity, probeMs: PROBE_MS, changedAt: 0, nextAt: 0,
        answeredAt: Date.now(), troubles: 0, troubleCode: 'timeout', probing: false, probedAt: 0,
      };
      this.slots.set(key, slot);
    }
    return slot;
  }

  close(): void {
    for (const slot of this.slots.values()) if (slot.timer) clearTimeout(slot.timer);
  }
}
