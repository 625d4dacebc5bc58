/**
 * The engine's floor: a plain undici loop, N workers pulling URLs from a list, one
 * `fs.promises.writeFile` per image. No retries, no validation, no state.
 *
 *   node --import tsx bench/peers/undici-loop.ts <list> <outDir> [concurrency=64]
 *
 * Prints {"downloaded","failed","bytes","seconds"} on stdout; exits 1 if any URL failed.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Agent, request } from 'undici';

interface Totals {
  downloaded: number;
  failed: number;
  bytes: number;
}

async function fetchOne(agent: Agent, url: string, outDir: string, totals: Totals): Promise<void> {
  try {
    const { statusCode, body } = await request(url, { dispatcher: agent });
    const data = Buffer.from(await body.arrayBuffer());
    if (statusCode !== 200) throw new Error(`HTTP ${statusCode}`);
    await writeFile(join(outDir, basename(new URL(url).pathname)), data);
    totals.downloaded += 1;
    totals.bytes += data.length;
  } catch {
    totals.failed += 1;
  }
}

async function main(): Promise<void> {
  const [list, outDir, concurrencyArg = '64'] = process.argv.slice(2);
  if (!list || !outDir) throw new Error('usage: undici-loop.ts <list> <outDir> [concurrency]');
  const concurrency = Number(concurrencyArg);
  const urls = (await readFile(list, 'utf8')).split('\n').filter((line) => line.trim() !== '');
  await mkdir(outDir, { recursive: true });

  const agent = new Agent({ connections: concurrency });
  const totals: Totals = { downloaded: 0, failed: 0, bytes: 0 };
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < urls.length) {
      const url = urls[next++] as string;
      await fetchOne(agent, url, outDir, totals);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  await agent.close();
  process.stdout.write(`${JSON.stringify({ ...totals, seconds })}\n`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
}

await main();
