// Seed 001: the flags of the 20 most populous countries with their metadata (Fluent Python's flags example),
// saved as CN-China.gif, US-United_States.gif…, by running the built-in `flags` site plugin from a script.
// Each image's record in flags/metadata.jsonl carries its country's metadata.json. Run it again: nothing is
// fetched twice. Arguments are country codes (default: all 20).
//
//   npx tsx examples/001-flags.ts [--base-url URL] [--out DIR] [CC...]
//   bun examples/001-flags.ts [--base-url URL] [--out DIR] [CC...]
//   deno run -A examples/001-flags.ts [--base-url URL] [--out DIR] [CC...]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runPlugin, type ImageRecord } from '../src/index.ts';
import flags from '../plugins/flags.ts';

const { values, positionals } = parseArgs({ options: { 'base-url': { type: 'string' }, out: { type: 'string' } }, allowPositionals: true });

const summary = await runPlugin(flags, {
  // Options left undefined take the plugin's defaults (flupy.org, the 20 most populous countries).
  options: { baseUrl: values['base-url'] ?? process.env.IMGDL_BASE_URL, codes: positionals.length > 0 ? positionals : undefined },
  out: path.join(values.out ?? '.', 'flags'),
  concurrency: 20,
});

const records = fs.existsSync(summary.metadataFile) ? fs.readFileSync(summary.metadataFile, 'utf8').split('\n').filter(Boolean) : [];
for (const record of records.map((line) => JSON.parse(line) as ImageRecord).sort((a, b) => a.file.localeCompare(b.file))) {
  console.log(`${record.file}  ${record.bytes} bytes  ${JSON.stringify(record.metadata)}`);
}
console.log(`${summary.downloaded} downloaded, ${summary.skipped} already saved, ${summary.failed} failed → ${summary.outDir}`);
if (summary.failed > 0) {
  console.log(`failures: ${summary.failuresFile}`);
  process.exitCode = 1;
}
