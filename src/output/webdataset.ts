// --layout webdataset: samples into tar shards of --shard-size (00000.tar, 00001.tar…), as img2dataset writes them.
//
// A shard is written as `NNNNN.tar.part`, with its index `NNNNN.jsonl.part` (one line per sample, failure and
// duplicate), and both are renamed once the shard is full (or the run has nothing left to do). Samples are appended
// in batches: a batch's tar bytes are written at the shard's committed length, then its images are claimed in the
// store in one transaction with the shard's new length (meta `webdataset`). So after a kill -9 the part file is cut
// back to the committed length (samples written but never committed are fetched again: their images are still
// pending) and the run goes on appending to it: nothing saved is lost or fetched again, no sample is in two shards.
import fs from 'node:fs';
import path from 'node:path';
import { DownloadError, type ReasonCode } from '../errors.ts';
import { dimensions, placeNoReplace, type DownloadContext, type Fetched, type ImageRecord } from '../core/download.ts';
import type { Processed } from '../process/image.ts';
import type { SavedCheck } from '../storage/metadata.ts';
import type { Item, RunStore } from '../storage/state.ts';
import type { OutputSink } from './dataset.ts';
import { sampleFields } from './fields.ts';

type TarStream = typeof import('tar-stream');

/** Meta key: the open shard, its committed length and sample count. */
const META_SHARD = 'webdataset';
/** Tar's end of archive: two zero blocks. */
const END_OF_ARCHIVE = 1024;
/** Most samples written (and committed) at once. */
const BATCH_MAX = 256;

interface ShardState {
  shard: number;
  /** Bytes of the part file that hold committed samples. */
  length: number;
  samples: number;
}

interface Member {
  name: string;
  data: Buffer;
}

interface Pending {
  item: Item;
  key: string;
  record: ImageRecord;
  members: Member[];
  resolve: (record: ImageRecord) => void;
  reject: (error: unknown) => void;
}

/** One line of a shard's index (img2dataset's parquet columns, as JSON Lines). */
export interface IndexLine {
  key: string;
  url: string;
  status: 'success' | 'failed' | 'duplicate';
  error: ReasonCode | null;
  message?: string;
  /** The member holding the image (success), or the first's file (duplicate). */
  file: string | null;
  sha256: string | null;
  width: number | null;
  height: number | null;
  caption: string | null;
  duplicateOf?: string;
}

export function shardName(n: number): string {
  return String(n).padStart(5, '0');
}

export class WebDatasetSink implements OutputSink {
  private state: ShardState = { shard: 0, length: 0, samples: 0 };
  private file: fs.promises.FileHandle | undefined;
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;
  /** Members of the open shard's committed samples, with their sizes (what reconcile checks records against). */
  private members = new Map<string, number>();
  readonly check: SavedCheck;

  static async load(): Promise<TarStream> {
    const m = await import('tar-stream');
    return ((m as { default?: TarStream }).default ?? m) as TarStream;
  }

  constructor(
    private readonly store: RunStore,
    private readonly outDir: string,
    private readonly shardSize: number,
    private readonly keepOriginal: boolean,
    private readonly tar: TarStream,
    /**
     * A job of a distributed run (get/run --queue): all of its samples go into this one shard number, in the run's
     * folder beside other jobs' shards (shardSize does not apply: the job's size is the shard's).
     */
    private readonly fixed?: number,
  ) {
    this.check = {
      there: (file, bytes) => this.holds(file, bytes),
      whole: (file, record) => {
        let bytes: unknown;
        try {
          bytes = (JSON.parse(record) as { bytes?: unknown }).bytes;
        } catch {
          bytes = undefined;
        }
        return Promise.resolve(this.holds(file, typeof bytes === 'number' ? bytes : undefined));
      },
    };
  }

  private path(n: number, ext: 'tar' | 'jsonl', part: boolean): string {
    return path.join(this.outDir, `${shardName(n)}.${ext}${part ? '.part' : ''}`);
  }

  /** A record's `file` (`NNNNN.tar/MEMBER`) is in a completed shard, or among the open shard's committed samples. */
  private holds(file: string, bytes: number | undefined): boolean {
    const m = /^(\d{5,})\.tar\/([^/\\]+)$/.exec(file);
    if (!m) return false;
    const n = Number(m[1]);
    // The open shard's committed samples; a job's shard once complete is a final file like any other.
    if (n === this.state.shard && (this.fixed === undefined || fs.existsSync(this.path(n, 'tar', true)))) {
      const size = this.members.get(m[2]!);
      return size !== undefined && (bytes === undefined || size === bytes);
    }
    return fs.existsSync(this.path(n, 'tar', false));
  }

