import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.ts';

/**
 * One process at a time holds a run, and one run at a time writes into an output folder. A lock is a file with
 * the holder's pid; a lock whose process is gone (kill -9, power loss) is taken over at once, so a crashed run
 * never waits for anything to expire.
 */
export class RunLock {
  private constructor(private readonly file: string) {}

  /** The lock of the run whose state is in `dir` (`dir/lock`). */
  static async take(dir: string, run?: string): Promise<RunLock> {
    await fs.promises.mkdir(dir, { recursive: true });
    return RunLock.takeFile(path.join(dir, 'lock'), { run, busy: (holder) => `The run in ${dir} is in use by process ${holder.pid}${holder.run ? ` (run ${holder.run})` : ''}; wait for it or stop it first.` });
  }

  /**
   * Takes the lock file `file`, or throws a UsageError with `busy(holder)` when a live process holds it.
   * `wx` (O_EXCL) makes taking it atomic; a dead holder's file is removed and taking is tried again.
   */
  static async takeFile(file: string, opts: { run?: string; busy: (holder: Holder) => string }): Promise<RunLock> {
    const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString(), ...(opts.run ? { run: opts.run } : {}) });
    // An empty or unreadable lock file is one a starting process is writing (its pid follows within microseconds), or
    // one a process killed between creating it and writing its pid left torn: waited for until it is TORN_MS old, then
    // taken over. A rerun right after such a kill waits that long, no more; it used to give up after ~0.1 s.
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await fs.promises.writeFile(file, mine, { flag: 'wx' });
        return new RunLock(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = readHolder(file);
      if (holder && holder.host === os.hostname() && holder.pid !== process.pid && alive(holder.pid)) {
        throw new UsageError(opts.busy(holder));
      }
      // A holder that is gone, or a file torn long enough ago.
      if (holder || !recentlyWritten(file)) await fs.promises.rm(file, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new UsageError(`Could not take the lock ${file}; is another imgdl starting right now?`);
  }

  release(): void {
    try {
      const holder = readHolder(this.file);
      if (holder?.pid === process.pid) fs.rmSync(this.file, { force: true });
    } catch {
      // Already gone.
    }
  }
}

export interface Holder {
  pid: number;
  host: string;
  run?: string;
}

/** How old an empty or unreadable lock file must be to be taken as torn by a crash rather than being written. */
const TORN_MS = 1000;

/** An empty or unreadable lock file younger than TORN_MS may be one another process is writing right now. */
function recentlyWritten(file: string): boolean {
  try {
    return Date.now() - fs.statSync(file).mtimeMs < TORN_MS;
  } catch {
    return false;
  }
}

function readHolder(file: string): Holder | undefined {
  try {
    const holder = JSON.parse(fs.readFileSync(file, 'utf8')) as Holder;
    return typeof holder?.pid === 'number' ? holder : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A process killed with -9 whose parent has not reaped it yet is a zombie: signal 0 still reaches it, but it
  // holds nothing. On Linux /proc says so (state Z); elsewhere it counts as alive.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}
