import type { EventEmitter } from 'node:events';
import type { ImageRecord } from './download.ts';
import type { AddStats, Counts } from '../storage/state.ts';
import type { EngineEvents, FailureEvent, Progress } from './types.ts';

const HOST = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#]+)/i;

/**
 * A run's counts, kept from what each step changed (never by counting the store's tables while the run goes on:
 * that made ingesting a big list O(N²)), and its events: each change is counted and announced in one place.
 */
export class Tally {
  readonly counts = { downloaded: 0, bytes: 0, retries: 0, skipped: 0, done: 0, failed: 0, total: 0, pagesFailed: 0 };
  ingesting = false;
  private started = Date.now();
  /** Images saved and failed in this run, by host (for the summary's hosts that backed off). */
  readonly byHost = new Map<string, { images: number; failed: number }>();

  constructor(private readonly events: EventEmitter<EngineEvents>) {}

  /** Starts the clock, from what the store already holds (images saved by earlier runs count as skipped). */
  start(before: Counts, pagesFailed: number): void {
    this.started = Date.now();
    Object.assign(this.counts, { skipped: before.done, done: before.done, failed: before.failed, total: before.total, pagesFailed });
  }

  get elapsedMs(): number {
    return Date.now() - this.started;
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
    this.forHost(record.url, 'images');
    this.events.emit('saved', record);
  }

  failed(failure: FailureEvent): void {
    if (failure.page) this.counts.pagesFailed++;
    else {
      this.counts.failed++;
      this.forHost(failure.url, 'failed');
    }
    this.events.emit('failed', failure);
  }

  private forHost(url: string, key: 'images' | 'failed'): void {
    // The host as URL.host gives it for a stored (normalized) URL, without parsing the whole URL per image.
    const host = HOST.exec(url)?.[1];
    if (!host) return;
    const counts = this.byHost.get(host);
    if (counts) counts[key]++;
    else this.byHost.set(host, { images: key === 'images' ? 1 : 0, failed: key === 'failed' ? 1 : 0 });
  }

  retried(info: EngineEvents['retry'][0]): void {
    this.counts.retries++;
    this.events.emit('retry', info);
  }
}
