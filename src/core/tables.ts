// Input tables: CSV, TSV, JSON Lines and Parquet files whose rows are images, with a URL column, an optional caption
// column and other columns kept as each record's metadata (as img2dataset reads them). Each is streamed: rows come
// out in order, a bounded number at a time, so a table of any size is ingested while downloads run. A row that
// cannot be used (no URL, a line that is not JSON, a record with an unclosed quote) comes out as a bad row, which the
// run records as a failure with the row's number: never a crash. csv-parse and hyparquet are loaded only when a table
// is read.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { UsageError, type ReasonCode } from '../errors.ts';
import type { InputItem } from './types.ts';

export const INPUT_FORMATS = ['txt', 'csv', 'tsv', 'jsonl', 'parquet'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

/** How the columns of a table become an image's URL, caption and metadata. */
export interface TableColumns {
  /** The column holding the image's URL. @default "url" */
  urlCol: string;
  /** The column holding its caption (in the record as `caption`, and in its metadata); none by default. */
  captionCol?: string;
  /** The columns kept in the record's metadata; default: every column but the URL's. */
  saveCols?: readonly string[];
}


/** Digits of a row's key: `000000042`. Keys stay this wide up to a billion rows (img2dataset's keys are as wide). */
const KEY_DIGITS = 9;

/** The key of row `row` (0-based, header excluded) of input `input` of `inputs` table inputs. */
export function rowKey(row: number, input = 0, inputs = 1): string {
  const key = String(row).padStart(KEY_DIGITS, '0');
  return inputs > 1 ? `${String(input).padStart(4, '0')}_${key}` : key;
}

/** The format of an input file: from `--input-format`, else from its extension (`.csv`, `.tsv`, `.jsonl`, `.parquet`…). */
export function inputFormat(file: string, given?: InputFormat): InputFormat {
  if (given) return given;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  return 'txt';
}

/** Rows read from a table and added per batch (Parquet is read this many rows at a time where it can be). */
const PARQUET_SLICE = 10_000;

/**
 * The images of a table file (`-` for stdin, except Parquet), in row order. `key` gives each row's key from its
 * 0-based number. Throws a UsageError when the table has no such URL column (or a named column is missing).
 */
export async function* readTable(file: string, format: Exclude<InputFormat, 'txt'>, columns: TableColumns, key: (row: number) => string = rowKey): AsyncGenerator<InputItem> {
  const name = file === '-' ? 'stdin' : path.basename(file);
  const shape = new RowShape(name, columns);
  if (format === 'jsonl') yield* readJsonLines(file, name, shape, key);
  else if (format === 'parquet') yield* readParquet(file, name, shape, key);
  else yield* readDelimited(file, format, name, shape, key);
}

/** Turns a row (column → value) into an image: URL, caption, metadata; or a bad row. */
class RowShape {
  constructor(
    private readonly name: string,
    readonly columns: TableColumns,
  ) {}

  /** Checks a table's header: the URL column, the caption column and every --save-cols column must be there. */
  checkHeader(header: readonly string[]): void {
    const have = new Set(header);
    const { urlCol, captionCol, saveCols } = this.columns;
    const shown = header.length > 0 ? header.slice(0, 20).join(', ') + (header.length > 20 ? ', …' : '') : 'none';
    if (!have.has(urlCol)) throw new UsageError(`${this.name} has no column \`${urlCol}\` for the URLs (its columns: ${shown}); name it with --url-col`);
    if (captionCol !== undefined && !have.has(captionCol)) throw new UsageError(`${this.name} has no column \`${captionCol}\` for --caption-col (its columns: ${shown})`);
    const missing = (saveCols ?? []).filter((c) => !have.has(c));
    if (missing.length > 0) throw new UsageError(`${this.name} has no column ${missing.map((c) => `\`${c}\``).join(', ')} for --save-cols (its columns: ${shown})`);
  }

  item(row: Record<string, unknown>, key: string, where: string): InputItem {
    const { urlCol, captionCol, saveCols } = this.columns;
    const raw = row[urlCol];
    const item: InputItem = { url: typeof raw === 'string' ? raw.trim() : raw === null || raw === undefined ? '' : String(raw), key, where };
    const caption = captionCol === undefined ? undefined : row[captionCol];
    if (caption !== undefined && caption !== null) item.caption = typeof caption === 'string' ? caption : String(caption);
    const metadata: Record<string, unknown> = {};
    for (const column of saveCols ?? Object.keys(row)) if (column !== urlCol && row[column] !== undefined) metadata[column] = row[column];
    if (captionCol !== undefined && row[captionCol] !== undefined) metadata[captionCol] = row[captionCol];
    if (Object.keys(metadata).length > 0) item.metadata = metadata;
    if (item.url === '') item.bad = { code: 'invalid_url', message: `${where}: no URL in column \`${urlCol}\`` };
    return item;
  }

  bad(key: string, where: string, code: ReasonCode, message: string): InputItem {
    return { url: '', key, where, bad: { code, message: `${where}: ${message}` } };
  }
}

function open(file: string): Readable {
  return file === '-' ? process.stdin : fs.createReadStream(file);
}

