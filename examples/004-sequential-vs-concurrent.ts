// Seed 004: the same 20 flags fetched sequentially (one at a time) and then concurrently (20 at once, like the
// seed's thread pool of 20), into memory; prints both times and the speed-up. Network I/O waits, so
// concurrency wins by about the number of requests in flight.
//
//   npx tsx examples/004-sequential-vs-concurrent.ts [--base-url URL]
//   bun examples/004-sequential-vs-concurrent.ts [--base-url URL]
//   deno run -A examples/004-sequential-vs-concurrent.ts [--base-url URL]
import { parseArgs } from 'node:util';
import { fetchImages } from '../src/index.ts';

const { values } = parseArgs({ options: { 'base-url': { type: 'string' } } });
const base = values['base-url'] ?? process.env.IMGDL_BASE_URL ?? 'http://flupy.org/data/flags';
const codes = 'cn in us id br pk ng bd ru jp mx ph vn et eg de ir tr cd fr'.split(' ');
const urls = codes.map((cc) => `${base}/${cc}/${cc}.gif`);

async function timed(concurrency: number): Promise<number> {
  const started = performance.now();
  const results = await fetchImages(urls, { concurrency });
  const seconds = (performance.now() - started) / 1000;
  const saved = results.filter((r) => r.ok);
  console.log(`concurrency ${concurrency}: ${saved.length} images, ${saved.reduce((n, r) => n + r.bytes, 0)} bytes in ${seconds.toFixed(2)} s`);
  for (const r of results) {
    if (!r.ok) {
      console.log(`  failed: ${r.url} ${r.code} ${r.message}`);
      process.exitCode = 1;
    }
  }
  return seconds;
}

const sequential = await timed(1);
const concurrent = await timed(20);
console.log(`speed-up: ${(sequential / concurrent).toFixed(1)}x`);
