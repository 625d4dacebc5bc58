import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';
import { NoSqliteDriver, openSqlite, type SqlDatabase, type SqlStatement } from './sqlite.ts';

/**
 * A download archive (--archive FILE), as gallery-dl's --download-archive: the keys (a site's own ids, `flickr:12345`)
 * of images saved by any run, into any folder, that used the same file. A plugin run skips an image whose key is in
 * it, and adds each key once its image is saved.
 *
 * One SQLite file in WAL mode, so several runs (several processes) may read and write it at once: each adds its keys
 * in short transactions, waiting up to 15 s for another's to end (busy_timeout), and a key two runs saved at the same
 * time is simply there once (INSERT OR IGNORE). A key is added after its image is saved, so a crash in between costs
 * at most that image being fetched again by a later run into another folder.
 */
export class Archive {
  private readonly has_: SqlStatement;
  private readonly add_: SqlStatement;

  private constructor(
    readonly file: string,
    private readonly db: SqlDatabase,
  ) {
    this.has_ = db.prepare('SELECT 1 AS x FROM archive WHERE key = ?');
    this.add_ = db.prepare('INSERT OR IGNORE INTO archive (key, saved_at) VALUES (?, ?)');
  }

  /** Opens (creating if needed) the archive at `file`; an unusable path or a file that is not an archive is a UsageError. */
  static async open(file: string): Promise<Archive> {
    const resolved = path.resolve(file);
    if (fs.existsSync(resolved) && fs.statSync(resolved).isDirectory()) throw new UsageError(`--archive ${file} is a folder; give a file (it is created if missing)`);
    try {
      fs.mkdirSync(path.dirname(resolved), { recursive: true });
    } catch (error) {
      throw new UsageError(`Cannot use --archive ${file}: ${(error as Error).message}`, { cause: error });
    }
    let db: SqlDatabase | undefined;
    try {
      db = await openSqlite(resolved);
      db.exec('PRAGMA busy_timeout = 15000');
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('CREATE TABLE IF NOT EXISTS archive (key TEXT PRIMARY KEY, saved_at INTEGER NOT NULL) WITHOUT ROWID');
      return new Archive(resolved, db);
    } catch (error) {
      db?.close();
      if (error instanceof NoSqliteDriver) throw error;
      throw new UsageError(`Cannot use --archive ${file}: ${(error as Error).message} (is it an imgdl archive?)`, { cause: error });
    }
  }

  /** True when an image with this key was saved by a run using this archive. */
  has(key: string): boolean {
    return this.has_.get(key) !== undefined;
  }

  /** Records keys of saved images (one transaction). */
  add(keys: readonly string[]): void {
    if (keys.length === 0) return;
    const now = Date.now();
    this.db.transaction(() => {
      for (const key of keys) this.add_.run(key, now);
    });
  }

  /** How many keys it holds. */
  size(): number {
    return Number((this.db.prepare('SELECT count(*) AS n FROM archive').get() as { n: number | bigint }).n);
  }

  close(): void {
    this.db.close();
  }
}
