// What a dataset run does between fetching an image and saving it: --dedupe, processing (src/process/image.ts), and
// the output layout (an OutputSink: files, or WebDataset tar shards). The engine makes one only when asked for any
// of these; a plain run saves as fetched (save() in src/core/download.ts).
import fs from 'node:fs';
import pLimit from 'p-limit';
import { DownloadError, UsageError, type ReasonCode } from '../errors.ts';
import { save, type DownloadContext, type Fetched, type ImageRecord } from '../core/download.ts';
import { FAILURES_FILE, METADATA_FILE, REPORT_FILE, STATS_FILE, type EngineOptions, type S3Spec } from '../core/types.ts';
import { loadSharp, processImage, type Processed, type Sharp } from '../process/image.ts';
import type { SavedCheck } from '../storage/metadata.ts';
import type { Item, RunStore } from '../storage/state.ts';
import { sampleFields } from './fields.ts';

/** Where saved images go: the folder (files) or tar shards (webdataset). */
export interface OutputSink {
  /** Saves one validated (and processed) image; resolves with its record once it is committed. Throws DownloadError. */
  save(item: Item, url: URL, fetched: Fetched, tmpPath: string, processed: Processed | undefined, ctx: DownloadContext): Promise<ImageRecord>;
  /** An image that failed (webdataset lists failures in its shard's index). */
  failed?(item: Item, failure: { code: ReasonCode; status: number | null; message: string }): void;
  /** An image not saved because its bytes were saved already (--dedupe), with the record pointing to the first. */
  duplicate?(item: Item, record: ImageRecord): void;
  /** Settles what a crash left (before the metadata file is reconciled with the store); `unclean`: the last run did not end cleanly. */
  recover?(unclean: boolean): Promise<void>;
  /** Names (lower-cased) a new image never takes, when the sink knows them (default: the folder's listing). */
  existingNames?(): Set<string>;
  /** Once the run's files are written (metadata.jsonl, failures.jsonl, stats.json, report.html): copies them where the images are. */
  publish?(): Promise<void>;
  /** How the metadata file's records are checked against what this layout wrote (default: files in the folder). */
  readonly check?: SavedCheck;
  /**
   * Saving takes as long as a download (an upload): at most --concurrency images are then between the start of
   * their download and the end of their save, so that images fetched faster than they are saved do not pile up
   * (and a crash fetches again at most that many).
   */
  readonly remote?: boolean;
  /** Writes what is buffered; `finished`: the run has nothing left to do (a last, partial shard is completed). */
  close(finished: boolean): Promise<void>;
}

/** --layout files: one file per image in the folder, as a plain run saves them. */
export class FilesSink implements OutputSink {
  constructor(private readonly keepOriginal: boolean) {}

  async save(item: Item, url: URL, fetched: Fetched, tmpPath: string, processed: Processed | undefined, ctx: DownloadContext): Promise<ImageRecord> {
    // A body kept in memory (for processing) goes to its temporary file only when it is what is saved, or kept.
    if (fetched.body !== undefined && (!processed?.output || this.keepOriginal)) await writeTmp(tmpPath, fetched.body);
    return save(item, url, fetched, tmpPath, ctx, processed ? { processed, keepOriginal: this.keepOriginal } : undefined);
  }

  async close(): Promise<void> {}
}

/**
 * --dedupe: the first image with given bytes (sha256 of the body as fetched) is saved; the others wait for its
 * outcome and, if it was saved, are recorded as its duplicates. Known from the store on open, so a resumed run
 * dedupes against what was saved before the interruption.
 */
export class Dedupe {
  private readonly firsts = new Map<string, ImageRecord | Promise<ImageRecord | undefined>>();

  /** Records of saved images, read from the store (a run resumed), in id order. */
  load(store: RunStore): void {
    for (let after = 0; ; ) {
      const rows = store.doneRecords(after, 5000);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      for (const row of rows) {
        try {
          const record = JSON.parse(row.record) as ImageRecord;
          const sha = record.original?.sha256 ?? record.sha256;
          if (record.duplicateOf === undefined && !this.firsts.has(sha)) this.firsts.set(sha, record);
        } catch {
          // A record that does not parse is not one to point to.
        }
      }
    }
  }

  /**
   * The record of the first image with these bytes, once it is saved; or, when this is the first (or the first
   * failed), undefined and `settle`, to be called with this image's record (or undefined if it failed).
   */
  async enter(sha256: string): Promise<{ first: ImageRecord } | { settle: (record: ImageRecord | undefined) => void }> {
    for (;;) {
      const known = this.firsts.get(sha256);
      if (known === undefined) break;
      const first = await known;
      if (first) return { first };
    }
    let settle!: (record: ImageRecord | undefined) => void;
    const pending = new Promise<ImageRecord | undefined>((resolve) => (settle = resolve));
    this.firsts.set(sha256, pending);
    return {
      settle: (record) => {
        if (record) this.firsts.set(sha256, record);
        else this.firsts.delete(sha256);
        settle(record);
      },
    };
  }
}

async function writeTmp(file: string, body: Buffer): Promise<void> {
  try {
    await fs.promises.writeFile(file, body);
  } catch (error) {
    throw new DownloadError('write_failed', `Could not write the temporary file: ${(error as Error).message}`, { cause: error });
  }
}

/** Bodies up to this size stay in memory when images are processed (sharp decodes them from there). */
const PROCESS_IN_MEMORY = 32 * 1024 * 1024;

/** The dataset steps of a run: dedupe, then processing, then the sink. */
export class Dataset {
  private readonly dedupe: Dedupe | undefined;

