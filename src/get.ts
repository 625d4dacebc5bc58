import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './errors.ts';
import { Engine, FAILURES_FILE, METADATA_FILE, S3_LOCAL_DIR, type InputItem, type ItemInput, type Progress, type RunHandle, type Summary } from './core/engine.ts';
import { asItem, isBinary, readList } from './core/input.ts';
import { checkTable, INPUT_FORMATS, inputFormat, readTable, rowKey, type InputFormat, type TableColumns } from './core/tables.ts';
import { deriveRunName, markRunEnded, markRunStarted, runsDir, safeRunName, storageDir } from './core/runs.ts';
import { httpOption, type HttpClientKind } from './http/client.ts';
import { redact } from './http/credentials.ts';
import { storedUrl } from './core/urls.ts';
import { checkNoS3Options, isS3Url, parseS3Target, s3Url, type S3Options } from './output/s3-target.ts';
import { resolveOptions, type DownloadOptions } from './options.ts';
import type { ImageRecord } from './core/download.ts';
import type { ReasonCode } from './errors.ts';
import type { FailureRecord } from './storage/state.ts';
import type { QueueProgress } from './queue/coordinator.ts';
import type { ShardEvent } from './queue/worker.ts';

export interface GetOptions extends DownloadOptions, S3Options {
  /** List files (one URL a line) and/or URLs. */
  inputs?: string[];
  /** Images given directly (URLs, or items with their own name and metadata), added before the lists. */
  items?: Array<string | ItemInput>;
  /**
   * Output folder; default: named after the first list file (`cats.txt` → `cats/`), or `downloads/`. Or
   * `s3://BUCKET/PREFIX`: images uploaded to an S3 bucket (or an S3-compatible store: `s3Endpoint`), credentials from
   * the AWS SDK's default chain (environment, shared files, SSO, instance roles); needs `@aws-sdk/client-s3` and
   * `@aws-sdk/lib-storage` (see the README, "S3 output").
   */
  out?: string;
  /** Run name; default: derived from the inputs and the output folder. */
  run?: string;
  /** Where run state lives; default `./storage` (no environment variable is read: the CLI passes `$IMGDL_STORAGE`). */
  storage?: string;
  /** The HTTP client: `undici` or the runtime's `fetch`; default: undici where its Agent is usable (Node, Deno), else fetch (Bun). */
  http?: HttpClientKind;
  /** Forget the run's state and start over. */
  fresh?: boolean;
  /** Try again the images that failed in an earlier run. */
  retryFailed?: boolean;
  signal?: AbortSignal;
  /** The argv that reproduces this call, kept so that the run can be resumed by name. */
  command?: string[];
  /** Called once the engine is open (for its `saved`, `failed` and `retry` events). */
  onStart?: (run: RunHandle) => void;
  /** Called after each image is settled, with the run's counts. */
  onProgress?: (progress: Progress) => void;
  /**
   * The format of the list files: `txt` (one URL a line), `csv`, `tsv`, `jsonl` (JSON Lines) or `parquet`; default:
   * from each file's extension (`.csv`, `.tsv`, `.jsonl`/`.ndjson`, `.parquet`; anything else is a text list).
   */
  inputFormat?: InputFormat | (string & {});
  /** Input tables: the column holding each image's URL. @default "url" */
  urlCol?: string;
  /** Input tables: the column holding each image's caption (in its record as `caption`). @default none */
  captionCol?: string;
  /**
   * Input tables: the columns kept in each record's `metadata` (an array, or a comma list as the CLI passes it);
   * the caption column is kept too. @default every column but the URL's
   */
  saveCols?: readonly string[] | string;
  /** Write `report.html` (thumbnails, failures, throughput) in the output folder at the end. @default true */
  report?: boolean;
  /**
   * Spread the run over many machines: the Redis (`redis://host:6379/0`) whose BullMQ queue `imgdl worker`s take
   * shards from. The run is cut into jobs (shards of the run) of `jobSize` URLs; this call works on shards too and returns the whole
   * run's summary once every shard is done (see the README, "Many machines").
   */
  queue?: string;
  /** With `queue`: URLs per shard job. @default 10000 */
  jobSize?: number | string;
  /** With `queue`: how long a worker's hold on a shard lasts without renewal, in seconds (see startWorker). @default 30 */
  lockDuration?: number | string;
  /** With `queue`: called every half second with the whole run's counts. */
  onQueueProgress?: (progress: QueueProgress) => void;
  /** With `queue`: called when this process starts, ends or hands back a shard. */
  onShard?: (event: ShardEvent) => void;
}

