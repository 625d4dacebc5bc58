// A set of URLs in a scratch SQLite file: deduping a list of tens of millions or a billion URLs in bounded memory
// (a JavaScript Set of 10M URLs takes about a gigabyte of heap). Used by a distributed run's coordinator while it
// cuts its inputs into shard jobs (src/queue/coordinator.ts).
import fs from 'node:fs';
import { openSqlite, type SqlDatabase, type SqlStatement } from './sqlite.ts';

/** How a URL was found: new, recorded by an earlier run (first time seen), or seen before in this pass. */
export type Seen = 'new' | 'earlier' | 'again';

/** Statements per transaction: SQLite's cost is per commit, not per row. */
const BATCH = 10_000;

export class UrlSet {
  private pending = 0;
  private readonly see_: SqlStatement;
  private readonly earlier_: SqlStatement;
  private readonly has_: SqlStatement;

  private constructor(
    private readonly db: SqlDatabase,
    readonly file: string,
  ) {
    // state: 0 seen in this pass, 1 recorded by an earlier run and not yet seen, 2 recorded and seen.
    db.exec('CREATE TABLE IF NOT EXISTS urls (url TEXT PRIMARY KEY, state INTEGER NOT NULL) WITHOUT ROWID');
    this.see_ = db.prepare('INSERT INTO urls (url, state) VALUES (?, 0) ON CONFLICT(url) DO UPDATE SET state = 2 WHERE state = 1 RETURNING state');
    this.earlier_ = db.prepare('INSERT OR IGNORE INTO urls (url, state) VALUES (?, 1)');
    this.has_ = db.prepare('SELECT state FROM urls WHERE url = ?');
  }

  /** A new, empty set in `file` (a file left there by an earlier process is replaced). Nothing in it must survive a crash. */
  static async create(file: string): Promise<UrlSet> {
    for (const f of [file, `${file}-journal`, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    const db = await openSqlite(file);
    // A scratch file: no journal, no fsync; a page cache of ~8 MB (negative: KiB).
    db.exec('PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -8000; PRAGMA temp_store = FILE');
    return new UrlSet(db, file);
  }

  /** Adds URLs an earlier run recorded (before any `see`). */
  addEarlier(url: string): void {
    this.write(() => this.earlier_.run(url));
  }

  /** True when `url` was added with addEarlier. */
  isEarlier(url: string): boolean {
    this.flush();
    const row = this.has_.get(url);
    return row !== undefined && row['state'] !== 0;
  }

  /** Adds `url`; says whether it is new, an earlier run's (the first time it is seen), or seen before. */
  see(url: string): Seen {
    let state: unknown;
    this.write(() => (state = this.see_.get(url)?.['state']));
    return state === 0 ? 'new' : state === 2 ? 'earlier' : 'again';
  }

  /** Closes the set and removes its file. */
  close(): void {
    try {
      this.flush();
      this.db.close();
    } finally {
      for (const f of [this.file, `${this.file}-journal`, `${this.file}-wal`, `${this.file}-shm`]) fs.rmSync(f, { force: true });
    }
  }

  private write(fn: () => void): void {
    if (this.pending === 0) this.db.exec('BEGIN');
    fn();
    if (++this.pending >= BATCH) this.flush();
  }

  private flush(): void {
    if (this.pending === 0) return;
    this.pending = 0;
    this.db.exec('COMMIT');
  }
}
