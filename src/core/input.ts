import fs from 'node:fs';
import readline from 'node:readline';
import { UsageError } from '../errors.ts';
import type { ItemInput } from './engine.ts';

/**
 * True when the bytes are not text: a NUL byte (never in a text list; every binary image and archive format has
 * them near the start).
 */
export function isBinary(head: Uint8Array): boolean {
  return head.includes(0);
}

/** The URLs of a list file, one a line; blank lines and `#` comments are skipped. Streams: a big list is never read whole. */
export async function* readList(file: string): AsyncGenerator<ItemInput> {
  const input = file === '-' ? process.stdin : fs.createReadStream(file, { encoding: 'utf8' });
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let first = true;
  for await (let line of rl) {
    if (first && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    // A file's head was checked before the run (planGet); stdin is checked here, on its first lines.
    if (line.includes('\u0000')) throw new UsageError(`${file === '-' ? 'stdin' : file} is not a list of URLs: it holds binary data (give text, one URL a line)`);
    first = false;
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    yield { url: line };
  }
}