function isUrlLike(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(value) && !fs.existsSync(value);
}

/** Resolves where a `get` writes and which run it continues, validating everything before any network work. */
export function planGet(options: GetOptions) {
  if (typeof options !== 'object' || options === null) throw new UsageError('Expected options to be an object');
  if (options.inputs !== undefined && !(Array.isArray(options.inputs) && options.inputs.every((i) => typeof i === 'string'))) {
    throw new UsageError(`Expected \`inputs\` to be an array of list files and URLs, got ${JSON.stringify(options.inputs)}`);
  }
  if (options.items !== undefined && !Array.isArray(options.items)) {
    throw new UsageError(`Expected \`items\` to be an array of URLs or { url, name?, metadata? }, got ${typeof options.items}`);
  }
  const items = (options.items ?? []).map(toItem);
  if ((options.inputs ?? []).length === 0 && items.length === 0) {
    throw new UsageError('Give a list file (one URL a line) or one or more URLs');
  }
  const table = tableOptions(options);
  const lists: string[] = [];
  const urls: string[] = [];
  for (const input of options.inputs ?? []) {
    if (input === '-' ) lists.push(input);
    else if (isUrlLike(input)) urls.push(input);
    else {
      try {
        if (!fs.statSync(input).isFile()) throw new Error('not a file');
        fs.accessSync(input, fs.constants.R_OK);
      } catch {
        throw new UsageError(`Cannot read the list ${input}: no such readable file (and not a URL)`);
      }
      // A Parquet table is binary; every other input is text.
      if (inputFormat(input, table.format) !== 'parquet') checkTextList(input);
      lists.push(path.resolve(input));
    }
  }
  const formats = lists.map((list) => inputFormat(list, table.format));
  if (formats.some((f, i) => f === 'parquet' && lists[i] === '-')) throw new UsageError('A Parquet table cannot be read from stdin (it is read by ranges): give its file');
  const tables = formats.filter((f) => f !== 'txt').length;
  const firstList = lists.find((l) => l !== '-');
  if (options.out !== undefined && typeof options.out !== 'string') throw new UsageError(`Expected \`out\` to be a folder or s3://BUCKET/PREFIX, got ${JSON.stringify(options.out)}`);
  const s3 = isS3Url(options.out) ? parseS3Target(options.out, options) : undefined;
  if (!s3) checkNoS3Options(options);
  const folder = s3 ? undefined : path.resolve(options.out ?? (firstList ? path.basename(firstList, path.extname(firstList)) : 'downloads'));
  // Where the output is, as the run's identity and its summary say: the folder, or the bucket and prefix (and store).
  const shownOut = s3 ? s3Url(s3) : folder!;
  const label = firstList ? path.basename(firstList, path.extname(firstList)) : 'urls';
  // Items join the identity only when given, so a CLI run's name stays what it always was. URLs count with their
  // password as `***`: the same command with or without the password is the same run.
  const shown = urls.map(redact);
  const shownItems = items.map((item) => ({ ...item, url: redact(item.url) }));
  const outDir = s3 ? { s3: shownOut, ...(s3.endpoint !== undefined ? { endpoint: s3.endpoint } : {}) } : folder;
  const identity: Record<string, unknown> = items.length > 0 ? { lists, urls: shown, outDir, items: createHash('sha256').update(JSON.stringify(shownItems)).digest('hex') } : { lists, urls: shown, outDir };
  // Reading a table another way (another URL or caption column, other columns kept) is another run.
  if (tables > 0) identity['table'] = { formats, urlCol: table.columns.urlCol, captionCol: table.columns.captionCol, saveCols: table.columns.saveCols };
  const run = options.run ? safeRunName(options.run) : deriveRunName('get', label, identity);
  if (!run) throw new UsageError(`Expected \`run\` to be a usable name, got ${JSON.stringify(options.run)}`);
  const stateDir = path.join(runsDir(storageDir(options.storage)), run);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new UsageError('Expected `onProgress` to be a function');
  httpOption(options.http);
  if (options.report !== undefined && typeof options.report !== 'boolean') throw new UsageError(`Expected \`report\` to be a boolean, got ${JSON.stringify(options.report)}`);
  // An s3:// run keeps its records, failure report and temporary files in a folder of its state (uploaded from there).
  const localDir = s3 ? path.join(stateDir, S3_LOCAL_DIR) : folder!;
  return { lists, formats, columns: table.columns, urls, items, outDir: localDir, shownOut, s3, run, stateDir, engineOptions: resolveOptions(pickDownloadOptions(options)), report: options.report ?? true };
}

