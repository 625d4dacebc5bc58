import fs from 'node:fs';
import path from 'node:path';
import type { ReasonCode } from '../errors.ts';
import type { FailureRecord, RunStore } from '../storage/state.ts';
import { FAILURES_FILE } from './types.ts';

/**
 * Writes the run's failure report, `failures.jsonl` in the output folder: one line per image that failed, then one
 * per page that failed (`"page": true`, with its label); removed when nothing failed. Written to a temporary file
 * and renamed, so a reader never sees half of it. Returns the lines by reason code.
 */
export async function writeFailures(store: RunStore, outDir: string): Promise<Partial<Record<ReasonCode, number>>> {
  const file = path.join(outDir, FAILURES_FILE);
  const lines: Array<FailureRecord & { page?: true; label?: string }> = store.failures();
  for (const { uniqueKey: _key, ...page } of store.pageFailures()) lines.push({ ...page, page: true });
  const byCode: Partial<Record<ReasonCode, number>> = {};
  for (const f of lines) byCode[f.code] = (byCode[f.code] ?? 0) + 1;
  if (lines.length === 0) {
    await fs.promises.rm(file, { force: true });
    return byCode;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.promises.writeFile(tmp, lines.map((f) => JSON.stringify(f)).join('\n') + '\n');
  await fs.promises.rename(tmp, file);
  return byCode;
}
