import { toDownloadError } from '../errors.ts';
import { diskFullCode } from '../storage/disk.ts';
import type { MetadataLog } from '../storage/metadata.ts';
import type { Item, RunStore } from '../storage/state.ts';
import { Cancelled, downloadItem, NameClaims, type DownloadContext, type FetchContext } from './download.ts';
import type { Tally } from './tally.ts';
import type { Dataset } from '../output/dataset.ts';

/**
 * The image lane of a run: downloads the pending images of a shard and settles each. The run's limit (`concurrency`,
 * shared with pages) is taken per attempt after the host's slot (attempt() in download.ts), never around a whole
 * image: images waiting for a paused or backing-off host, or sleeping before a retry, hold none of it. Each image is
 * settled: saved (its record goes to the metadata log, which marks it done), failed (recorded with its code),
 * or left pending (the run is stopping, or the disk is full).
 */
export class ImageLane {
  /** Images being downloaded now; a sweep shard never starts one twice. */
  private readonly inFlight = new Set<number>();
  private readonly ctx: DownloadContext;

  constructor(
    private readonly store: RunStore,
    fetch: FetchContext,
    folder: { outDir: string; tmpDir: string; stateDir: string; existing: Set<string>; output?: Dataset },
    private readonly metadata: MetadataLog,
    private readonly tally: Tally,
    /** Stops the run when `error` says the disk is full; true if it did. */
    private readonly stopIfDiskFull: (error: unknown, where: string) => boolean,
  ) {
    this.stateDir = folder.stateDir;
    this.outDir = folder.outDir;
    this.ctx = { ...fetch, store, outDir: folder.outDir, tmpDir: folder.tmpDir, claims: new NameClaims(store, folder.existing), output: folder.output, bodyInMemory: folder.output?.bodyInMemory };
    this.output = folder.output;
  }

  private readonly stateDir: string;
  private readonly output: Dataset | undefined;
  private readonly outDir: string;

  async shard(range: { from: number; to: number }): Promise<void> {
    const items = this.store.pendingInRange(range.from, range.to).filter((item) => !this.inFlight.has(item.id));
    for (const item of items) this.inFlight.add(item.id);
    await Promise.all(items.map((item) => this.one(item).finally(() => this.inFlight.delete(item.id))));
  }

  private async one(item: Item): Promise<void> {
    if (this.ctx.signal.aborted) return;
    try {
      const record = await downloadItem(item, this.ctx);
      this.metadata.append(item.id, record);
      this.tally.saved(record);
    } catch (error) {
      if (error instanceof Cancelled) return;
      // Nothing more can be written: the image stays pending for the run that continues once there is room.
      const where = diskFullCode((error as Error).cause) === 'SQLITE_FULL' ? this.stateDir : this.outDir;
      if (this.stopIfDiskFull(error, where)) return;
      // Anything but a DownloadError is a bug (`internal`, with its stack).
      const e = toDownloadError(error);
      this.store.markFailed(item.id, { code: e.code, status: e.status ?? null, message: e.message, stack: e.detail });
      this.output?.failed(item, { code: e.code, status: e.status ?? null, message: e.message });
      this.tally.failed({ url: item.url, code: e.code, status: e.status ?? null, message: e.message });
    }
  }
}
