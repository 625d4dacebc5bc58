import fs from 'node:fs';
import path from 'node:path';
import { checkWritableDir } from '../storage/disk.ts';
import { RunLock } from '../storage/lock.ts';
import { RunStore } from '../storage/state.ts';
import { FOLDER_LOCK, type RunSpec } from './types.ts';

/** A run's store, held under its two locks until `release`. */
export interface OpenedRun {
  store: RunStore;
  /** Closes the store and releases both locks. */
  release(): void;
}

/**
 * Opens a run: checks that the output and state folders can be written (before any network work), takes the run's
 * lock and then the output folder's (another run writing there is refused with who holds it), forgets the state if
 * asked (only once the lock is held, never under a live run), and opens the store.
 */
export async function openRun(spec: Pick<RunSpec, 'outDir' | 'stateDir' | 'name' | 'fresh'>): Promise<OpenedRun> {
  checkWritableDir(spec.outDir, 'the output folder');
  checkWritableDir(spec.stateDir, 'the run state folder');
  const name = spec.name ?? path.basename(spec.stateDir);
  const lock = await RunLock.take(spec.stateDir, name);
  let folder: RunLock | undefined;
  try {
    folder = await RunLock.takeFile(path.join(spec.outDir, FOLDER_LOCK), {
      run: name,
      busy: (holder) =>
        `The folder ${spec.outDir} is being written by another imgdl run (process ${holder.pid}${holder.run ? `, run ${holder.run}` : ''}); ` +
        'wait for it to end, or give another --out.',
    });
    if (spec.fresh) await forgetState(spec.stateDir);
    const store = await RunStore.open(spec.stateDir);
    const held = folder;
    return {
      store,
      release: () => {
        try {
          store.close();
        } finally {
          held.release();
          lock.release();
        }
      },
    };
  } catch (error) {
    folder?.release();
    lock.release();
    throw error;
  }
}

/** Removes a run's state (its lock, held by the caller, stays). */
async function forgetState(dir: string): Promise<void> {
  for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
    if (name !== 'lock') await fs.promises.rm(path.join(dir, name), { recursive: true, force: true });
  }
}
