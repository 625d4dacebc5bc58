import fs from 'node:fs';
import path from 'node:path';
import type { ReasonCode } from '../errors.ts';
import { renderReport, type Thumb } from '../report/html.ts';
import type { FailureRecord, RunStore } from '../storage/state.ts';
import { runStats, type RunStats, type SessionFigures } from './stats.ts';
import type { ImageRecord } from './download.ts';
import { FAILURES_FILE, REPORT_FILE, STATS_FILE } from './types.ts';

/** A line of the failure report: an image's failure, or a plugin page's (`"page": true`, with its label). */
export type FailureLine = FailureRecord & { page?: true; label?: string };

/**
 * Writes the run's failure report, `failures.jsonl` in the output folder: one line per image that failed, then one
 * per page that failed (`"page": true`, with its label); removed when nothing failed. Written to a temporary file
 * and renamed, so a reader never sees half of it. Returns the lines, and their count by reason code.
 */
export async function writeFailures(store: RunStore, outDir: string): Promise<{ byCode: Partial<Record<ReasonCode, number>>; lines: FailureLine[] }> {
  const file = path.join(outDir, FAILURES_FILE);
  const lines: FailureLine[] = store.failures();
  for (const { uniqueKey: _key, ...page } of store.pageFailures()) lines.push({ ...page, page: true });
  const byCode: Partial<Record<ReasonCode, number>> = {};
  for (const f of lines) byCode[f.code] = (byCode[f.code] ?? 0) + 1;
  if (lines.length === 0) {
    await fs.promises.rm(file, { force: true });
    return { byCode, lines };
  }
  await writeAtomically(file, lines.map((f) => JSON.stringify(f)).join('\n') + '\n');
  return { byCode, lines };
}

/** Most thumbnails on report.html's contact sheet (the page says when there are more). */
export const REPORT_MAX_IMAGES = 10_000;

/**
 * Writes `stats.json` (see RunStats) and, unless `report` is false, `report.html` in the output folder, each to a
 * temporary name then renamed. Both cover the whole run (every session of it), from the store.
 */
export async function writeRunFiles(store: RunStore, outDir: string, failures: readonly FailureLine[], session: SessionFigures, report: boolean): Promise<RunStats> {
  const stats = runStats(store, failures, session);
  await writeAtomically(path.join(outDir, STATS_FILE), JSON.stringify(stats, null, 2) + '\n');
  if (report) {
    const thumbs = reportThumbs(store, REPORT_MAX_IMAGES);
    await writeAtomically(path.join(outDir, REPORT_FILE), renderReport({ stats, thumbs, saved: stats.images.saved }));
  }
  return stats;
}

/** The first `limit` saved images of the run, in the order they were listed. */
function reportThumbs(store: RunStore, limit: number): Thumb[] {
  const thumbs: Thumb[] = [];
  let after = 0;
  while (thumbs.length < limit) {
    const rows = store.doneRecords(after, Math.min(1000, limit - thumbs.length));
    if (rows.length === 0) break;
    for (const row of rows) {
      after = row.id;
      const r = JSON.parse(row.record) as ImageRecord;
      thumbs.push({ file: r.file, url: r.url, width: r.width, height: r.height, ...(r.caption === undefined ? {} : { caption: r.caption }) });
    }
  }
  return thumbs;
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await fs.promises.writeFile(tmp, text);
    await fs.promises.rename(tmp, file);
  } catch (error) {
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}