async function* readDelimited(file: string, format: 'csv' | 'tsv', name: string, shape: RowShape, key: (row: number) => string): AsyncGenerator<InputItem> {
  const { parse } = await import('csv-parse');
  let n = 0;
  let lastLine = 1;
  let headerError: unknown;
  /** Records the parser skipped (an unclosed quote…), in order, yielded before the record that follows them. */
  const skipped: InputItem[] = [];
  const source = open(file);
  const parser = source.pipe(
    parse({
      delimiter: format === 'tsv' ? '\t' : ',',
      bom: true,
      columns: (header: string[]) => {
        try {
          shape.checkHeader(header.map(String));
        } catch (error) {
          headerError = error;
          throw error;
        }
        return header;
      },
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_skip: (error: (Error & { lines?: number }) | undefined) => {
        const row = n++;
        skipped.push(shape.bad(key(row), `${name} row ${row} (line ${lastLine + 1})`, 'invalid_row', error?.message ?? 'unreadable record'));
        lastLine = error?.lines ?? lastLine + 1;
      },
      on_record: (record: Record<string, string>, context: { lines: number }) => {
        const row = n++;
        const where = `${name} row ${row} (line ${lastLine + 1})`;
        lastLine = context.lines;
        return { item: shape.item(record, key(row), where), skipped: skipped.splice(0) };
      },
    }),
  );
  try {
    for await (const out of parser as AsyncIterable<{ item: InputItem; skipped: InputItem[] }>) {
      yield* out.skipped;
      yield out.item;
    }
  } catch (error) {
    if (headerError) throw headerError;
    throw new UsageError(`${name} could not be read as ${format.toUpperCase()}: ${(error as Error).message}`, { cause: error });
  } finally {
    // Read no further when the reader stops early (the run stopped, or only the header was checked).
    if (source !== process.stdin) source.destroy();
  }
  yield* skipped.splice(0);
}

async function* readJsonLines(file: string, name: string, shape: RowShape, key: (row: number) => string): AsyncGenerator<InputItem> {
  const source = open(file).setEncoding('utf8');
  const rl = readline.createInterface({ input: source, crlfDelay: Infinity });
  try {
    yield* jsonRows(rl, name, shape, key);
  } finally {
    rl.close();
    if (source !== process.stdin) source.destroy();
  }
}

async function* jsonRows(rl: readline.Interface, name: string, shape: RowShape, key: (row: number) => string): AsyncGenerator<InputItem> {
  let line = 0;
  let row = 0;
  for await (let text of rl) {
    line++;
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.includes('\u0000')) throw new UsageError(`${name} is not JSON Lines: it holds binary data`);
    if (text.trim() === '') continue;
    const n = row++;
    const where = `${name} row ${n} (line ${line})`;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      yield shape.bad(key(n), where, 'invalid_row', `not JSON (${(error as Error).message})`);
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      yield shape.bad(key(n), where, 'invalid_row', `not a JSON object (${text.length > 60 ? text.slice(0, 60) + '…' : text})`);
      continue;
    }
    yield shape.item(value as Record<string, unknown>, key(n), where);
  }
}

async function* readParquet(file: string, name: string, shape: RowShape, key: (row: number) => string): AsyncGenerator<InputItem> {
  if (file === '-') throw new UsageError('A Parquet table cannot be read from stdin (it is read by ranges): give its file');
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, toJson } = await import('hyparquet');
  const buffer = await asyncBufferFromFile(file);
  let metadata;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (error) {
    throw new UsageError(`${name} could not be read as Parquet: ${(error as Error).message}`, { cause: error });
  }
  const header = parquetSchema(metadata).children.map((c) => c.element.name);
  shape.checkHeader(header);
  // Only the columns the records use are read and decoded.
  const { urlCol, captionCol, saveCols } = shape.columns;
  const wanted = saveCols ? [...new Set([urlCol, ...(captionCol === undefined ? [] : [captionCol]), ...saveCols])] : undefined;
  let groupStart = 0;
  for (const group of metadata.row_groups) {
    const groupRows = Number(group.num_rows);
    // With an offset index (hyparquet-writer writes one) a slice of a row group reads only its
    // pages, so memory stays at a slice whatever the group's size; without one a slice would read the group's
    // column chunks again for every slice, so the group is read whole.
    const indexed = group.columns.every((c) => c.offset_index_offset !== undefined && c.offset_index_length !== undefined);
    const slice = indexed ? PARQUET_SLICE : groupRows;
    for (let start = groupStart; start < groupStart + groupRows; start += slice) {
      const end = Math.min(start + slice, groupStart + groupRows);
      let rows: Array<Record<string, unknown>>;
      try {
        rows = await parquetReadObjects({ file: buffer, metadata, rowStart: start, rowEnd: end, ...(wanted ? { columns: wanted } : {}), useOffsetIndex: true });
      } catch (error) {
        // A damaged page: the rows before it are in the run; the run stops with this one line.
        throw new UsageError(`${name} rows ${start}-${end - 1} could not be read as Parquet: ${(error as Error).message}`, { cause: error });
      }
      for (let i = 0; i < rows.length; i++) {
        const n = start + i;
        yield shape.item(toJson(rows[i]) as Record<string, unknown>, key(n), `${name} row ${n}`);
      }
    }
    groupStart += groupRows;
  }
}

/**
 * Checks a table file before any work: its URL (and named) columns are there. CSV and TSV: the header line; Parquet:
 * the schema; JSON Lines has no header (a row without a URL is a bad row).
 */
export async function checkTable(file: string, format: InputFormat, columns: TableColumns): Promise<void> {
  if (file === '-' || format === 'txt' || format === 'jsonl') return;
  // The first item read checks the header (the generator throws a UsageError when a column is missing).
  const rows = readTable(file, format, columns);
  try {
    await rows.next();
  } finally {
    await rows.return(undefined);
  }
}
