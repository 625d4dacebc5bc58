import fs from 'node:fs';
import path from 'node:path';
import { NoSqliteDriver, openSqlite, type SqlDatabase, type SqlStatement } from './sqlite.ts';
import {
  META_METADATA_BYTES,
  Status,
  type AddStats,
  type Counts,
  type FailureRecord,
  type ImageRow,
  type Item,
  type NewItem,
  type OpenStoreOptions,
  type PageFailure,
  type RunStore,
  type StoredRequest,
} from './state.ts';

const { Pending, Saving, Done, Failed } = Status;

const SCHEMA = `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  PRAGMA busy_timeout = 5000;
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    status INTEGER NOT NULL DEFAULT ${Pending},
    name TEXT, info TEXT, file TEXT, record TEXT,
    code TEXT, http_status INTEGER, message TEXT,
    recorded INTEGER NOT NULL DEFAULT 0,
    done_at INTEGER
  );
  CREATE UNIQUE INDEX IF NOT EXISTS items_file ON items(file COLLATE NOCASE) WHERE file IS NOT NULL;
  CREATE INDEX IF NOT EXISTS items_open ON items(status) WHERE status IN (${Pending}, ${Saving}, ${Failed});
  CREATE TABLE IF NOT EXISTS requests (
    ord INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    unique_key TEXT NOT NULL UNIQUE,
    json TEXT NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0,
    lock_until INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX IF NOT EXISTS requests_head ON requests(ord) WHERE handled = 0;
  CREATE TABLE IF NOT EXISTS page_failures (
    unique_key TEXT PRIMARY KEY,
    url TEXT NOT NULL, label TEXT NOT NULL,
    code TEXT NOT NULL, http_status INTEGER, message TEXT NOT NULL, stack TEXT
  );
`;

/** Columns added after the first release, each with why; added when an older state file is opened. */
const ADDED_COLUMNS: Array<[column: string, sql: string]> = [
  // 0 for an image known only from an earlier run's metadata file in the same folder: it keeps its name and is not
  // fetched again if asked for, but counts nowhere until this run's inputs list it.
  ['requested', 'ALTER TABLE items ADD COLUMN requested INTEGER NOT NULL DEFAULT 1'],
  // The stack of an `internal` or `plugin_error` failure, for the failure report.
  ['stack', 'ALTER TABLE items ADD COLUMN stack TEXT'],
  // Headers a plugin gave for the image (JSON), sent when it is fetched.
  ['headers', 'ALTER TABLE items ADD COLUMN headers TEXT'],
  // An input table's row (JSON: its `key` and `caption`; for a row that could not be used, `input`, the URL text it
  // had), so a resumed run writes the same record and failure line without reading the table again.
  ['fields', 'ALTER TABLE items ADD COLUMN fields TEXT'],
  // The site's own id of the image (a plugin's `key`, e.g. `flickr:12345`): for --archive, and for handlers asking
  // whether an item is known (--update).
  ['key', 'ALTER TABLE items ADD COLUMN key TEXT'],
  // Where a plugin found the image (page URL and title, label, position), as JSON, for a --name template.
  ['found', 'ALTER TABLE items ADD COLUMN found TEXT'],
];

/** Shard requests carry these keys (see the engine's crawl); every other request is a plugin page. */
const NOT_A_PAGE = "unique_key NOT GLOB 'items:[0-9]*' AND unique_key NOT GLOB 'sweep-*'";

