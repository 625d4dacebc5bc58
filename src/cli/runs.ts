import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.ts';
import { readRunInfo, runsDir, safeRunName, storageDir } from '../core/runs.ts';
import { RunLock } from '../storage/lock.ts';
import { RunStore } from '../storage/state.ts';
import { commandLine, envStorage, note } from './common.ts';

export const RUNS_HELP = `Usage: imgdl runs [--storage DIR] [--json]
       imgdl runs --clean NAME [--storage DIR]
       imgdl runs --queue redis://HOST:PORT/DB [--json]

Lists the runs kept in the storage folder with their progress (done / pending / failed) and the command
that continues each; --clean NAME removes a run's state (its downloaded files stay).
With --queue: the runs spread over workers through that Redis, with their shards (done / active / waiting /
failed), images saved and failed, and the workers alive.`;

export interface RunListing {
  name: string;
  kind: string;
  outDir: string;
  done: number;
  pending: number;
  failed: number;
  total: number;
  finished: boolean;
  updatedAt: string;
  resume: string;
  error?: string;
}

/** Every run under `storage`, newest first. Opening a run's store reads only its counts. */
export async function listRuns(storage?: string): Promise<RunListing[]> {
  const dir = runsDir(storageDir(storage));
  if (!fs.existsSync(dir)) return [];
  const out: RunListing[] = [];
  for (const name of fs.readdirSync(dir)) {
    const runDir = path.join(dir, name);
    const info = readRunInfo(runDir);
    const base = {
      name,
      kind: info?.kind ?? '?',
      outDir: info?.outDir ?? '?',
      finished: info?.finished ?? false,
      updatedAt: info?.updatedAt ?? '',
      // Redacted again when shown: a run.json written before passwords were redacted may still hold one.
      resume: info ? commandLine(info.command) : '',
    };
    try {
      const store = await RunStore.open(runDir, { readonly: true });
      try {
        const c = store.counts();
        out.push({ ...base, done: c.done, pending: c.pending, failed: c.failed, total: c.total });
      } finally {
        store.close();
      }
    } catch (error) {
      out.push({ ...base, done: 0, pending: 0, failed: 0, total: 0, error: (error as Error).message });
    }
  }
  return out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
}

export async function cmdRuns(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { storage: { type: 'string' }, clean: { type: 'string' }, json: { type: 'boolean' }, queue: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(RUNS_HELP);
    return 0;
  }
  if (values.queue !== undefined) return queueRuns(values.queue, values.json === true);
  if (values.clean !== undefined) {
    const name = safeRunName(values.clean);
    const runDir = path.join(runsDir(storageDir(values.storage ?? envStorage())), name);
    if (!name || !fs.existsSync(runDir)) throw new UsageError(`No run named ${JSON.stringify(values.clean)} (see \`imgdl runs\`)`);
    // A run in use is refused (who holds it is said), never removed under its process.
    const lock = await RunLock.take(runDir, name);
    try {
      await fs.promises.rm(runDir, { recursive: true, force: true });
    } finally {
      lock.release();
    }
    note(`Removed run ${name} (its files stay where they are).`);
    return 0;
  }
  const runs = await listRuns(values.storage ?? envStorage());
  if (values.json) {
    process.stdout.write(JSON.stringify(runs) + '\n');
    return 0;
  }
  if (runs.length === 0) {
    console.log('No runs yet.');
    return 0;
  }
  for (const r of runs) {
    const state = r.error ? `damaged: ${r.error}` : r.finished ? 'finished' : r.pending > 0 ? 'unfinished' : 'ended';
    console.log(`${r.name}  ${state}`);
    console.log(`  ${r.done} done, ${r.pending} pending, ${r.failed} failed of ${r.total} → ${r.outDir}`);
    if (r.resume) console.log(`  ${r.finished ? 'rerun' : 'resume'}: ${r.resume}`);
  }
  return 0;
}

async function queueRuns(queue: string, json: boolean): Promise<number> {
  const { listQueueRuns } = await import('../queue/runs.ts');
  const { runs, workers } = await listQueueRuns(queue);
  if (json) {
    process.stdout.write(JSON.stringify({ runs, workers }) + '\n');
    return 0;
  }
  if (runs.length === 0) console.log('No runs in this queue yet.');
  for (const r of runs) {
    console.log(`${r.run}  ${r.merged ? 'finished' : r.done + r.failed >= r.shards && r.shards > 0 ? 'shards done, not merged' : 'running'} → ${r.outDir}`);
    console.log(`  shards: ${r.done} done, ${r.active} active, ${r.waiting} waiting, ${r.failed} failed of ${r.shards}`);
    console.log(`  images: ${r.saved} saved, ${r.imagesFailed} failed of ${r.urls}`);
  }
  console.log(`Workers alive: ${workers.length}`);
  for (const w of workers) console.log(`  ${w.name}${w.run !== undefined ? `  on ${w.run} shard ${w.shard}` : '  idle'}  (seen ${(w.seenMsAgo / 1000).toFixed(1)} s ago)`);
  return 0;
}
