import { createRequire } from 'node:module';
import { UsageError } from '../errors.ts';
import { runtime } from '../runtime.ts';

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

type Driver = 'better-sqlite3' | 'node:sqlite' | 'bun:sqlite';

/**
 * Drivers to try, best first: bun:sqlite on Bun (better-sqlite3 is a Node addon Bun cannot load); node:sqlite on
 * Node where it loads (Node 22.13+, or 22.5+ with --experimental-sqlite: built in, so installing imgdl compiles
 * nothing), else better-sqlite3, an optional peer dependency for Node 20 (a native addon, often built from source);
 * node:sqlite on Deno (Deno 2.2+; its addon support is the fallback).
 */
const DRIVERS: Record<typeof runtime, Driver[]> = {
  bun: ['bun:sqlite', 'node:sqlite'],
  node: ['node:sqlite', 'better-sqlite3'],
  deno: ['node:sqlite', 'better-sqlite3'],
};

/** No SQLite driver loads on this runtime (Node < 22.13 without better-sqlite3). The CLI shows the message alone. */
export class NoSqliteDriver extends UsageError {
  override name = 'NoSqliteDriver';
}

/** Opens a SQLite database with the first driver that loads on this runtime (see DRIVERS). */
export async function openSqlite(file: string): Promise<SqlDatabase> {
  const failures: string[] = [];
  for (const driver of DRIVERS[runtime]) {
    let open: (file: string) => NativeDb;
    try {
      open = await load(driver);
    } catch (error) {
      failures.push(`${driver}: ${(error as Error).message.split('\n')[0]}`);
      continue;
    }
    // The driver is there: an error opening the file is about the file, and is the caller's to report.
    return wrap(driver, open(file));
  }
  throw new NoSqliteDriver(`No SQLite driver could be loaded${runtime === 'node' ? NODE_ADVICE : ''} (${failures.join('; ')})`);
}

/** What to do on Node when neither driver loads: before 22.13 there is no node:sqlite, and better-sqlite3 is optional. */
const NODE_ADVICE =
  ': imgdl keeps its run state in SQLite, from node:sqlite (built into Node 22.13+) or else better-sqlite3 (an optional ' +
  `peer dependency). On Node ${process.versions.node}, run \`npm install better-sqlite3\` in your project, or use Node 22.13+`;

const loaded = new Map<Driver, (file: string) => NativeDb>();

async function load(driver: Driver): Promise<(file: string) => NativeDb> {
  let open = loaded.get(driver);
  if (!open) {
    open = await loadDriver(driver);
    loaded.set(driver, open);
  }
  return open;
}

async function loadDriver(driver: Driver): Promise<(file: string) => NativeDb> {
  switch (driver) {
    case 'bun:sqlite': {
      const { Database } = (await import('bun:sqlite' as string)) as { Database: new (f: string, o?: object) => NativeDb };
      return (file) => new Database(file, { create: true, strict: true });
    }
    case 'node:sqlite': {
      const { DatabaseSync } = (await import('node:sqlite' as string)) as { DatabaseSync: new (f: string) => NativeDb };
      return (file) => new DatabaseSync(file);
    }
    case 'better-sqlite3': {
      const require = createRequire(import.meta.url);
      const Better = require('better-sqlite3') as new (f: string) => NativeDb;
      // The native addon loads on first use: probe it here, so that a missing build means "try the next driver".
      new Better(':memory:').close();
      return (file) => new Better(file);
    }
  }
}

interface NativeDb {
  exec(sql: string): unknown;
  prepare(sql: string): NativeStatement;
  close(): void;
}

interface NativeStatement {
  run(...params: SqlValue[]): { changes: number | bigint };
  get(...params: SqlValue[]): Record<string, unknown> | null | undefined;
  all(...params: SqlValue[]): Record<string, unknown>[];
}

/**
 * The drivers differ in small ways the callers must not see: bun:sqlite's `get()` answers `null` for no row
 * (better-sqlite3 and node:sqlite: `undefined`); callers test `=== undefined`, so "no row" is `undefined` here.
 */
function statement(native: NativeStatement): SqlStatement {
  return {
    run: (...params) => native.run(...params),
    get: (...params) => native.get(...params) ?? undefined,
    all: (...params) => native.all(...params),
  };
}

function wrap(driver: Driver, db: NativeDb): SqlDatabase {
  let depth = 0;
  // Prepared once: exec() parses its SQL on every call, and a run commits thousands of small transactions.
  let control: { begin: NativeStatement; commit: NativeStatement } | undefined;
  const begin = () => (control ??= { begin: db.prepare('BEGIN IMMEDIATE'), commit: db.prepare('COMMIT') }).begin.run();
  return {
    driver,
    exec: (sql) => void db.exec(sql),
    // Only bun:sqlite needs the shim; the others hand their statements over as they are (no cost per call).
    prepare: driver === 'bun:sqlite' ? (sql) => statement(db.prepare(sql)) : (sql) => db.prepare(sql) as SqlStatement,
    transaction<T>(fn: () => T): T {
      // Nested calls join the outer transaction.
      if (depth > 0) return fn();
      begin();
      depth++;
      try {
        const result = fn();
        control!.commit.run();
        return result;
      } catch (error) {
        // A failed COMMIT (SQLITE_FULL, SQLITE_IOERR) may already have rolled back: a second error from ROLLBACK
        // ("no transaction is active") must not hide the first, which says what went wrong.
        try {
          db.exec('ROLLBACK');
        } catch {
          // Nothing left to roll back.
        }
        throw error;
      } finally {
        depth--;
      }
    },
    close: () => db.close(),
  };
}