  /** The first shard number from `n` whose tar and index (final or part) are all absent: never another's file. */
  private firstFree(n: number): number {
    while ((['tar', 'jsonl'] as const).some((ext) => fs.existsSync(this.path(n, ext, false)) || fs.existsSync(this.path(n, ext, true)))) n++;
    return n;
  }

  private commitState(state: ShardState): void {
    this.store.setMeta(META_SHARD, JSON.stringify(state));
    this.state = state;
  }

  async recover(): Promise<void> {
    let saved: ShardState | undefined;
    try {
      saved = JSON.parse(this.store.getMeta(META_SHARD) ?? 'null') as ShardState | undefined;
    } catch {
      saved = undefined;
    }
    if (!saved) {
      this.commitState({ shard: this.fixed ?? this.firstFree(0), length: 0, samples: 0 });
      return;
    }
    this.state = saved;
    const part = this.path(saved.shard, 'tar', true);
    // Linked into place but its part name not yet removed (a crash between the two): the shard is complete.
    if (sameFile(part, this.path(saved.shard, 'tar', false))) await fs.promises.rm(part, { force: true });
    if (!fs.existsSync(part)) {
      if (fs.existsSync(this.path(saved.shard, 'tar', false))) {
        // Completed and renamed, but the next shard not yet recorded (a crash in between). A job's one shard is
        // complete: it takes nothing more (and is not completed again).
        this.commitState({ shard: this.fixed ?? this.firstFree(saved.shard + 1), length: 0, samples: 0 });
      } else if (saved.length > 0) {
        // The part file is gone (removed by hand, or lost): its samples' images go back to pending (reconcile).
        this.commitState({ shard: saved.shard, length: 0, samples: 0 });
      }
      return;
    }
    // Samples written after the last commit are cut off: their images were never claimed, so they are pending.
    const size = fs.statSync(part).size;
    if (size > saved.length) await fs.promises.truncate(part, saved.length);
    const { samples, end } = await this.readPart(part, Math.min(size, saved.length));
    if (end !== saved.length || samples.length !== saved.samples) {
      // Shorter than committed (a power cut took its tail): keep the whole samples; reconcile puts the others back.
      await fs.promises.truncate(part, end);
      this.commitState({ shard: saved.shard, length: end, samples: samples.length });
    }
    await this.rebuildIndex(samples);
    if (this.state.samples >= this.shardSize) await this.complete();
  }

