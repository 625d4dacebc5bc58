/**
 * Issue 16's ingest figure: a big input table read into a run while its downloads go on, in bounded memory.
 *
 *   node --import tsx bench/ingest.ts                              # 1,000,000 rows: txt, csv, jsonl, parquet; and 100,000 of each
 *   node --import tsx bench/ingest.ts --rows 1000000 --formats csv,parquet
 *
 * Writes each table (url, caption, width, height, license; the Parquet one with hyparquet-writer, its default row
 * groups of 100,000 rows and offset indexes), then runs `imgdl get TABLE --caption-col caption` against the local
 * origin (bench/origin.ts, its own process, 20 ms per answer) and polls the run's store (read-only) until every row
 * is in (the "all read" mark); then SIGINT. Reported per run: seconds until every row was in, rows per second,
 * images saved meanwhile (the downloads ran while the table was read), and the CLI's peak RSS (GNU time's max RSS,
 * else /proc). `--heap MB` runs the CLI with a V8 heap capped at MB (--max-old-space-size): a run that reads every row
 * under a small cap shows that what it keeps alive is bounded, whatever peak RSS a lazy GC lets the process reach. Writes
 * bench/results/ingest-<date>.json. Every child and wait is bounded; the temp folder is removed on any way out.
 */
import { createWriteStream, mkdtempSync, existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine } from './lib/machine.ts';
import { cleanUpOnExit, killAll, killGroup, startMeasured, startService, waitExit } from './lib/proc.ts';
import { imgdlCli } from './lib/tools.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = dirname(benchDir);
const FORMATS = ['txt', 'csv', 'jsonl', 'parquet'] as const;
type Format = (typeof FORMATS)[number];
const RUN_LIMIT_MS = 15 * 60_000;

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000,1000000' },
    formats: { type: 'string', default: FORMATS.join(',') },
    heap: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('Usage: node --import tsx bench/ingest.ts [--rows 100000,1000000] [--formats txt,csv,jsonl,parquet] [--heap MB]');
  console.log('  --heap MB   run the CLI with --max-old-space-size=MB: a run that completes shows its live memory fits');
  process.exit(0);
}
const sizes = values.rows.split(',').map(Number);
const formats = values.formats.split(',') as Format[];
if (sizes.some((n) => !Number.isInteger(n) || n < 1) || formats.some((f) => !FORMATS.includes(f))) throw new Error('bad --rows or --formats');

const tmp = mkdtempSync(join(os.tmpdir(), 'imgdl-bench-ingest-'));
cleanUpOnExit(tmp, 'bench/ingest');

const url = (port: number, i: number) => `http://127.0.0.1:${port}/img/${i}.png`;
const caption = (i: number) => `a photo, number ${i}, of something "quoted"`;

async function writeLines(file: string, rows: number, line: (i: number) => string, header?: string): Promise<void> {
  const out = createWriteStream(file);
  if (header) out.write(header + '\n');
  let batch: string[] = [];
  for (let i = 0; i < rows; i++) {
    batch.push(line(i));
    if (batch.length === 10_000 || i === rows - 1) {
      if (!out.write(batch.join('\n') + '\n')) await once(out, 'drain');
      batch = [];
    }
  }
  out.end();
  await once(out, 'finish');
}

async function writeTable(format: Format, file: string, rows: number, port: number): Promise<void> {
  if (format === 'txt') return writeLines(file, rows, (i) => url(port, i));
  if (format === 'csv') return writeLines(file, rows, (i) => `${url(port, i)},"${caption(i).replace(/"/g, '""')}",${640 + (i % 7)},480,cc-by`, 'url,caption,width,height,license');
  if (format === 'jsonl') return writeLines(file, rows, (i) => JSON.stringify({ url: url(port, i), caption: caption(i), width: 640 + (i % 7), height: 480, license: 'cc-by' }));
  const { parquetWriteFile } = await import('hyparquet-writer');
  const index = Array.from({ length: rows }, (_, i) => i);
  await parquetWriteFile({
    filename: file,
    columnData: [
      { name: 'url', data: index.map((i) => url(port, i)), type: 'STRING' },
      { name: 'caption', data: index.map(caption), type: 'STRING' },
      { name: 'width', data: index.map((i) => 640 + (i % 7)), type: 'INT32' },
      { name: 'height', data: index.map(() => 480), type: 'INT32' },
      { name: 'license', data: index.map(() => 'cc-by'), type: 'STRING' },
    ],
  });
}

interface Figure {
  format: Format;
  rows: number;
  tableMb: number;
  status: string;
  ingestSeconds: number | null;
  rowsPerSecond: number | null;
  savedWhileIngesting: number | null;
  peakRssMb: number;
  heapCapMb: number | null;
}

