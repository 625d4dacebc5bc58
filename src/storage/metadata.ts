import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { META_METADATA_BYTES, Status, type RunStore } from './state.ts';

const FLUSH_MS = 200;
const FLUSH_LINES = 1000;
/** Rows read from the store at a time when checking saved files after a crash. */
const PAGE = 5000;

/**
 * How reconcile checks a record against what the run wrote: by default a file of the output folder (a plain name,
 * there with the record's size; whole: size and sha256). Another layout (WebDataset shards) gives its own.
 */
export interface SavedCheck {
  /** True when `file` (a record's) is a name this layout writes and is there, with `bytes` (when known). */
  there(file: string, bytes: number | undefined): boolean;
  /** True when `file` is there whole, as `record` (JSON) says: size and sha256. */
  whole(file: string, record: string): Promise<boolean>;
}

/** Records name files of the folder. */
export function folderCheck(outDir: string): SavedCheck {
  return {
    there(file, bytes) {
      if (path.basename(file) !== file || file.startsWith('.')) return false;
      try {
        const stat = fs.statSync(path.join(outDir, file));
        return stat.isFile() && (bytes === undefined || stat.size === bytes);
      } catch {
        return false;
      }
    },
    whole: (file, record) => wholeFile(path.join(outDir, file), record),
  };
}

/**
 * The output folder's metadata file: one JSON line per saved image. Lines are appended in batches; an image is
 * marked done in the store only after its line is written, in the transaction that also records how long the
 * file is. So after any crash the store knows which tail of the file it has not accounted for, and `reconcile`
 * settles exactly that tail (and the images that were being saved) against the files in the folder.
 */
export class MetadataLog {
  private lines: string[] = [];
  private ids: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Bytes of the file accounted for (set by reconcile, grown by each flush). */
  private size = 0;
  private broken = false;

  constructor(
    readonly file: string,
    private readonly store: RunStore,
    /** Called once when a write fails (disk full…); nothing more is written, the lines' images stay "saving". */
    private readonly onError: (error: unknown, file: string) => void,
  ) {}

