/**
 * A counting semaphore with a per-key limit and a per-key pause (a host that answered 429 with Retry-After
 * is left alone until then). Written by hand because p-limit has no keyed limits and no pause, and this
 * sits on the hot path of every download.
 */
export class KeyedLimiter {
  private readonly slots = new Map<string, { active: number; waiters: Array<() => void>; pausedUntil: number; timer?: NodeJS.Timeout }>();

  constructor(private readonly limit: number) {}

  async acquire(key: string, signal?: AbortSignal): Promise<void> {
    const slot = this.slot(key);
    if (slot.active < this.limit && slot.pausedUntil <= Date.now()) {
      slot.active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = slot.waiters.indexOf(go);
        if (i >= 0) slot.waiters.splice(i, 1);
        reject(signal!.reason);
      };
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      slot.waiters.push(go);
    });
  }

  release(key: string): void {
    const slot = this.slot(key);
    slot.active--;
    this.drain(key);
  }

  /** Stops handing out slots for `key` for `ms` milliseconds. */
  pause(key: string, ms: number): void {
    const slot = this.slot(key);
    const until = Date.now() + ms;
    if (until <= slot.pausedUntil) return;
    slot.pausedUntil = until;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      this.drain(key);
    }, ms);
    slot.timer.unref();
  }

  private drain(key: string): void {
    const slot = this.slot(key);
    while (slot.active < this.limit && slot.waiters.length > 0 && slot.pausedUntil <= Date.now()) {
      slot.active++;
      slot.waiters.shift()!();
    }
    if (slot.active === 0 && slot.waiters.length === 0 && !slot.timer) this.slots.delete(key);
  }

  private slot(key: string) {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { active: 0, waiters: [], pausedUntil: 0 };
      this.slots.set(key, slot);
    }
    return slot;
  }

  close(): void {
    for (const slot of this.slots.values()) if (slot.timer) clearTimeout(slot.timer);
  }
}