/** The input table options, checked. */
function tableOptions(options: GetOptions): { format: InputFormat | undefined; columns: TableColumns } {
  const format = options.inputFormat as InputFormat | undefined;
  if (format !== undefined && !INPUT_FORMATS.includes(format)) {
    throw new UsageError(`Expected \`inputFormat\` to be one of ${INPUT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  }
  const column = (name: string, value: unknown): string => {
    if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`Expected \`${name}\` to be a column name, got ${JSON.stringify(value)}`);
    return value.trim();
  };
  const columns: TableColumns = { urlCol: options.urlCol === undefined ? 'url' : column('urlCol', options.urlCol) };
  if (options.captionCol !== undefined) columns.captionCol = column('captionCol', options.captionCol);
  if (options.saveCols !== undefined) {
    const list = typeof options.saveCols === 'string' ? options.saveCols.split(',') : options.saveCols;
    if (!Array.isArray(list) || list.length === 0) throw new UsageError(`Expected \`saveCols\` to be a list of column names like a,b, got ${JSON.stringify(options.saveCols)}`);
    columns.saveCols = [...new Set(list.map((c: unknown) => column('saveCols', c)))];
  }
  return { format, columns };
}

/** A list is text: a file holding binary data (an image or archive given by mistake) is refused before any work. */
function checkTextList(file: string): void {
  const head = Buffer.alloc(64 * 1024);
  const fd = fs.openSync(file, 'r');
  let n: number;
  try {
    n = fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (isBinary(head.subarray(0, n))) throw new UsageError(`${file} is not a list of URLs: it holds binary data (give a text file, one URL a line)`);
}

function toItem(input: unknown, i: number): ItemInput {
  const item = asItem(input);
  if ('wrong' in item) throw new UsageError(`Expected \`items[${i}]${item.wrong}`);
  return item;
}

/** The download options among get()'s (what a distributed run hands its workers). */
export function pickDownloadOptions(options: GetOptions): DownloadOptions {
  const {
    inputs: _i, items: _it, out: _o, run: _r, storage: _s, http: _h, fresh: _f, retryFailed: _rf, signal: _sg, command: _c, onStart: _os, onProgress: _op,
    inputFormat: _if, urlCol: _uc, captionCol: _cc, saveCols: _sc, report: _rp,
    queue: _q, jobSize: _js, lockDuration: _ld, onQueueProgress: _oq, onShard: _osh, s3Endpoint: _se, s3Addressing: _sa, s3Region: _sr, ...rest
  } = options;
  return rest;
}

/** Downloads lists and URLs into a folder; continues the run if it was interrupted. */
export async function get(options: GetOptions): Promise<Summary> {
  if (typeof options === 'object' && options !== null && options.queue !== undefined) {
    const { getQueued } = await import('./queue/coordinator.ts');
    return getQueued(options);
  }
  const plan = planGet(options);
  // A table without its URL column (or a named one) is refused before any work.
  for (const [i, list] of plan.lists.entries()) await checkTable(list, plan.formats[i]!, plan.columns);
  const engine = await Engine.open({
    stateDir: plan.stateDir,
    outDir: plan.outDir,
    name: plan.run,
    options: plan.engineOptions,
    items: inputs(plan.items, plan.lists, plan.urls, plan.formats, plan.columns),
    report: plan.report,
    // Once a run has read all of its inputs, a resume does not read them again, unless a list file changed since
    // (lines appended to a list are fetched by the next run; re-adding the others is a no-op). A list on stdin
    // cannot be known without reading it, so it is always read.
    ingestKey: plan.lists.includes('-') ? undefined : fingerprint(plan.lists),
    retryFailed: options.retryFailed,
    fresh: options.fresh,
    signal: options.signal,
    // The client asked for; when none is, the engine makes this runtime's default.
    httpKind: options.http,
    ...(plan.s3 ? { s3: { target: plan.s3 } } : {}),
  });
  markRunStarted(plan.stateDir, { name: plan.run, kind: 'get', command: options.command ?? ['get', ...(options.inputs ?? [])], outDir: plan.shownOut });
  options.onStart?.(engine);
  if (options.onProgress) engine.onProgress(options.onProgress);
  const summary = await engine.run();
  markRunEnded(plan.stateDir, summary);
  return summary;
}

/** The images of a get(): items given directly, then URLs, then the lists' lines (or tables' rows), in order. */
export async function* inputs(items: ItemInput[], lists: string[], urls: string[], formats: InputFormat[], columns: TableColumns): AsyncGenerator<InputItem> {
  yield* items;
  for (const url of urls) yield { url };
  // Each table row's key is its row number; with several tables, prefixed by the table's place among them.
  const tables = formats.filter((f) => f !== 'txt').length;
  let table = 0;
  for (const [i, list] of lists.entries()) {
    const format = formats[i]!;
    if (format === 'txt') {
      yield* readList(list);
      continue;
    }
    const n = table++;
    yield* readTable(list, format, columns, (row) => rowKey(row, n, tables));
  }
}

/** Size and modification time of each list file, as they were before the run read them all. */
function fingerprint(lists: string[]): string {
  return JSON.stringify(
    lists.map((list) => {
      try {
        const stat = fs.statSync(list);
        return [list, stat.size, stat.mtimeMs];
      } catch {
        return [list, null];
      }
    }),
  );
}

/** One URL's outcome in a folder download, in input order. */
export type FolderResult =
  | { status: 'saved'; ok: true; index: number; url: string; file: string; path: string; record: ImageRecord }
  | { status: 'failed'; ok: false; index: number; url: string; code: ReasonCode; httpStatus: number | null; message: string }
  /** Not tried yet: the run was stopped (its signal aborted) before this URL; running it again continues. */
  | { status: 'pending'; ok: false; index: number; url: string };

/**
 * Downloads URLs into a folder with the same engine, options and durable resume state as `imgdl get`, and
 * returns the summary with one result per URL in input order. Called again with the same URLs and folder,
 * it continues an interrupted run and fetches nothing that was already saved.
 *
 * @example
 * ```ts
 * import { download } from 'imgdl';
 * const { summary, results } = await download(['https://example.com/a.png', 'https://example.com/b.jpg'], { out: 'pics' });
 * for (const r of results) console.log(r.url, r.ok ? r.file : r.status === 'failed' ? r.code : 'pending');
 * ```
 */
export async function download(
  urls: Array<string | ItemInput>,
  options: Omit<GetOptions, 'inputs' | 'items'> = {},
): Promise<{ summary: Summary; results: FolderResult[] }> {
  if (!Array.isArray(urls)) throw new UsageError(`Expected \`urls\` to be an array, got ${typeof urls}`);
  const summary = await get({ ...options, items: urls });
  // An s3:// run's records are read from its local copies (what it uploaded); `path` is then the object's s3:// URL.
  const s3 = isS3Url(options.out) ? planGet({ ...options, items: urls }) : undefined;
  const local = s3?.outDir ?? summary.outDir;
  const where = (file: string) => (s3?.s3 ? s3Url(s3.s3, file) : path.join(summary.outDir, file));
  const records = new Map<string, ImageRecord>();
  for (const r of await readJsonLines<ImageRecord>(path.join(local, METADATA_FILE))) records.set(r.url, r);
  const failures = new Map<string, FailureRecord>();
  for (const f of await readJsonLines<FailureRecord>(path.join(local, FAILURES_FILE))) failures.set(f.url, f);
  const results = urls.map((input, index): FolderResult => {
    const raw = typeof input === 'string' ? input : String(input.url);
    const url = recordedUrl(raw);
    const record = records.get(url);
    if (record) return { status: 'saved', ok: true, index, url, file: record.file, path: where(record.file), record };
    const failure = failures.get(url) ?? failures.get(redact(raw));
    if (failure) return { status: 'failed', ok: false, index, url, code: failure.code, httpStatus: failure.status, message: failure.message };
    return { status: 'pending', ok: false, index, url };
  });
  return { summary, results };
}

/** The URL as the engine records it (see storedUrl); the raw text (password redacted) when not an http(s) URL. */
function recordedUrl(raw: string): string {
  return storedUrl(raw) ?? redact(raw);
}

async function readJsonLines<T>(file: string): Promise<T[]> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch {
    return [];
  }
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // A torn last line from a crash is repaired by the next run.
    }
  }
  return out;
}
