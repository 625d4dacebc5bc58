import fs from 'node:fs';
import readline from 'node:readline';
import { UsageError } from '../errors.ts';
import type { ItemInput } from './types.ts';

/**
 * True when the bytes are not text: a NUL byte (never in a text list; every binary image and archive format has
 * them near the start).
 */
export function isBinary(head: Uint8Array): boolean {
  return head.includes(0);
}

/**
 * A URL given to the library (a string, a URL, or `{ url, name?, metadata?, key?, caption? }`) as an item, or what is wrong with it
 * (to follow "Expected `items[i]`"): the one coercion for `get`'s items and the in-memory downloader's inputs,
 * which report it differently (a usage error before any work; a failed result in a batch that goes on).
 */
export function asItem(input: unknown): ItemInput | { wrong: string } {
  if (typeof input === 'string') return { url: input.trim() };
  if (input instanceof URL) return { url: input.href };
  const item = input as Partial<ItemInput> | null;
  if (typeof item === 'object' && item !== null && (typeof item.url === 'string' || (item.url as unknown) instanceof URL)) {
    for (const field of ['name', 'key', 'caption'] as const) {
      if (item[field] !== undefined && typeof item[field] !== 'string') return { wrong: `.${field}\` to be a string, got ${JSON.stringify(item[field])}` };
    }
    const url = typeof item.url === 'string' ? item.url.trim() : String(item.url);
    return {
      url,
      ...(item.name === undefined ? {} : { name: item.name }),
      ...(item.metadata === undefined ? {} : { metadata: item.metadata }),
      ...(item.key === undefined ? {} : { key: item.key }),
      ...(item.caption === undefined ? {} : { caption: item.caption }),
    };
  }
  return { wrong: `\` to be a URL or { url, name?, metadata? }, got ${JSON.stringify(input)}` };
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
