import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';

/** Errors that mean "no more can be written here" rather than "this one file failed". */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS']);

/** What stopped a run: the disk (or quota) is full, or the file system turned read-only. */
export interface DiskStop {
  /** ENOSPC, EDQUOT, EROFS or SQLITE_FULL. */
  code: string;
  /** The folder or file that could not be written. */
  path: string;
  message: string;
  /** The run stopped before it had read all of its inputs: more images than `pending` are left. */
  unread?: boolean;
}

/**
 * The errno-like code when `error` (or any error in its `cause` chain) says the disk is full, the quota is used up
 * or the file system is read-only; SQLite says SQLITE_FULL ("database or disk is full") for the same thing.
 */
export function diskFullCode(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 8; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && FULL_CODES.has(e.code)) return e.code;
    if (e.code === 'SQLITE_FULL' || (typeof e.message === 'string' && /SQLITE_FULL|database or disk is full/i.test(e.message))) return 'SQLITE_FULL';
    if (typeof e.message === 'string') {
      const m = /\b(ENOSPC|EDQUOT|EROFS)\b/.exec(e.message);
      if (m) return m[1];
    }
  }
  return undefined;
}

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  SQLITE_FULL: 'no space left on the device',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'it is a file, not a folder',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links',
};

/** A person's words for an errno code. */
export function describeCode(code: string): string {
  return CAUSES[code] ?? code;
}

/**
 * Checks, before any network work, that `dir` is a folder this process can create files in: creates it if
 * missing, then creates and removes a probe file. Throws a UsageError naming the folder and the cause (the CLI
 * prints it on one line and exits 2), e.g. `Cannot use the output folder /x (--out): the file system is read-only`.
 */
export function checkWritableDir(dir: string, what: string): void {
  const fail = (code: string, detail?: string): never => {
    throw new UsageError(`Cannot use ${what} ${dir}: ${detail ?? describeCode(code)}`);
  };
  try {
    const stat = fs.statSync(dir);
    if (!stat.isDirectory()) fail('EEXIST');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (code !== 'ENOENT') fail(code, `${describeCode(code)} (${code})`);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (mkdirError) {
      const c = (mkdirError as NodeJS.ErrnoException).code ?? 'EIO';
      fail(c, `cannot create it: ${describeCode(c)}`);
    }
  }
  // access(W_OK) says yes to root on a folder it may not write (a read-only mount answers EROFS only on write):
  // creating a file is the one test that tells.
  const probe = path.join(dir, `.imgdl-probe-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    fail(code, `cannot create files in it: ${describeCode(code)}`);
  }
  fs.rmSync(probe, { force: true });
}
