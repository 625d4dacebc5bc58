// Seed 003: download a list of URLs (one a line, # comments) into a folder named after the list (cats.txt →
// cats/), with retries, safe names (Content-Disposition, a filePath= query parameter, else the URL) and real
// image checks (an HTML page sent as image/png is a failure); prints a summary and the failures. The run is
// resumable: run it again (even after Ctrl-C or a crash) and nothing already saved is fetched twice.
// Without a list, it downloads five flags into sample/.
//
//   npx tsx examples/003-list-to-folder.ts [--base-url URL] [--out DIR] [LIST.txt]
//   bun examples/003-list-to-folder.ts [--base-url URL] [--out DIR] [LIST.txt]
//   deno run -A examples/003-list-to-folder.ts [--base-url URL] [--out DIR] [LIST.txt]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { get } from '../src/index.ts';

const { values, positionals } = parseArgs({ options: { 'base-url': { type: 'string' }, out: { type: 'string' } }, allowPositionals: true });
const base = values['base-url'] ?? process.env.IMGDL_BASE_URL ?? 'http://flupy.org/data/flags';
const [list] = positionals;

const summary = await get({
  inputs: list ? [list] : ['cn', 'in', 'us', 'br', 'jp'].map((cc) => `${base}/${cc}/${cc}.gif`),
  out: path.join(values.out ?? '.', list ? path.parse(list).name : 'sample'),
  concurrency: 10,
  retries: 5,
  onStart: (engine) => engine.on('saved', (image) => console.log(`saved ${image.file} (${image.bytes} bytes)`)),
});

console.log(`${summary.downloaded} downloaded, ${summary.skipped} already saved, ${summary.failed} failed, ${summary.bytes} bytes in ${summary.seconds} s → ${summary.outDir}`);
if (summary.failed > 0) {
  for (const line of fs.readFileSync(summary.failuresFile, 'utf8').split('\n').filter(Boolean)) {
    const { url, code, status, message } = JSON.parse(line) as { url: string; code: string; status: number | null; message: string };
    console.log(`failed: ${url}  ${code}${status ? ` ${status}` : ''}  ${message}`);
  }
  process.exitCode = 1;
}
