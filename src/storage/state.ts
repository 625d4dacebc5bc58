import type { ReasonCode } from '../errors.ts';

/** Meta key: how many bytes of the output folder's metadata file this store has accounted for. */
export const META_METADATA_BYTES = 'metadata_bytes';
/** Meta key: the fingerprint of the inputs once all of them were read (committed with the last batch). */
export const META_INGESTED = 'ingested';
/** Meta key: '1' while a process has the run open; still '1' on open means the last one did not end cleanly. */
export const META_OPEN = 'open';

/** An image's state in the run. `Saving`: name claimed and record written, file being renamed into place. */
export const Status = { Pending: 0, Saving: 1, Done: 2, Failed: 3 } as const;

/** One image to fetch. */
export interface Item {
  id: number;
  url: string;
  /** A file name asked for by a plugin (still made safe by the core). */
  name: string | null;
  /** Plugin metadata carried into the record, as JSON. */
  info: string | null;
  /** Headers to fetch it with (a plugin's), as JSON; absent when none. */
  headers?: string;
  /** An input table's row: `{"key","caption"}` as JSON, merged into its record; absent for other images. */
  fields?: string;
  /** The site's own id of the image (a plugin's `key`); absent when none. */
  key?: string;
  /** Where a plugin found it (FoundOn as JSON), kept for a name template; absent when none. */
  found?: string;
}

export interface FailureRecord {
  url: string;
  code: ReasonCode;
  status: number | null;
  message: string;
  /** The stack behind an `internal` or `plugin_error` failure (absent otherwise). */
  stack?: string;
  /** An input table's row: its key. */
  key?: string;
  /** An input table's row: its caption. */
  caption?: string;
}

/** What one addItems call changed: new rows (of which `failed` were added as failures), and images known from an
 * earlier run in the same folder that the inputs now ask for (`revived`, already done). */
export interface AddStats {
  added: number;
  failed: number;
  revived: number;
}

export interface Counts {
  pending: number;
  /** Of `pending`: being saved now (name claimed, file being renamed into place). */
  saving: number;
  done: number;
  failed: number;
  total: number;
}

/** A queued Crawlee request as stored: its JSON and its place in the queue. */
export interface StoredRequest {
  id: string;
  uniqueKey: string;
  json: string;
  handled: boolean;
}

/** A page whose fetch or handler failed (kept apart from images: it is not one). */
export interface PageFailure extends FailureRecord {
  /** The queue's key of the page (`label:url`), by which --retry-failed queues it again. */
  uniqueKey: string;
  label: string;
}

/** An image row as recovery sees it. */
export interface ImageRow {
  id: number;
  url: string;
  /** Null for an image with no file of its own (a --dedupe duplicate). */
  file: string | null;
  record: string;
}

/** An image to add: pending, or already failed (a malformed URL) with its failure. */
export interface NewItem {
  url: string;
  name?: string | null;
  info?: string | null;
  /** Headers to fetch it with, as JSON. */
  headers?: string | null;
  /** An input table's row (see Item.fields); a row that could not be used also has `input`, its URL text. */
  fields?: string | null;
  /** The site's own id of the image. */
  key?: string | null;
  /** Where a plugin found it, as JSON. */
  found?: string | null;
  /** Its key is in the --archive: added as saved (with no file, never fetched), counted in `revived`. */
  archived?: boolean;
  failure?: Omit<FailureRecord, 'url' | 'status'> & { status?: number | null };
}

/**
 * The images of a run and what became of each: pending, being saved (name claimed, record written, file being put in
 * place), saved, or failed. Every image's outcome is written before (or, for the final `done`, right after) its file
 * is put in place, so a kill -9 at any moment loses nothing and refetches only what was in flight.
 */
