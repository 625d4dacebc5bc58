import { createRequire } from 'node:module';

/** The few SQLite calls imgdl needs, the same on better-sqlite3, node:sqlite and bun:sqlite. */
export interface SqlStatement {
  run(...params: SqlValue[]): { changes: number | bigint };
  get(...params: SqlValue[]): Record<string, unknown> | undefined;
  all(...params: SqlValue[]): Record<string, unknown>[];
}
export type SqlValue = string | number | bigint | null | Uint8Array;

export interface SqlDatabase {
  /** Which driver is underneath: `better-sqlite3`, `node:sqlite` or `bun:sqlite`. */
  readonly driver: string;
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  /** Runs `fn` in one transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on throw). */
  transaction<T>(fn: () => T): T;
  close(): void;
}

type Runtime = 'bun' | 'deno' | 'node';
const runtime: Runtime = 'Bun' in globalThis ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node';

/**
 * Opens a SQLite database with the driver this runtime has: bun:sqlite on Bun, node:sqlite on Deno,
 * better-sqlite3 on Node (node:sqlite on Node ≥ 22.5 when better-sqlite3 is not installed).
 */
export async function openSqlite(file: string): Promise<SqlDatabase> {
  if (runtime === 'bun') return wrap('bun:sqlite', await openBun(file));
  if (runtime === 'node') {
    try {
      const require = createRequire(import.meta.url);
      const Better = require('better-sqlite3') as new (f: string) => NativeDb;
      return wrap('better-sqlite3', new Better(file));
    } catch (error) {
      if (!(await hasNodeSqlite())) {
        throw new Error(`No SQLite driver: better-sqlite3 failed to load (${(error as Error).message})`, { cause: error });
      }
    }
  }
  const { DatabaseSync } = (await import('node:sqlite' as string)) as { DatabaseSync: new (f: string) => NativeDb };
  return wrap('node:sqlite', new DatabaseSync(file));
}

async function hasNodeSqlite(): Promise<boolean> {
  try {
    await import('node:sqlite' as string);
    return true;
  } catch {
    return false;
  }
}

async function openBun(file: string): Promise<NativeDb> {
  const { Database } = (await import('bun:sqlite' as string)) as { Database: new (f: string, o?: object) => NativeDb };
  return new Database(file, { create: true, strict: true });
}

interface NativeDb {
  exec(sql: string): unknown;
  prepare(sql: string): SqlStatement;
  close(): void;
}

function wrap(driver: string, db: NativeDb): SqlDatabase {
  let depth = 0;
  return {
    driver,
    exec: (sql) => void db.exec(sql),
    prepare: (sql) => db.prepare(sql),
    transaction<T>(fn: () => T): T {
      // Nested calls join the outer transaction.
      if (depth > 0) return fn();
      db.exec('BEGIN IMMEDIATE');
      depth++;
      try {
        const result = fn();
        db.exec('COMMIT');
        return result;
      } catch (error) {
        db.exec('ROLLBACK');
        throw error;
      } finally {
        depth--;
      }
    },
    close: () => db.close(),
  };
}