const SQL = {
  getMeta: 'SELECT value FROM meta WHERE key = ?',
  setMeta: 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  maxItem: 'SELECT coalesce(max(id), 0) AS id FROM items',
  addItem: 'INSERT OR IGNORE INTO items (url, name, info, headers, fields, key, found) VALUES (?, ?, ?, ?, ?, ?, ?)',
  // An image whose key the --archive has: in the run as saved (not fetched), with no file; it counts as skipped.
  addArchivedItem: `INSERT OR IGNORE INTO items (url, status, key, recorded, done_at) VALUES (?, ${Done}, ?, 1, 0)`,
  keyKnown: `SELECT 1 AS x FROM items WHERE key = ? AND status != ${Failed} LIMIT 1`,
  request: 'UPDATE items SET requested = 1 WHERE url = ? AND requested = 0',
  addFailedItem: `INSERT OR IGNORE INTO items (url, status, code, http_status, message, stack, fields) VALUES (?, ${Failed}, ?, ?, ?, ?, ?)`,
  addDoneItem: `INSERT OR IGNORE INTO items (url, status, file, record, recorded, done_at, requested) VALUES (?, ${Done}, ?, ?, 1, 0, 0)`,
  pendingInRange: `SELECT id, url, name, info, headers, fields, key, found FROM items WHERE id BETWEEN ? AND ? AND status = ${Pending} ORDER BY id`,
  claim: `UPDATE items SET status = ${Saving}, file = ?, record = ? WHERE id = ? AND status = ${Pending}`,
  unclaim: `UPDATE items SET status = ${Pending}, file = NULL, record = NULL WHERE id = ?`,
  fileTaken: 'SELECT 1 AS x FROM items WHERE file = ? COLLATE NOCASE',
  done: `UPDATE items SET status = ${Done}, recorded = 1, done_at = ? WHERE id = ?`,
  fail: `UPDATE items SET status = ${Failed}, code = ?, http_status = ?, message = ?, stack = ?, done_at = ? WHERE id = ?`,
  failures: `SELECT url, code, http_status AS status, message, stack, fields FROM items WHERE status = ${Failed} ORDER BY id`,
  counts: 'SELECT status, count(*) AS n FROM items WHERE requested = 1 GROUP BY status',
  saving: `SELECT id, url, file, record FROM items WHERE status = ${Saving}`,
  // A table row that could not be used (no URL, unreadable) can never be fetched: it stays failed.
  retryFailed: `UPDATE items SET status = ${Pending}, code = NULL, http_status = NULL, message = NULL, stack = NULL WHERE status = ${Failed} ` +
    `AND (fields IS NULL OR fields NOT LIKE '{"input":%')`,
  resetPending: `UPDATE items SET status = ${Pending}, file = NULL, record = NULL WHERE id = ?`,
  pendingIds: `SELECT id FROM items WHERE status = ${Pending} ORDER BY id`,
  itemByUrl: 'SELECT id, status, file FROM items WHERE url = ?',
  // A host's URLs are two ranges of the url index: 'http://host/' up to 'http://host0' ('0' follows '/'), and https.
  hostCounts: `SELECT coalesce(sum(status = ${Done} AND done_at >= ?), 0) AS images, coalesce(sum(status = ${Failed}), 0) AS failed FROM items ` +
    'WHERE requested = 1 AND ((url >= ? AND url < ?) OR (url >= ? AND url < ?))',
  adopt: `UPDATE items SET status = ${Done}, file = ?, record = ?, recorded = 1, done_at = ?, code = NULL, http_status = NULL, message = NULL WHERE id = ? AND status != ${Done}`,
  doneFiles: `SELECT id, url, file, record FROM items WHERE status = ${Done} AND file IS NOT NULL AND id > ? ORDER BY id LIMIT ?`,
  resetDone: `UPDATE items SET status = ${Pending}, file = NULL, record = NULL, recorded = 0, done_at = NULL WHERE id = ? AND status = ${Done}`,
  doneRecords: `SELECT id, url, record FROM items WHERE status = ${Done} AND record IS NOT NULL AND id > ? ORDER BY id LIMIT ?`,
  // Statistics at the end of a run: when images were settled (saved or failed), and the bytes saved.
  settledSpan: `SELECT min(done_at) AS first, max(done_at) AS last FROM items WHERE status IN (${Done}, ${Failed}) AND done_at > 0 AND requested = 1`,
  timeline: `SELECT CAST((done_at - ?) / ? AS INTEGER) AS bucket, coalesce(sum(status = ${Done}), 0) AS images, coalesce(sum(status = ${Failed}), 0) AS failed, ` +
    `coalesce(sum(CASE WHEN status = ${Done} THEN json_extract(record, '$.bytes') END), 0) AS bytes ` +
    `FROM items WHERE status IN (${Done}, ${Failed}) AND done_at > 0 AND requested = 1 GROUP BY bucket ORDER BY bucket`,
  savedBytes: `SELECT coalesce(sum(json_extract(record, '$.bytes')), 0) AS bytes FROM items WHERE status = ${Done} AND requested = 1`,
  // Pages that failed
  pageFail: 'INSERT INTO page_failures (unique_key, url, label, code, http_status, message, stack) VALUES (?, ?, ?, ?, ?, ?, ?) ' +
    'ON CONFLICT(unique_key) DO UPDATE SET code = excluded.code, http_status = excluded.http_status, message = excluded.message, stack = excluded.stack',
  pageFailures: 'SELECT unique_key AS uniqueKey, url, label, code, http_status AS status, message, stack FROM page_failures ORDER BY rowid',
  clearPageFailures: 'DELETE FROM page_failures',
  // Crawlee's queue
  pageCount: `SELECT count(*) AS n FROM requests WHERE ${NOT_A_PAGE}`,
  reqByKey: 'SELECT id, handled FROM requests WHERE unique_key = ?',
  reqById: 'SELECT id, unique_key AS uniqueKey, json, handled FROM requests WHERE id = ?',
  reqInsert: 'INSERT INTO requests (ord, id, unique_key, json, handled) VALUES (?, ?, ?, ?, ?)',
  reqUpdate: 'UPDATE requests SET json = ?, handled = ? WHERE id = ?',
  reqUpdateOrd: 'UPDATE requests SET json = ?, handled = ?, ord = ? WHERE id = ?',
  reqDelete: 'DELETE FROM requests WHERE id = ?',
  reqHead: 'SELECT id, unique_key AS uniqueKey, json FROM requests WHERE handled = 0 ORDER BY ord LIMIT ?',
  reqToFront: 'UPDATE requests SET ord = ? WHERE id = ?',
  reqCounts: 'SELECT count(*) AS total, coalesce(sum(handled), 0) AS handled FROM requests',
  reqMinMax: 'SELECT coalesce(min(ord), 0) AS lo, coalesce(max(ord), 0) AS hi FROM requests',
} as const;