export interface ImageState {
  /**
   * Adds images; a URL already in the run is ignored (idempotent on resume). Returns the id range of the ones that
   * are new and pending, or undefined when none are. `stats` is filled in with what changed.
   */
  addItems(items: NewItem[], stats?: AddStats): { from: number; to: number } | undefined;
  /** Records images that an earlier run already saved into the output folder (found in its metadata file). */
  addDoneItems(items: Array<{ url: string; file: string; record: string }>): number;
  pendingInRange(from: number, to: number): Item[];
  /** True when an image with this key (a plugin's `key`) is in the run and has not failed. */
  keyKnown(key: string): boolean;
  pendingIds(): number[];
  /** True when a file name (case-insensitively) already belongs to an image of this run. */
  fileTaken(file: string): boolean;
  /**
   * Claims `file` for item `id` and stores its record, before the file is put in place; false when the name is taken.
   * `null`: an image saved without a file of its own (a --dedupe duplicate, whose record points to the first's).
   */
  claim(id: number, file: string | null, record: string): boolean;
  unclaim(id: number): void;
  /** Marks images done whose records are in the metadata file, with that file's length now, in one transaction. */
  markDone(ids: number[], metadataBytes?: number): void;
  markFailed(id: number, failure: Omit<FailureRecord, 'url'>): void;
  failures(): FailureRecord[];
  /** Images that were being saved when a run stopped; the caller checks each file and settles it. */
  saving(): ImageRow[];
  resetPending(id: number): void;
  /** An image by its URL (as stored: normalised, credentials redacted). */
  itemByUrl(url: string): { id: number; status: number; file: string | null } | undefined;
  /** Records as saved an image whose file and record were found in the folder; false when the name is another's. */
  adopt(id: number, file: string, record: string): boolean;
  /** Saved images in id order, `limit` at a time after `afterId` (to check their files after a crash). */
  doneFiles(afterId: number, limit: number): Array<{ id: number; url: string; file: string; record: string | null }>;
  /** Saved images' records in id order, `limit` at a time after `afterId`. */
  doneRecords(afterId: number, limit: number): Array<{ id: number; url: string; record: string }>;
  /** A saved image whose file is gone (a power cut lost it) goes back to pending. */
  resetDone(id: number): void;
  /**
   * Of the images at `host` (as URL.host gives it, port included; http and https): those saved since `since` (ms)
   * and those failed. Asked at the end of a run for the few hosts that backed off, so that no count per host is
   * kept while a run over a million hosts goes on.
   */
  hostCounts(host: string, since: number): { images: number; failed: number };
  /** Puts every failed image back to pending (but input table rows that could not be used); returns how many. */
  retryFailed(): number;
  counts(): Counts;
  /** When the first and the last image of the run were settled (saved or failed), in ms; undefined when none was. */
  settledSpan(): { first: number; last: number } | undefined;
  /**
   * Images saved and failed, and bytes saved, per `bucketMs` from `from` (bucket n covers from + n·bucketMs), only
   * the buckets with some; for stats.json's throughput over time, asked once at the end of a run.
   */
  timeline(from: number, bucketMs: number): Array<{ bucket: number; images: number; failed: number; bytes: number }>;
  /** Bytes of every image the run saved (from their records). */
  savedBytes(): number;
}

/** Pages that failed, kept apart from images. */
export interface PageState {
  recordPageFailure(failure: PageFailure): void;
  pageFailures(): PageFailure[];
  /** Forgets every page failure and returns their queue keys, for the queue to take them again. */
  takePageFailures(): PageFailure[];
}

/** Where Crawlee's request queue is kept (see SqliteRequestQueueClient). */
export interface RequestStore {
  requestByKey(uniqueKey: string): { id: string; handled: number } | undefined;
  requestById(id: string): StoredRequest | undefined;
  insertRequest(id: string, uniqueKey: string, json: string, handled: boolean, forefront: boolean): void;
  updateRequest(id: string, json: string, handled: boolean, forefront: boolean): void;
  deleteRequest(id: string): void;
  /** Lists and locks up to `limit` pending, unlocked requests in queue order; cost independent of handled count. */
  lockHead(limit: number, lockMs: number): Array<{ id: string; uniqueKey: string; json: string }>;
  listHead(limit: number): Array<{ id: string; uniqueKey: string; json: string }>;
  prolongLock(id: string, lockMs: number): number;
  unlock(id: string, forefront: boolean): void;
  hasLockedRequests(): boolean;
  requestCounts(): { total: number; handled: number };
  /** Plugin pages in the queue (handled or not): start pages and every page a handler found. */
  pageCount(): number;
  /** Queues a handled request again (a failed page, with --retry-failed); false when there is no such request. */
  requeue(uniqueKey: string): boolean;
}

/**
 * The durable state of one run: its images, its failed pages, Crawlee's request queue and a few marks (meta), all
 * committed together where a step needs it (`transaction`). The engine talks to this interface only; the SQLite
 * implementation (sqlite-store.ts) is one file in WAL mode; a store shared by many machines would be another.
 */
export interface RunStore extends ImageState, PageState, RequestStore {
  readonly dir: string;
  /** Runs `fn` so that all it writes is committed together, or nothing is (a throw rolls back). Nested calls join. */
  transaction<T>(fn: () => T): T;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  close(): void;
}

export interface OpenStoreOptions {
  /** Only read (`imgdl runs`): fails when there is no state, and leaves the queue's locks as they are. */
  readonly?: boolean;
}

/** Opens the run store in `dir` (creating it unless `readonly`). */
export const RunStore = {
  async open(dir: string, options: OpenStoreOptions = {}): Promise<RunStore> {
    const { SqliteRunStore } = await import('./sqlite-store.ts');
    return SqliteRunStore.open(dir, options);
  },
};