async function openStore(file: string) {
  const { default: Database } = await import('better-sqlite3');
  return new Database(file, { readonly: true, fileMustExist: true });
}

async function runOne(format: Format, rows: number, port: number): Promise<Figure> {
  const dir = join(tmp, `${format}-${rows}`);
  await mkdir(dir, { recursive: true });
  const table = join(dir, `table.${format}`);
  await writeTable(format, table, rows, port);
  const { size } = await import('node:fs').then((fs) => fs.statSync(table));
  const runName = `bench-ingest-${format}-${rows}`;
  const storage = join(dir, 'state');
  const measured = startMeasured(
    { cmd: process.execPath, args: [...(values.heap ? [`--max-old-space-size=${Number(values.heap)}`] : []), imgdlCli(repoRoot), 'get', table, '--caption-col', 'caption', '--out', join(dir, 'out'), '--storage', storage, '--run', runName, '--quiet', '--no-report'], cwd: dir },
    RUN_LIMIT_MS,
    dir,
  );
  const stateFile = join(storage, 'runs', runName, 'state.sqlite');
  const started = measured.startedAt;
  let ingestSeconds: number | null = null;
  let saved: number | null = null;
  let status = 'ok';
  for (;;) {
    if (measured.child.exitCode !== null || measured.child.signalCode !== null) {
      status = `exited before every row was in${measured.child.exitCode !== null ? ` (exit ${measured.child.exitCode})` : ''}`;
      break;
    }
    if (performance.now() - started > RUN_LIMIT_MS - 30_000) {
      status = 'timed out';
      break;
    }
    await sleep(250);
    if (!existsSync(stateFile)) continue;
    try {
      const db = await openStore(stateFile);
      try {
        const mark = db.prepare("SELECT value FROM meta WHERE key = 'ingested'").get() as { value: string } | undefined;
        if (mark) {
          ingestSeconds = (performance.now() - started) / 1000;
          saved = (db.prepare('SELECT count(*) AS n FROM items WHERE status = 2').get() as { n: number }).n;
          const total = (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n;
          if (total !== rows) status = `${total} rows in the store, not ${rows}`;
          break;
        }
      } finally {
        db.close();
      }
    } catch {
      // The store is being created, or busy: ask again.
    }
  }
  killGroup(measured.child, 'SIGINT');
  if (!(await waitExit(measured.child, 15_000))) killGroup(measured.child, 'SIGKILL');
  const result = await measured.done;
  await rm(dir, { recursive: true, force: true });
  return {
    format,
    rows,
    tableMb: Math.round((size / 1e6) * 10) / 10,
    status,
    ingestSeconds: ingestSeconds === null ? null : Math.round(ingestSeconds * 10) / 10,
    rowsPerSecond: ingestSeconds === null ? null : Math.round(rows / ingestSeconds),
    savedWhileIngesting: saved,
    peakRssMb: result.peakRssMb,
    heapCapMb: values.heap ? Number(values.heap) : null,
  };
}

const { child: origin, firstLine } = await startService(
  { cmd: process.execPath, args: ['--import', 'tsx', join(benchDir, 'origin.ts'), '--bytes', '2048', '--latency', '20'], cwd: repoRoot },
  20_000,
);
const { ports } = JSON.parse(firstLine) as { ports: number[] };
const figures: Figure[] = [];
try {
  for (const rows of sizes) {
    for (const format of formats) {
      const figure = await runOne(format, rows, ports[0]!);
      figures.push(figure);
      console.log(JSON.stringify(figure));
    }
  }
} finally {
  killGroup(origin);
}

console.log('\n| format | rows | table MB | all rows in (s) | rows/s | images saved meanwhile | peak RSS (MB) | status |');
console.log('|---|---|---|---|---|---|---|---|');
for (const f of figures) {
  console.log(`| ${f.format} | ${f.rows.toLocaleString('en-US')} | ${f.tableMb} | ${f.ingestSeconds ?? '–'} | ${f.rowsPerSecond?.toLocaleString('en-US') ?? '–'} | ${f.savedWhileIngesting?.toLocaleString('en-US') ?? '–'} | ${f.peakRssMb} | ${f.status} |`);
}
const resultsDir = join(benchDir, 'results');
await mkdir(resultsDir, { recursive: true });
const file = join(resultsDir, `ingest-${new Date().toISOString().slice(0, 10)}.json`);
await writeFile(file, JSON.stringify({ machine: machine(null), figures }, null, 2) + '\n');
console.log(`\n${file}`);
killAll();