type Statements = { readonly [K in keyof typeof SQL]: SqlStatement };

function prepareAll(db: SqlDatabase): Statements {
  return Object.fromEntries(Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)])) as unknown as Statements;
}

/** A uniqueness violation (the file name index): the caller tries another name. */
function isConstraint(error: unknown): boolean {
  return /UNIQUE|constraint/i.test(String((error as Error)?.message));
}

/** The run store in one SQLite file in WAL mode (see RunStore). */
export class SqliteRunStore implements RunStore {
  private readonly q: Statements;
  /** The queue's ends: a request added to the front takes lowOrd - 1, one added to the back highOrd + 1. */
  private lowOrd: number;
  private highOrd: number;

  private constructor(
    readonly dir: string,
    private readonly db: SqlDatabase,
  ) {
    db.exec(SCHEMA);
    const columns = new Set((db.prepare('PRAGMA table_info(items)').all() as Array<{ name: string }>).map((c) => c.name));
    for (const [column, sql] of ADDED_COLUMNS) if (!columns.has(column)) db.exec(sql);
    db.exec('CREATE INDEX IF NOT EXISTS items_key ON items(key) WHERE key IS NOT NULL');
    this.q = prepareAll(db);
    const { lo, hi } = this.q.reqMinMax.get() as { lo: number; hi: number };
    this.lowOrd = Math.min(lo, 0);
    this.highOrd = Math.max(hi, 0);
  }

