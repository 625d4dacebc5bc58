import fs from 'node:fs';
import path from 'node:path';
import { openSqlite, type SqlDatabase, type SqlStatement } from './sqlite.ts';
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
}

export interface FailureRecord {
  url: string;
  code: ReasonCode;
  status: number | null;
  message: string;
  /** The stack behind an `internal` or `plugin_error` failure (absent otherwise). */
  stack?: string;
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

/**
 * The durable state of one run: the images to fetch with their outcome, and the Crawlee request queue.
 * One SQLite file in WAL mode. Every image's outcome is written before (or, for the final `done`, right after)
 * its file is renamed into place, so a kill -9 at any moment loses nothing and refetches only what was in flight.
 * This is the one interface the engine talks to; a shared store (Redis) for many machines would be another
 * implementation of it.
 */
export class RunStore {
  readonly dir: string;
  readonly db: SqlDatabase;
  private readonly q: Record<string, SqlStatement>;

  private constructor(dir: string, db: SqlDatabase) {
    this.dir = dir;
    this.db = db;
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        status INTEGER NOT NULL DEFAULT 0,
        name TEXT, info TEXT, file TEXT, record TEXT,
        code TEXT, http_status INTEGER, message TEXT,
        recorded INTEGER NOT NULL DEFAULT 0,
        done_at INTEGER
      );
      CREATE UNIQUE INDEX IF NOT EXISTS items_file ON items(file COLLATE NOCASE) WHERE file IS NOT NULL;
      CREATE INDEX IF NOT EXISTS items_open ON items(status) WHERE status IN (0, 1, 3);
      CREATE TABLE IF NOT EXISTS requests (
        ord INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        unique_key TEXT NOT NULL UNIQUE,
        json TEXT NOT NULL,
        handled INTEGER NOT NULL DEFAULT 0,
        lock_until INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS requests_head ON requests(ord) WHERE handled = 0;
    `);
    // `requested` is 0 for an image known only from an earlier run's metadata file in the same folder: it
    // keeps its name and is not fetched again if asked for, but counts nowhere until this run's inputs list it.
    const columns = db.prepare('PRAGMA table_info(items)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'requested')) db.exec('ALTER TABLE items ADD COLUMN requested INTEGER NOT NULL DEFAULT 1');
    // `stack` of an `internal` or `plugin_error` failure, for the failure report.
    if (!columns.some((c) => c.name === 'stack')) db.exec('ALTER TABLE items ADD COLUMN stack TEXT');
    const sql = {
      getMeta: 'SELECT value FROM meta WHERE key = ?',
      setMeta: 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      maxItem: 'SELECT coalesce(max(id), 0) AS id FROM items',
      addItem: 'INSERT OR IGNORE INTO items (url, name, info) VALUES (?, ?, ?)',
      request: 'UPDATE items SET requested = 1 WHERE url = ? AND requested = 0',
      addFailedItem: 'INSERT OR IGNORE INTO items (url, status, code, http_status, message, stack) VALUES (?, 3, ?, ?, ?, ?)',
      addDoneItem: "INSERT OR IGNORE INTO items (url, status, file, record, recorded, done_at, requested) VALUES (?, 2, ?, ?, 1, 0, 0)",
      pendingInRange: 'SELECT id, url, name, info FROM items WHERE id BETWEEN ? AND ? AND status = 0 ORDER BY id',
      claim: 'UPDATE items SET status = 1, file = ?, record = ? WHERE id = ? AND status = 0',
      unclaim: 'UPDATE items SET status = 0, file = NULL, record = NULL WHERE id = ?',
      fileTaken: 'SELECT 1 AS x FROM items WHERE file = ? COLLATE NOCASE',
      done: 'UPDATE items SET status = 2, recorded = 1, done_at = ? WHERE id = ?',
      fail: 'UPDATE items SET status = 3, code = ?, http_status = ?, message = ?, stack = ? WHERE id = ?',
      failures: 'SELECT url, code, http_status AS status, message, stack FROM items WHERE status = 3 ORDER BY id',
      counts: 'SELECT status, count(*) AS n FROM items WHERE requested = 1 GROUP BY status',
      saving: 'SELECT id, url, file, record FROM items WHERE status = 1',
      retryFailed: 'UPDATE items SET status = 0, code = NULL, http_status = NULL, message = NULL WHERE status = 3',
      resetPending: 'UPDATE items SET status = 0, file = NULL, record = NULL WHERE id = ?',
      pendingIds: 'SELECT id FROM items WHERE status = 0 ORDER BY id',
      itemByUrl: 'SELECT id, status, file FROM items WHERE url = ?',
      adopt: 'UPDATE items SET status = 2, file = ?, record = ?, recorded = 1, done_at = ?, code = NULL, http_status = NULL, message = NULL WHERE id = ? AND status != 2',
      doneFiles: 'SELECT id, url, file, record FROM items WHERE status = 2 AND file IS NOT NULL AND id > ? ORDER BY id LIMIT ?',
      resetDone: 'UPDATE items SET status = 0, file = NULL, record = NULL, recorded = 0, done_at = NULL WHERE id = ? AND status = 2',
      doneRecords: 'SELECT id, url, record FROM items WHERE status = 2 AND record IS NOT NULL AND id > ? ORDER BY id LIMIT ?',
      pageCount: "SELECT count(*) AS n FROM requests WHERE unique_key NOT GLOB 'items:[0-9]*' AND unique_key NOT GLOB 'sweep-*'",
      // Crawlee queue
      reqByKey: 'SELECT id, handled FROM requests WHERE unique_key = ?',
      reqById: 'SELECT id, unique_key AS uniqueKey, json, handled FROM requests WHERE id = ?',
      reqInsert: 'INSERT INTO requests (ord, id, unique_key, json, handled) VALUES (?, ?, ?, ?, ?)',
      reqUpdate: 'UPDATE requests SET json = ?, handled = ?, lock_until = 0 WHERE id = ?',
      reqUpdateOrd: 'UPDATE requests SET json = ?, handled = ?, lock_until = 0, ord = ? WHERE id = ?',
      reqDelete: 'DELETE FROM requests WHERE id = ?',
      reqHead: 'SELECT id, unique_key AS uniqueKey, json FROM requests WHERE handled = 0 AND lock_until <= ? ORDER BY ord LIMIT ?',
      reqLock: 'UPDATE requests SET lock_until = ? WHERE id = ?',
      reqUnlock: 'UPDATE requests SET lock_until = 0 WHERE id = ?',
      reqUnlockFront: 'UPDATE requests SET lock_until = 0, ord = ? WHERE id = ?',
      reqLocked: 'SELECT 1 AS x FROM requests WHERE handled = 0 AND lock_until > ? LIMIT 1',
      reqCounts: 'SELECT count(*) AS total, coalesce(sum(handled), 0) AS handled FROM requests',
      reqMinMax: 'SELECT coalesce(min(ord), 0) AS lo, coalesce(max(ord), 0) AS hi FROM requests',
      reqClearLocks: 'UPDATE requests SET lock_until = 0 WHERE lock_until > 0',
    };
    this.q = Object.fromEntries(Object.entries(sql).map(([k, s]) => [k, db.prepare(s)]));
    const { lo, hi } = this.q.reqMinMax!.get() as { lo: number; hi: number };
    this.lowOrd = Math.min(lo, 0);
    this.highOrd = Math.max(hi, 0);
  }

  private lowOrd: number;
  private highOrd: number;

  /** Opens (creating if needed) the store in `dir`. */
  static async open(dir: string, options: { readonly?: boolean } = {}): Promise<RunStore> {
    const file = path.join(dir, 'state.sqlite');
    if (options.readonly && !fs.existsSync(file)) throw new Error(`No run state in ${dir}`);
    fs.mkdirSync(dir, { recursive: true });
    let db: SqlDatabase;
    try {
      db = await openSqlite(file);
      const check = db.prepare('PRAGMA quick_check').get() as { quick_check?: string } | undefined;
      if (check && check.quick_check !== 'ok') throw new Error(String(check.quick_check));
    } catch (error) {
      throw new Error(`The run state ${file} is damaged or unreadable (${(error as Error).message}). ` +
        'Move it aside or start over with --fresh.', { cause: error });
    }
    const store = new RunStore(dir, db);
    if (options.readonly) return store;
    // Only one process holds a run (see RunLock), so any lock left in the queue is stale: a crashed run
    // resumes at once instead of waiting locks out.
    store.q.reqClearLocks!.run();
    return store;
  }

  close(): void {
    this.db.close();
  }

  getMeta(key: string): string | undefined {
    return (this.q.getMeta!.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.q.setMeta!.run(key, value);
  }

  /**
   * Adds images; a URL already in the run is ignored (idempotent on resume). Returns the id range of the
   * ones that are new and pending, or undefined when none are.
   */
  addItems(
    items: Array<{ url: string; name?: string | null; info?: string | null; failure?: { code: ReasonCode; message: string; status?: number | null; stack?: string } }>,
    /** Filled in with what changed, so that callers can keep counts without scanning the table. */
    stats: AddStats = { added: 0, failed: 0, revived: 0 },
  ): { from: number; to: number } | undefined {
    return this.db.transaction(() => {
      const before = (this.q.maxItem!.get() as { id: number }).id;
      let added = 0;
      for (const item of items) {
        const res = item.failure
          ? this.q.addFailedItem!.run(item.url, item.failure.code, item.failure.status ?? null, item.failure.message.slice(0, 2000), item.failure.stack ?? null)
          : this.q.addItem!.run(item.url, item.name ?? null, item.info ?? null);
        if (res.changes === 0) stats.revived += Number(this.q.request!.run(item.url).changes);
        else if (item.failure) stats.failed++;
        added += Number(res.changes);
      }
      stats.added += added;
      if (added === 0) return undefined;
      const after = (this.q.maxItem!.get() as { id: number }).id;
      return { from: before + 1, to: after };
    });
  }

  /** Records images that an earlier run already saved into the output folder (found in its metadata file). */
  addDoneItems(items: Array<{ url: string; file: string; record: string }>): number {
    return this.db.transaction(() => {
      let n = 0;
      for (const item of items) n += Number(this.q.addDoneItem!.run(item.url, item.file, item.record).changes);
      return n;
    });
  }

  pendingInRange(from: number, to: number): Item[] {
    return this.q.pendingInRange!.all(from, to) as unknown as Item[];
  }

  /** True when a file name (case-insensitively) already belongs to an image of this run. */
  fileTaken(file: string): boolean {
    return this.q.fileTaken!.get(file) !== undefined;
  }

  /**
   * Claims `file` for item `id` and stores its record, before the file is renamed into place.
   * Returns false when another image already holds that name.
   */
  claim(id: number, file: string, record: string): boolean {
    try {
      return Number(this.q.claim!.run(file, record, id).changes) === 1;
    } catch (error) {
      if (/UNIQUE|constraint/i.test(String((error as Error).message))) return false;
      throw error;
    }
  }

  unclaim(id: number): void {
    this.q.unclaim!.run(id);
  }

  /**
   * Marks images done whose records are in the metadata file, and how long that file is now: both in one
   * transaction, so that after a crash the store knows which part of the file it has accounted for.
   */
  markDone(ids: number[], metadataBytes?: number): void {
    if (ids.length === 0 && metadataBytes === undefined) return;
    const now = Date.now();
    this.db.transaction(() => {
      for (const id of ids) this.q.done!.run(now, id);
      if (metadataBytes !== undefined) this.setMeta(META_METADATA_BYTES, String(metadataBytes));
    });
  }

  markFailed(id: number, failure: Omit<FailureRecord, 'url'>): void {
    this.q.fail!.run(failure.code, failure.status, failure.message.slice(0, 2000), failure.stack ?? null, id);
  }

  failures(): FailureRecord[] {
    const rows = this.q.failures!.all() as unknown as Array<Omit<FailureRecord, 'stack'> & { stack: string | null }>;
    // `stack` only where there is one, so the report's other lines keep their four keys.
    return rows.map(({ stack, ...failure }) => (stack === null ? failure : { ...failure, stack }));
  }

  /** Images that were being saved when a run stopped; the caller checks each file and settles it. */
  saving(): Array<{ id: number; url: string; file: string; record: string }> {
    return this.q.saving!.all() as unknown as Array<{ id: number; url: string; file: string; record: string }>;
  }

  resetPending(id: number): void {
    this.q.resetPending!.run(id);
  }

  pendingIds(): number[] {
    return (this.q.pendingIds!.all() as Array<{ id: number }>).map((r) => r.id);
  }

  /** An image by its URL (as stored: normalised, credentials redacted). */
  itemByUrl(url: string): { id: number; status: number; file: string | null } | undefined {
    return this.q.itemByUrl!.get(url) as { id: number; status: number; file: string | null } | undefined;
  }

  /**
   * Records as saved an image whose file and record were found in the output folder (a record the store lost in a
   * crash, or one written by an earlier run). False when another image holds that file name.
   */
  adopt(id: number, file: string, record: string): boolean {
    try {
      return Number(this.q.adopt!.run(file, record, Date.now(), id).changes) === 1;
    } catch (error) {
      if (/UNIQUE|constraint/i.test(String((error as Error).message))) return false;
      throw error;
    }
  }

  /** Saved images in id order, `limit` at a time after `afterId` (to check their files after a crash). */
  doneFiles(afterId: number, limit: number): Array<{ id: number; url: string; file: string; record: string | null }> {
    return this.q.doneFiles!.all(afterId, limit) as unknown as Array<{ id: number; url: string; file: string; record: string | null }>;
  }

  /** Saved images' records in id order, `limit` at a time after `afterId`. */
  doneRecords(afterId: number, limit: number): Array<{ id: number; url: string; record: string }> {
    return this.q.doneRecords!.all(afterId, limit) as unknown as Array<{ id: number; url: string; record: string }>;
  }

  /** A saved image whose file is gone (a power cut lost it) goes back to pending. */
  resetDone(id: number): void {
    this.q.resetDone!.run(id);
  }

  /** Plugin pages in the queue (handled or not): start pages and every page a handler found. */
  pageCount(): number {
    return Number((this.q.pageCount!.get() as { n: number }).n);
  }

  /** Puts every failed image back to pending; returns how many. */
  retryFailed(): number {
    return Number(this.q.retryFailed!.run().changes);
  }

  counts(): Counts {
    const c: Counts = { pending: 0, saving: 0, done: 0, failed: 0, total: 0 };
    for (const row of this.q.counts!.all() as Array<{ status: number; n: number }>) {
      if (row.status === Status.Saving) c.saving += row.n;
      if (row.status === Status.Done) c.done += row.n;
      else if (row.status === Status.Failed) c.failed += row.n;
      else c.pending += row.n;
      c.total += row.n;
    }
    return c;
  }

  // ---- Crawlee request queue storage ----

  requestByKey(uniqueKey: string): { id: string; handled: number } | undefined {
    return this.q.reqByKey!.get(uniqueKey) as { id: string; handled: number } | undefined;
  }

  requestById(id: string): StoredRequest | undefined {
    const row = this.q.reqById!.get(id) as { id: string; uniqueKey: string; json: string; handled: number } | undefined;
    return row && { ...row, handled: row.handled === 1 };
  }

  insertRequest(id: string, uniqueKey: string, json: string, handled: boolean, forefront: boolean): void {
    const ord = forefront ? --this.lowOrd : ++this.highOrd;
    this.q.reqInsert!.run(ord, id, uniqueKey, json, handled ? 1 : 0);
  }

  updateRequest(id: string, json: string, handled: boolean, forefront: boolean): void {
    if (forefront) this.q.reqUpdateOrd!.run(json, handled ? 1 : 0, --this.lowOrd, id);
    else this.q.reqUpdate!.run(json, handled ? 1 : 0, id);
  }

  deleteRequest(id: string): void {
    this.q.reqDelete!.run(id);
  }

  /** Lists and locks up to `limit` pending, unlocked requests in queue order. Cost is independent of handled count. */
  lockHead(limit: number, lockMs: number): Array<{ id: string; uniqueKey: string; json: string }> {
    const now = Date.now();
    return this.db.transaction(() => {
      const rows = this.q.reqHead!.all(now, limit) as Array<{ id: string; uniqueKey: string; json: string }>;
      for (const row of rows) this.q.reqLock!.run(now + lockMs, row.id);
      return rows;
    });
  }

  listHead(limit: number): Array<{ id: string; uniqueKey: string; json: string }> {
    return this.q.reqHead!.all(Number.MAX_SAFE_INTEGER, limit) as Array<{ id: string; uniqueKey: string; json: string }>;
  }

  prolongLock(id: string, lockMs: number): number {
    const until = Date.now() + lockMs;
    this.q.reqLock!.run(until, id);
    return until;
  }

  unlock(id: string, forefront: boolean): void {
    if (forefront) this.q.reqUnlockFront!.run(--this.lowOrd, id);
    else this.q.reqUnlock!.run(id);
  }

  hasLockedRequests(): boolean {
    return this.q.reqLocked!.get(Date.now()) !== undefined;
  }

  requestCounts(): { total: number; handled: number } {
    return this.q.reqCounts!.get() as { total: number; handled: number };
  }
}