  constructor(
    private readonly options: EngineOptions,
    private readonly sharp: Sharp | undefined,
    readonly sink: OutputSink,
    private readonly store: RunStore,
  ) {
    this.dedupe = options.dedupe ? new Dedupe() : undefined;
    this.bodyInMemory = options.processing ? PROCESS_IN_MEMORY : undefined;
    // Processing is slower than downloading: without a bound, bodies fetched faster than they are resized would pile
    // up in memory (851 MB at W10). At most --concurrency images are between their download's start and the end of
    // their processing, so downloads keep pace with the cores.
    // An upload (sink.remote) is bounded the same way.
    const limit = options.processing || sink.remote ? pLimit(options.concurrency) : undefined;
    this.gate = limit ? (fn) => limit(fn) : (fn) => fn();
  }

  readonly gate: <T>(fn: () => Promise<T>) => Promise<T>;

  /** See FetchContext.bodyInMemory. */
  readonly bodyInMemory: number | undefined;

  get check(): SavedCheck | undefined {
    return this.sink.check;
  }

  async recover(unclean: boolean): Promise<void> {
    await this.sink.recover?.(unclean);
  }

  existingNames(): Set<string> | undefined {
    return this.sink.existingNames?.();
  }

  async publish(): Promise<void> {
    await this.sink.publish?.();
  }

  /** Called once the folder is reconciled with the store: what was saved before is known to --dedupe. */
  loadSaved(): void {
    this.dedupe?.load(this.store);
  }

  async save(item: Item, url: URL, fetched: Fetched, tmpPath: string, ctx: DownloadContext): Promise<ImageRecord> {
    let settle: ((record: ImageRecord | undefined) => void) | undefined;
    if (this.dedupe) {
      const entry = await this.dedupe.enter(fetched.sha256);
      if ('first' in entry) {
        await fs.promises.rm(tmpPath, { force: true }).catch(() => {});
        const record = duplicateRecord(item, fetched, entry.first);
        // Claimed without a file (the first has it): no longer pending, so no sweep fetches it again meanwhile.
        if (!this.store.claim(item.id, null, JSON.stringify(record))) throw new DownloadError('internal', `Could not record ${item.url} as a duplicate`);
        this.sink.duplicate?.(item, record);
        return record;
      }
      settle = entry.settle;
    }
    try {
      const spec = this.options.processing;
      const processed = spec ? await processImage(this.sharp!, fetched.body ?? tmpPath, spec) : undefined;
      const record = await this.sink.save(item, url, fetched, tmpPath, processed, ctx);
      settle?.(record);
      return record;
    } catch (error) {
      settle?.(undefined);
      throw error;
    }
  }

  failed(item: Item, failure: { code: ReasonCode; status: number | null; message: string }): void {
    this.sink.failed?.(item, failure);
  }

  close(finished: boolean): Promise<void> {
    return this.sink.close(finished);
  }
}

/**
 * The record of an image whose bytes were saved already: its own URL, key, caption and metadata; the first's
 * file and figures (so `file` holds exactly `sha256`), and `duplicateOf` the first's URL. It claims no file name:
 * the first has it.
 */
function duplicateRecord(item: Item, fetched: Fetched, first: ImageRecord): ImageRecord {
  const { metadata: _m, key: _k, caption: _c, url: _u, finalUrl: _f, ...figures } = first;
  const record: ImageRecord = { url: item.url, finalUrl: fetched.finalUrl.href, ...figures, duplicateOf: first.url };
  if (item.info) record.metadata = JSON.parse(item.info) as unknown;
  return Object.assign(record, sampleFields(item));
}

/**
 * For a run that asks for processing, --dedupe or another layout: loads what they need (sharp, tar-stream; a
 * UsageError when sharp is missing) and returns how to make its Dataset once the store is open. Undefined for a
 * plain run, which loads none of it.
 */
export async function datasetFactory(
  options: EngineOptions,
  outDir: string,
  tarShard?: number,
  s3?: S3Spec,
  signal?: AbortSignal,
): Promise<((store: RunStore) => Dataset) | undefined> {
  if (!s3 && !options.processing && !options.dedupe && options.layout === 'files') return undefined;
  if (s3 && options.layout === 'webdataset') {
    throw new UsageError('`layout` webdataset cannot write to an s3:// output yet: write the shards to a folder, then copy them (aws s3 sync)');
  }
  const sharp = options.processing ? await loadSharp() : undefined;
  const keepOriginal = options.processing?.keepOriginal ?? false;
  if (s3) {
    // The SDK is loaded, and the bucket probed (credentials, existence, a write), before anything is locked or fetched.
    const { S3Output, S3Sink } = await import('./s3.ts');
    const out = await S3Output.open(s3.target, options, s3.partSize === undefined ? {} : { partSize: s3.partSize });
    const runFiles = s3.runFiles ?? { prefix: '', names: [METADATA_FILE, FAILURES_FILE, STATS_FILE, REPORT_FILE] };
    return (store) => new Dataset(options, sharp, new S3Sink(out, store, outDir, keepOriginal, runFiles, { concurrency: options.concurrency, signal, ...(s3.checkpointMs === undefined ? {} : { checkpointMs: s3.checkpointMs }) }), store);
  }
  if (options.layout === 'webdataset') {
    const { WebDatasetSink } = await import('./webdataset.ts');
    const tar = await WebDatasetSink.load();
    return (store) => new Dataset(options, sharp, new WebDatasetSink(store, outDir, tarShard === undefined ? options.shardSize : Infinity, keepOriginal, tar, tarShard), store);
  }
  return (store) => new Dataset(options, sharp, new FilesSink(keepOriginal), store);
}