  /** Opens (creating if needed) the store in `dir`; a damaged file is reported, never silently dropped. */
  static async open(dir: string, options: OpenStoreOptions = {}): Promise<SqliteRunStore> {
    const file = path.join(dir, 'state.sqlite');
    if (options.readonly && !fs.existsSync(file)) throw new Error(`No run state in ${dir}`);
    fs.mkdirSync(dir, { recursive: true });
    let db: SqlDatabase;
    try {
      db = await openSqlite(file);
      const check = db.prepare('PRAGMA quick_check').get() as { quick_check?: string } | undefined;
      if (check && check.quick_check !== 'ok') throw new Error(String(check.quick_check));
    } catch (error) {
      // No driver on this runtime: its message says what to install; the file is not at fault.
      if (error instanceof NoSqliteDriver) throw error;
      throw new Error(`The run state ${file} is damaged or unreadable (${(error as Error).message}). ` + 'Move it aside or start over with --fresh.', { cause: error });
    }
    const store = new SqliteRunStore(dir, db);
    return store;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn);
  }

  close(): void {
    this.db.close();
  }

  getMeta(key: string): string | undefined {
    return (this.q.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.q.setMeta.run(key, value);
  }

  // ---- images ----

  addItems(items: NewItem[], stats: AddStats = { added: 0, failed: 0, revived: 0 }): { from: number; to: number } | undefined {
    return this.db.transaction(() => {
      const before = (this.q.maxItem.get() as { id: number }).id;
      let added = 0;
      for (const item of items) {
        const f = item.failure;
        if (item.archived && !f) {
          const res = this.q.addArchivedItem.run(item.url, item.key ?? null);
          stats.revived += Number(res.changes === 0 ? this.q.request.run(item.url).changes : res.changes);
          continue;
        }
        const res = f
          ? this.q.addFailedItem.run(item.url, f.code, f.status ?? null, f.message.slice(0, 2000), f.stack ?? null, item.fields ?? null)
          : this.q.addItem.run(item.url, item.name ?? null, item.info ?? null, item.headers ?? null, item.fields ?? null, item.key ?? null, item.found ?? null);
        if (res.changes === 0) stats.revived += Number(this.q.request.run(item.url).changes);
        else if (f) stats.failed++;
        added += Number(res.changes);
      }
      stats.added += added;
      if (added === 0) return undefined;
      const after = (this.q.maxItem.get() as { id: number }).id;
      return { from: before + 1, to: after };
    });
  }

  addDoneItems(items: Array<{ url: string; file: string; record: string }>): number {
    return this.db.transaction(() => {
      let n = 0;
      for (const item of items) n += Number(this.q.addDoneItem.run(item.url, item.file, item.record).changes);
      return n;
    });
  }

  pendingInRange(from: number, to: number): Item[] {
    type Row = Omit<Item, 'headers' | 'fields' | 'key' | 'found'> & { headers?: string | null; fields?: string | null; key?: string | null; found?: string | null };
    const rows = this.q.pendingInRange.all(from, to) as unknown as Row[];
    // Most images have no headers, table fields, key or place of their own: the row is then just { id, url, name, info }.
    for (const row of rows) {
      if (row.headers === null) delete row.headers;
      if (row.fields === null) delete row.fields;
      if (row.key === null) delete row.key;
      if (row.found === null) delete row.found;
    }
    return rows as Item[];
  }

  keyKnown(key: string): boolean {
    return this.q.keyKnown.get(key) !== undefined;
  }

  pendingIds(): number[] {
    return (this.q.pendingIds.all() as Array<{ id: number }>).map((r) => r.id);
  }

  fileTaken(file: string): boolean {
    return this.q.fileTaken.get(file) !== undefined;
  }

  claim(id: number, file: string | null, record: string): boolean {
    try {
      return Number(this.q.claim.run(file, record, id).changes) === 1;
    } catch (error) {
      if (isConstraint(error)) return false;
      throw error;
    }
  }

  unclaim(id: number): void {
    this.q.unclaim.run(id);
  }

  markDone(ids: number[], metadataBytes?: number): void {
    if (ids.length === 0 && metadataBytes === undefined) return;
    const now = Date.now();
    this.db.transaction(() => {
      for (const id of ids) this.q.done.run(now, id);
      if (metadataBytes !== undefined) this.setMeta(META_METADATA_BYTES, String(metadataBytes));
    });
  }

  markFailed(id: number, failure: Omit<FailureRecord, 'url'>): void {
    this.q.fail.run(failure.code, failure.status, failure.message.slice(0, 2000), failure.stack ?? null, Date.now(), id);
  }

  failures(): FailureRecord[] {
    return (this.q.failures.all() as unknown as Array<FailureRecord & { stack: string | null; fields: string | null }>).map(({ fields, ...f }) => {
      const failure = withoutNullStack(f);
      if (fields === null) return failure;
      // A table row: its key and caption; one that could not be used shows the URL text it had.
      const { input, ...row } = JSON.parse(fields) as { input?: string; key?: string; caption?: string };
      return { ...failure, ...(input === undefined ? {} : { url: input }), ...row };
    });
  }

  settledSpan(): { first: number; last: number } | undefined {
    const row = this.q.settledSpan.get() as { first: number | null; last: number | null };
    return row.first === null || row.last === null ? undefined : { first: Number(row.first), last: Number(row.last) };
  }

  timeline(from: number, bucketMs: number): Array<{ bucket: number; images: number; failed: number; bytes: number }> {
    return (this.q.timeline.all(from, bucketMs) as Array<Record<string, number>>).map((r) => ({
      bucket: Number(r['bucket']),
      images: Number(r['images']),
      failed: Number(r['failed']),
      bytes: Number(r['bytes']),
    }));
  }

  savedBytes(): number {
    return Number((this.q.savedBytes.get() as { bytes: number }).bytes);
  }

  saving(): ImageRow[] {
    return this.q.saving.all() as unknown as ImageRow[];
  }

  resetPending(id: number): void {
    this.q.resetPending.run(id);
  }

  itemByUrl(url: string): { id: number; status: number; file: string | null } | undefined {
    return this.q.itemByUrl.get(url) as { id: number; status: number; file: string | null } | undefined;
  }

  adopt(id: number, file: string, record: string): boolean {
    try {
      return Number(this.q.adopt.run(file, record, Date.now(), id).changes) === 1;
    } catch (error) {
      if (isConstraint(error)) return false;
      throw error;
    }
  }

  doneFiles(afterId: number, limit: number): Array<{ id: number; url: string; file: string; record: string | null }> {
    return this.q.doneFiles.all(afterId, limit) as unknown as Array<{ id: number; url: string; file: string; record: string | null }>;
  }

  doneRecords(afterId: number, limit: number): Array<{ id: number; url: string; record: string }> {
    return this.q.doneRecords.all(afterId, limit) as unknown as Array<{ id: number; url: string; record: string }>;
  }

  resetDone(id: number): void {
    this.q.resetDone.run(id);
  }

  hostCounts(host: string, since: number): { images: number; failed: number } {
    const row = this.q.hostCounts.get(since, `http://${host}/`, `http://${host}0`, `https://${host}/`, `https://${host}0`) as { images: number; failed: number };
    return { images: Number(row.images), failed: Number(row.failed) };
  }

  retryFailed(): number {
    return Number(this.q.retryFailed.run().changes);
  }

  counts(): Counts {
    const c: Counts = { pending: 0, saving: 0, done: 0, failed: 0, total: 0 };
    for (const row of this.q.counts.all() as Array<{ status: number; n: number }>) {
      if (row.status === Saving) c.saving += row.n;
      if (row.status === Done) c.done += row.n;
      else if (row.status === Failed) c.failed += row.n;
      else c.pending += row.n;
      c.total += row.n;
    }
    return c;
  }

  // ---- pages that failed ----

  recordPageFailure(f: PageFailure): void {
    this.q.pageFail.run(f.uniqueKey, f.url, f.label, f.code, f.status, f.message.slice(0, 2000), f.stack ?? null);
  }

  pageFailures(): PageFailure[] {
    return (this.q.pageFailures.all() as unknown as Array<PageFailure & { stack: string | null }>).map(withoutNullStack);
  }

  takePageFailures(): PageFailure[] {
    return this.db.transaction(() => {
      const failures = this.pageFailures();
      this.q.clearPageFailures.run();
      return failures;
    });
  }

  // ---- Crawlee's request queue ----

  requestByKey(uniqueKey: string): { id: string; handled: number } | undefined {
    return this.q.reqByKey.get(uniqueKey) as { id: string; handled: number } | undefined;
  }

  requestById(id: string): StoredRequest | undefined {
    const row = this.q.reqById.get(id) as { id: string; uniqueKey: string; json: string; handled: number } | undefined;
    return row && { ...row, handled: row.handled === 1 };
  }

  insertRequest(id: string, uniqueKey: string, json: string, handled: boolean, forefront: boolean): void {
    const ord = forefront ? --this.lowOrd : ++this.highOrd;
    this.q.reqInsert.run(ord, id, uniqueKey, json, handled ? 1 : 0);
  }

  updateRequest(id: string, json: string, handled: boolean, forefront: boolean): void {
    // Handled, or reclaimed (given back to the queue): no longer locked, as Crawlee's own storages do.
    this.locks.delete(id);
    if (forefront) this.q.reqUpdateOrd.run(json, handled ? 1 : 0, --this.lowOrd, id);
    else this.q.reqUpdate.run(json, handled ? 1 : 0, id);
  }

  deleteRequest(id: string): void {
    this.locks.delete(id);
    this.q.reqDelete.run(id);
  }

  /**
   * Crawlee's request locks (request id → until when, ms), held in memory: only the process that holds the run's lock
   * ever reads its queue, and a lock never outlives it: a crashed run resumes at once instead of waiting locks out.
   * Kept in SQLite (the requests table's lock_until, written by stores before 2026-11-29 and read by nothing now)
   * they cost a commit per request taken.
   */
  private readonly locks = new Map<string, number>();

  lockHead(limit: number, lockMs: number): Array<{ id: string; uniqueKey: string; json: string }> {
    const now = Date.now();
    const locked = (id: string) => (this.locks.get(id) ?? 0) > now;
    // The locked requests are among the first pending ones: read past them.
    const rows = (this.q.reqHead.all(limit + this.locks.size) as Array<{ id: string; uniqueKey: string; json: string }>).filter((r) => !locked(r.id)).slice(0, limit);
    for (const row of rows) this.locks.set(row.id, now + lockMs);
    return rows;
  }

  listHead(limit: number): Array<{ id: string; uniqueKey: string; json: string }> {
    return this.q.reqHead.all(limit) as Array<{ id: string; uniqueKey: string; json: string }>;
  }

  prolongLock(id: string, lockMs: number): number {
    const until = Date.now() + lockMs;
    this.locks.set(id, until);
    return until;
  }

  unlock(id: string, forefront: boolean): void {
    this.locks.delete(id);
    if (forefront) this.q.reqToFront.run(--this.lowOrd, id);
  }

  hasLockedRequests(): boolean {
    const now = Date.now();
    for (const until of this.locks.values()) if (until > now) return true;
    return false;
  }

  requestCounts(): { total: number; handled: number } {
    return this.q.reqCounts.get() as { total: number; handled: number };
  }

  pageCount(): number {
    return Number((this.q.pageCount.get() as { n: number }).n);
  }

  requeue(uniqueKey: string): boolean {
    const row = this.requestByKey(uniqueKey);
    if (!row) return false;
    const stored = this.requestById(row.id)!;
    // Crawlee keeps `handledAt` and its retry count in the request's JSON: a page queued again starts afresh.
    const json = JSON.parse(stored.json) as Record<string, unknown>;
    delete json['handledAt'];
    json['retryCount'] = 0;
    this.updateRequest(row.id, JSON.stringify(json), false, false);
    return true;
  }
}

/** `stack` only where there is one, so the report's other lines keep their four keys. */
function withoutNullStack<T extends { stack?: string | null }>({ stack, ...rest }: T): Omit<T, 'stack'> & { stack?: string } {
  return stack === null || stack === undefined ? rest : { ...rest, stack };
}