  append(id: number, record: object): void {
    this.lines.push(JSON.stringify(record));
    this.ids.push(id);
    if (this.lines.length >= FLUSH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Writes the buffered lines; never rejects (a failure goes to onError). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return this.flushing;
    const text = this.lines.join('\n') + '\n';
    const ids = this.ids;
    this.lines = [];
    this.ids = [];
    this.flushing = this.flushing.then(async () => {
      // After a failed write nothing more is appended: those images stay "saving" and the next run settles them.
      if (this.broken) return;
      try {
        await fs.promises.appendFile(this.file, text);
        this.size += Buffer.byteLength(text);
        this.store.markDone(ids, this.size);
      } catch (error) {
        this.broken = true;
        this.onError(error, this.file);
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flush();
  }

  /**
   * Settles the folder against the store when a run opens:
   * 1. a torn last line (a crash mid-append) is cut off;
   * 2. each record past the part of the file the store accounted for is checked: its file there whole (same size)
   *    and no other record for its URL → the image is recorded as saved (never fetched again, never a second copy);
   *    otherwise the line is dropped;
   * 3. images that were being renamed into place are saved if their file is whole (size and sha256), else pending;
   * 4. after an unclean end (`deep`), or when the file is shorter than the store accounted for (the output folder
   *    deleted or emptied by hand), every saved image's file is checked: one that is gone goes back to pending and its
   *    line is dropped, so the run fetches it again instead of skipping an image that is not there.
   * A new run into a folder an earlier run filled reads the whole file in step 2: those images are known, named and
   * skipped if asked for.
   */
  async reconcile(outDir: string, deep: boolean, check: SavedCheck = folderCheck(outDir)): Promise<void> {
    await truncateTornLine(this.file);
    let size = fileSize(this.file);
    let offset = Number(this.store.getMeta(META_METADATA_BYTES) ?? 0);
    // The file is shorter than what the store accounted for: it lost its tail (a power cut) or was replaced.
    const shrunk = offset > size;
    if (shrunk || !Number.isFinite(offset) || offset < 0) offset = 0;

    // 2. The tail the store has not accounted for.
    const seen = new Set<string>();
    const kept: string[] = [];
    let dropped = 0;
    const batch: Array<{ line: string; rec: { url: string; file: string; bytes?: unknown } }> = [];
    const settle = () => {
      this.store.transaction(() => {
        for (const { line, rec } of batch) {
          if (this.adoptLine(check, line, rec, seen)) {
            kept.push(line);
          } else dropped++;
        }
      });
      batch.length = 0;
    };
    for await (const line of lines(this.file, offset)) {
      let rec: { url?: unknown; file?: unknown; bytes?: unknown };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        dropped++;
        continue;
      }
      if (typeof rec.url !== 'string' || typeof rec.file !== 'string') {
        dropped++;
        continue;
      }
      batch.push({ line, rec: rec as { url: string; file: string } });
      if (batch.length >= 1000) settle();
    }
    settle();
    if (dropped > 0) {
      // Rewrite only the tail: what the store accounted for stays as it is.
      await fs.promises.truncate(this.file, offset);
      if (kept.length > 0) await fs.promises.appendFile(this.file, kept.join('\n') + '\n');
    }
    if (shrunk) {
      // The file lost records (deleted with the folder, replaced, a power cut): the images it named may be gone too.
      // Those go back to pending first; the saved ones whose records the file lost are written again from the store.
      await this.checkSaved(check);
      await this.appendMissing(seen);
    }

    // 3. Images being renamed into place when the last run stopped.
    const saving = this.store.saving();
    const recovered: string[] = [];
    const done: number[] = [];
    for (const row of saving) {
      // A duplicate (--dedupe) has no file of its own: its record is all there is to it.
      if (row.file === null || (await check.whole(row.file, row.record))) {
        recovered.push(row.record);
        done.push(row.id);
      } else this.store.resetPending(row.id);
    }
    if (recovered.length > 0) await fs.promises.appendFile(this.file, recovered.join('\n') + '\n');

    // 4. After an unclean end: saved files a power cut may have lost (already checked when the file shrank).
    if (deep && !shrunk) await this.checkSaved(check);

    size = fileSize(this.file);
    this.size = size;
    this.store.markDone(done, size);
  }

  /** Step 2 for one record; true to keep its line. */
  private adoptLine(check: SavedCheck, line: string, rec: { url: string; file: string; bytes?: unknown }, seen: Set<string>): boolean {
    if (seen.has(rec.url)) return false;
    const row = this.store.itemByUrl(rec.url);
    if (row?.status === Status.Done) {
      if (row.file?.toLowerCase() !== rec.file.toLowerCase()) return false;
      seen.add(rec.url);
      return true;
    }
    if (!check.there(rec.file, typeof rec.bytes === 'number' ? rec.bytes : undefined)) return false;
    const ok = row ? this.store.adopt(row.id, rec.file, line) : this.store.addDoneItems([{ url: rec.url, file: rec.file, record: line }]) === 1;
    if (!ok) return false;
    seen.add(rec.url);
    return true;
  }

  /** Appends the records of saved images whose URL is not in `present`. */
  private async appendMissing(present: Set<string>): Promise<void> {
    for (let after = 0; ; ) {
      const rows = this.store.doneRecords(after, PAGE);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      const missing = rows.filter((r) => !present.has(r.url)).map((r) => r.record);
      if (missing.length > 0) await fs.promises.appendFile(this.file, missing.join('\n') + '\n');
    }
  }

  private async checkSaved(check: SavedCheck): Promise<void> {
    const gone = new Set<string>();
    for (let after = 0; ; ) {
      const rows = this.store.doneFiles(after, PAGE);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      for (const row of rows) {
        let expected: number | undefined;
        try {
          const bytes = (JSON.parse(row.record ?? '{}') as { bytes?: unknown }).bytes;
          expected = typeof bytes === 'number' ? bytes : undefined;
        } catch {
          expected = undefined;
        }
        if (!check.there(row.file, expected)) {
          this.store.resetDone(row.id);
          gone.add(row.url);
        }
      }
    }
    if (gone.size > 0) await rewriteWithout(this.file, gone);
  }
}

async function* lines(file: string, start: number): AsyncGenerator<string> {
  if (!fs.existsSync(file)) return;
  const rl = readline.createInterface({ input: fs.createReadStream(file, { start }), crlfDelay: Infinity });
  for await (const line of rl) if (line.trim()) yield line;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** True when `file` holds exactly what `record` says (size and sha256). */
async function wholeFile(file: string, record: string): Promise<boolean> {
  let want: { bytes?: unknown; sha256?: unknown };
  try {
    want = JSON.parse(record) as typeof want;
  } catch {
    return false;
  }
  try {
    const stat = await fs.promises.stat(file);
    if (!stat.isFile() || (typeof want.bytes === 'number' && stat.size !== want.bytes)) return false;
    if (typeof want.sha256 !== 'string') return true;
    return (await sha256File(file)) === want.sha256;
  } catch {
    return false;
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Rewrites the file without the records of `urls` (through a temporary file and a rename). */
async function rewriteWithout(file: string, urls: Set<string>): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const out = fs.createWriteStream(tmp);
  for await (const line of lines(file, 0)) {
    let url: unknown;
    try {
      url = (JSON.parse(line) as { url?: unknown }).url;
    } catch {
      continue;
    }
    if (typeof url === 'string' && urls.has(url)) continue;
    if (!out.write(line + '\n')) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.end(() => resolve());
  });
  await fs.promises.rename(tmp, file);
}

async function truncateTornLine(file: string): Promise<void> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r+');
  } catch {
    return;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return;
    const tail = Buffer.alloc(Math.min(size, 1 << 20));
    await handle.read(tail, 0, tail.length, size - tail.length);
    if (tail[tail.length - 1] === 0x0a) return;
    const lastNewline = tail.lastIndexOf(0x0a);
    await handle.truncate(lastNewline < 0 ? size - tail.length : size - tail.length + lastNewline + 1);
  } finally {
    await handle.close();
  }
}
