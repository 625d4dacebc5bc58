import fs from 'node:fs';
import readline from 'node:readline';
import type { RunStore } from './state.ts';

const FLUSH_MS = 200;
const FLUSH_LINES = 1000;

/**
 * The output folder's metadata file: one JSON line per saved image. Lines are appended in batches; an image
 * is marked done in the store only after its line is written, so after a crash the store knows which lines
 * may be missing and `repair` adds exactly those.
 */
export class MetadataLog {
  private lines: string[] = [];
  private ids: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    readonly file: string,
    private readonly store: RunStore,
  ) {}

  append(id: number, record: object): void {
    this.lines.push(JSON.stringify(record));
    this.ids.push(id);
    if (this.lines.length >= FLUSH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return this.flushing;
    const text = this.lines.join('\n') + '\n';
    const ids = this.ids;
    this.lines = [];
    this.ids = [];
    this.flushing = this.flushing.then(async () => {
      await fs.promises.appendFile(this.file, text);
      this.store.markDone(ids);
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flush();
  }

  /** After a crash: drops a torn last line, then appends the records of `records` not already in the file. */
  async repair(records: string[]): Promise<void> {
    if (!fs.existsSync(this.file)) {
      if (records.length > 0) await fs.promises.appendFile(this.file, records.join('\n') + '\n');
      return;
    }
    await truncateTornLine(this.file);
    if (records.length === 0) return;
    const present = new Set((await this.readAll()).map((r) => r.url));
    const missing = records.filter((r) => !present.has((JSON.parse(r) as { url: string }).url));
    if (missing.length > 0) await fs.promises.appendFile(this.file, missing.join('\n') + '\n');
  }

  /** Every well-formed record in the file. */
  async readAll(): Promise<Array<{ url: string; file: string } & Record<string, unknown>>> {
    if (!fs.existsSync(this.file)) return [];
    const out: Array<{ url: string; file: string }> = [];
    const rl = readline.createInterface({ input: fs.createReadStream(this.file), crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as { url: string; file: string });
      } catch {
        // A torn line from a crash; repair() removes it.
      }
    }
    return out;
  }
}

async function truncateTornLine(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r+');
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
