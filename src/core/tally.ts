import type { EventEmitter } from 'node:events';
import type { ImageRecord } from './download.ts';
import type { AddStats, Counts } from '../storage/state.ts';
import type { EngineEvents, FailureEvent, Progress } from './types.ts';

/**
 * A run's counts, kept from what each step changed (never by counting the store's tables while the run goes on:
 * that made ingesting a big list O(N²)), and its events: each change is counted and announced in one place.
 */
export class Tally {
  readonly counts = { downloaded: 0, bytes: 0, retries: 0, skipped: 0, done: 0, failed: 0, total: 0, pagesFailed: 0 };
  ingesting = false;
  /** When the run started (after recovery): images saved since are this run's. */
  startedAt = Date.now();

  constructor(private readonly events: EventEmitter<EngineEvents>) {}

  /** Starts the clock, from what the store already holds (images saved by earlier runs count as skipped). */
  start(before: Counts, pagesFailed: number): void {
    this.startedAt = Date.now();
    Object.assign(this.counts, { skipped: before.done, done: before.done, failed: before.failed, total: before.total, pagesFailed });
  }

  get elapsedMs(): number {
    return Date.now() - this.startedAt;
  }

  progress(): Progress {
    return { ...this.counts, elapsedMs: this.elapsedMs, ingesting: this.ingesting };
  }

  /** Images added: new ones, failed ones (a malformed URL), and ones an earlier run into the folder saved. */
  added(stats: AddStats, failures: FailureEvent[]): void {
    const c = this.counts;
    c.total += stats.added + stats.revived;
    c.failed += stats.failed;
    c.skipped += stats.revived;
    c.done += stats.revived;
    for (const f of failures) this.events.emit('failed', f);
  }

  saved(record: ImageRecord): void {
    this.counts.downloaded++;
    this.counts.done++;
    this.counts.bytes += record.bytes;
    this.events.emit('saved', record);
  }

  failed(failure: FailureEvent): void {
    if (failure.page) this.counts.pagesFailed++;
    else this.counts.failed++;
    this.events.emit('failed', failure);
  }

  retried(info: EngineEvents['retry'][0]): void {
    this.counts.retries++;
    this.events.emit('retry', info);
  }
}