  /**
   * The samples whose every member is whole in the first `length` bytes of a part file (a sample's JSON is its
   * last member), their members' sizes into `members`, and where the last of them ends.
   */
  private async readPart(file: string, length: number): Promise<{ samples: ImageRecord[]; end: number }> {
    const samples: ImageRecord[] = [];
    this.members.clear();
    let offset = 0;
    let end = 0;
    let sizes: Array<[string, number]> = [];
    if (length === 0) return { samples, end };
    const extract = this.tar.extract();
    const done = new Promise<void>((resolve) => {
      extract.on('entry', (header, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          offset += 512 + Math.ceil((header.size ?? 0) / 512) * 512;
          sizes.push([header.name, header.size ?? 0]);
          if (header.name.endsWith('.json')) {
            try {
              samples.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImageRecord);
              for (const [name, size] of sizes) this.members.set(name, size);
              end = offset;
            } catch {
              // A torn JSON member: the sample is not whole.
            }
            sizes = [];
          }
          next();
        });
      });
      extract.on('finish', () => resolve());
      // A part cut mid-member (a power cut) ends the read: what came before it is kept.
      extract.on('error', () => resolve());
    });
    fs.createReadStream(file, { start: 0, end: length - 1 }).on('error', (e) => extract.destroy(e)).pipe(extract);
    await done;
    return { samples, end };
  }

  /** The open shard's index again: its failure and duplicate lines, and one line per committed sample. */
  private async rebuildIndex(samples: ImageRecord[]): Promise<void> {
    const part = this.path(this.state.shard, 'jsonl', true);
    const final = this.path(this.state.shard, 'jsonl', false);
    const source = fs.existsSync(part) ? part : fs.existsSync(final) ? final : undefined;
    const kept: string[] = [];
    if (source !== undefined) {
      for (const line of fs.readFileSync(source, 'utf8').split('\n')) {
        try {
          if ((JSON.parse(line) as IndexLine).status !== 'success') kept.push(line);
        } catch {
          // A torn line from the crash.
        }
      }
    }
    const lines = [...kept, ...samples.map((r) => JSON.stringify(indexLine(r, 'success')))];
    await fs.promises.writeFile(part, lines.length > 0 ? lines.join('\n') + '\n' : '');
    if (source === final) await fs.promises.rm(final, { force: true });
  }

  async save(item: Item, _url: URL, fetched: Fetched, tmpPath: string, processed: Processed | undefined, _ctx: DownloadContext): Promise<ImageRecord> {
    const { key, caption } = sampleFields(item);
    const output = processed?.output;
    let original: Buffer;
    try {
      original = fetched.body ?? (await fs.promises.readFile(tmpPath));
    } catch (error) {
      throw new DownloadError('write_failed', `Could not read the temporary file: ${(error as Error).message}`, { cause: error });
    } finally {
      await fs.promises.rm(tmpPath, { force: true }).catch(() => {});
    }
    const dims = processed ? processed.original : await dimensions({ ...fetched, body: original });
    const ext = output ? output.ext : fetched.sniffed.ext;
    const record: ImageRecord = {
      url: item.url,
      finalUrl: fetched.finalUrl.href,
      file: '',
      bytes: output ? output.data.length : fetched.bytes,
      sha256: output ? output.sha256 : fetched.sha256,
      contentType: output ? output.mime : fetched.sniffed.mime,
      width: output ? output.width : dims.width,
      height: output ? output.height : dims.height,
    };
    if (item.info) record.metadata = JSON.parse(item.info) as unknown;
    Object.assign(record, sampleFields(item));
    const members: Member[] = [{ name: `${key}.${ext}`, data: output ? output.data : original }];
    if (output) {
      record.original = { bytes: fetched.bytes, sha256: fetched.sha256, contentType: fetched.sniffed.mime, width: dims.width, height: dims.height };
      if (this.keepOriginal) members.push({ name: `${key}.orig.${fetched.sniffed.ext}`, data: original });
    }
    if (caption !== undefined) members.push({ name: `${key}.txt`, data: Buffer.from(caption, 'utf8') });
    return new Promise((resolve, reject) => {
      this.queue.push({ item, key, record, members, resolve, reject });
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
    });
  }

  /** Writes queued samples, a batch at a time, into the open shard; completes shards as they fill. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, Math.min(BATCH_MAX, this.shardSize - this.state.samples));
      try {
        await this.append(batch);
        for (const p of batch) p.resolve(p.record);
      } catch (error) {
        const e = error instanceof DownloadError ? error : new DownloadError('write_failed', `Could not write shard ${shardName(this.state.shard)}: ${(error as Error).message}`, { cause: error });
        for (const p of batch) p.reject(e);
      }
      if (this.state.samples >= this.shardSize) {
        try {
          await this.complete();
        } catch (error) {
          // The shard stays a part file, completed by the next run; the run goes on into it (over the size).
          const e = new DownloadError('write_failed', `Could not complete shard ${shardName(this.state.shard)}: ${(error as Error).message}`, { cause: error });
          for (const p of this.queue.splice(0)) p.reject(e);
        }
      }
    }
  }

  private async open(): Promise<fs.promises.FileHandle> {
    if (this.file) return this.file;
    const part = this.path(this.state.shard, 'tar', true);
    // 'a+' would create it; 'r+' keeps what is there (positional writes at the committed length).
    if (!fs.existsSync(part)) await fs.promises.writeFile(part, '', { flag: 'wx' }).catch(() => {});
    this.file = await fs.promises.open(part, 'r+');
    return this.file;
  }

  private async append(batch: Pending[]): Promise<void> {
    const shard = `${shardName(this.state.shard)}.tar`;
    const entries: Member[] = [];
    for (const p of batch) {
      p.record.file = `${shard}/${p.members[0]!.name}`;
      entries.push(...p.members, { name: `${p.key}.json`, data: Buffer.from(JSON.stringify(p.record), 'utf8') });
    }
    const bytes = await this.pack(entries);
    const file = await this.open();
    await file.write(bytes, 0, bytes.length, this.state.length);
    fs.appendFileSync(this.path(this.state.shard, 'jsonl', true), batch.map((p) => JSON.stringify(indexLine(p.record, 'success')) + '\n').join(''));
    const next = { shard: this.state.shard, length: this.state.length + bytes.length, samples: this.state.samples + batch.length };
    this.store.transaction(() => {
      for (const p of batch) {
        if (!this.store.claim(p.item.id, p.record.file, JSON.stringify(p.record))) throw new DownloadError('internal', `Could not claim ${p.record.file} for ${p.item.url}`);
      }
      this.store.setMeta(META_SHARD, JSON.stringify(next));
    });
    this.state = next;
    for (const p of batch) for (const m of p.members) this.members.set(m.name, m.data.length);
  }

  /** The tar bytes of `entries` (headers, data, padding), without the end-of-archive blocks. */
  private async pack(entries: Member[]): Promise<Buffer> {
    const pack = this.tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    const ended = new Promise<void>((resolve, reject) => {
      pack.on('end', () => resolve());
      pack.on('error', reject);
    });
    const mtime = new Date();
    for (const e of entries) pack.entry({ name: e.name, size: e.data.length, mtime, mode: 0o644 }, e.data);
    pack.finalize();
    await ended;
    const all = Buffer.concat(chunks);
    return all.subarray(0, all.length - END_OF_ARCHIVE);
  }

  /** The open shard, renamed into place with its index, ended; the next one is opened on the next sample. */
  private async complete(): Promise<void> {
    this.completing = true;
    try {
      await this.completeShard();
    } finally {
      this.completing = false;
      // Failures and duplicates noted meanwhile go into the index of the shard open now (the next one, unless this
      // completion failed).
      for (const line of this.held.splice(0)) this.note(line);
    }
  }

  /** True while the open shard is being completed: its index is renamed already, so lines wait (see note()). */
  private completing = false;
  private readonly held: IndexLine[] = [];

  private async completeShard(): Promise<void> {
    const n = this.state.shard;
    const file = await this.open();
    await file.truncate(this.state.length);
    await file.write(Buffer.alloc(END_OF_ARCHIVE), 0, END_OF_ARCHIVE, this.state.length);
    await file.sync();
    await file.close();
    this.file = undefined;
    const indexPart = this.path(n, 'jsonl', true);
    if (!fs.existsSync(indexPart)) fs.writeFileSync(indexPart, '');
    fs.renameSync(indexPart, this.path(n, 'jsonl', false));
    await placeNoReplace(this.path(n, 'tar', true), this.path(n, 'tar', false));
    this.members.clear();
    // A job's one shard stays its shard, complete: holds() finds its samples in the final file.
    this.store.transaction(() => this.commitState({ shard: this.fixed ?? this.firstFree(n + 1), length: 0, samples: 0 }));
  }

  failed(item: Item, failure: { code: ReasonCode; status: number | null; message: string }): void {
    const { key, caption } = sampleFields(item);
    const line: IndexLine = { key, url: item.url, status: 'failed', error: failure.code, message: failure.message, file: null, sha256: null, width: null, height: null, caption: caption ?? null };
    this.note(line);
  }

  duplicate(_item: Item, record: ImageRecord): void {
    this.note(indexLine(record, 'duplicate'));
  }

  /** A failure or duplicate line, into the open shard's index. */
  private note(line: IndexLine): void {
    // The shard being completed has its index renamed into place (or about to be): a line appended under its part
    // name now would create a second index part that no completion ever renames.
    if (this.completing) {
      this.held.push(line);
      return;
    }
    try {
      fs.appendFileSync(this.path(this.state.shard, 'jsonl', true), JSON.stringify(line) + '\n');
    } catch {
      // The failure report (failures.jsonl) has it in any case.
    }
  }

  async close(finished: boolean): Promise<void> {
    while (this.writing) await this.writing;
    const index = this.path(this.state.shard, 'jsonl', true);
    const noted = fs.existsSync(index) && fs.statSync(index).size > 0;
    if (finished && (this.state.samples > 0 || noted)) await this.complete();
    await this.file?.close().catch(() => {});
    this.file = undefined;
    if (finished && this.state.samples === 0) {
      // Nothing in the open shard: no empty part files left behind (a crash may have created them).
      for (const file of [this.path(this.state.shard, 'tar', true), index]) {
        if (fs.existsSync(file) && fs.statSync(file).size === 0) await fs.promises.rm(file, { force: true });
      }
    }
  }
}

/** True when both paths exist and are one file (hard links of each other). */
function sameFile(a: string, b: string): boolean {
  const sa = fs.statSync(a, { throwIfNoEntry: false });
  const sb = fs.statSync(b, { throwIfNoEntry: false });
  return sa !== undefined && sb !== undefined && sa.ino === sb.ino && sa.dev === sb.dev;
}

function indexLine(record: ImageRecord, status: 'success' | 'duplicate'): IndexLine {
  return {
    key: record.key ?? '',
    url: record.url,
    status,
    error: null,
    file: record.file,
    sha256: record.sha256,
    width: record.width,
    height: record.height,
    caption: record.caption ?? null,
    ...(record.duplicateOf !== undefined ? { duplicateOf: record.duplicateOf } : {}),
  };
}
