import fs from 'node:fs';
import readline from 'node:readline';
import type { ItemInput } from './engine.ts';

/** The URLs of a list file, one a line; blank lines and `#` comments are skipped. Streams: a big list is never read whole. */
export async function* readList(file: string): AsyncGenerator<ItemInput> {
  const input = file === '-' ? process.stdin : fs.createReadStream(file, { encoding: 'utf8' });
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let first = true;
  for await (let line of rl) {
    if (first && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    first = false;
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    yield { url: line };
  }
}
