import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.ts';

/**
 * One process at a time holds a run. The lock is a file with the holder's pid; a lock whose process is gone
 * (kill -9, power loss) is taken over at once, so a crashed run never waits for anything to expire.
 */
export class RunLock {
  private constructor(private readonly file: string) {}

  static async take(dir: string): Promise<RunLock> {
    await fs.promises.mkdir(dir, { recursive: true });
    const file = path.join(dir, 'lock');
    const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await fs.promises.writeFile(file, mine, { flag: 'wx' });
        return new RunLock(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = readHolder(file);
      if (holder && holder.host === os.hostname() && holder.pid !== process.pid && alive(holder.pid)) {
        throw new UsageError(`The run in ${dir} is in use by process ${holder.pid}; wait for it or stop it first.`);
      }
      await fs.promises.rm(file, { force: true });
    }
    throw new UsageError(`Could not lock the run in ${dir}.`);
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

function readHolder(file: string): { pid: number; host: string } | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number; host: string };
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
