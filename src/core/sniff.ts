import { fileTypeFromBuffer } from 'file-type';

/** What the bytes of a body really are. */
export interface Sniffed {
  ext: string;
  mime: string;
}

/** How many leading bytes the sniffers need (file-type reads up to 4100 for most formats). */
export const SNIFF_BYTES = 4100;

// file-type does not detect SVG (it is text; with an XML declaration it answers `application/xml`); is-svg parses
// the whole document, which we do not have while streaming, so a small check of the head is ours to write.

/** The image type of a body from its first bytes, or undefined when it is not an image. */
export async function sniffImage(head: Uint8Array): Promise<Sniffed | undefined> {
  const type = await fileTypeFromBuffer(head);
  if (type?.mime.startsWith('image/')) return { ext: type.ext, mime: type.mime };
  if (type && type.ext !== 'xml') return undefined;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head.subarray(0, SNIFF_BYTES));
  return isSvgHead(text) ? { ext: 'svg', mime: 'image/svg+xml' } : undefined;
}

/**
 * True when a document's head is an SVG's: an optional byte-order mark, then the XML prolog (the XML declaration,
 * processing instructions such as `<?xml-stylesheet …?>`, comments, a DOCTYPE with or without an internal subset
 * `[ … ]`, and white space between them), then an `<svg` root element (`<svg:svg` too). HTML, other XML and a
 * prolog that does not end within the head are not. Linear in the head's length: every step moves forward.
 */
export function isSvgHead(text: string): boolean {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (i < text.length) {
    i = skipSpace(text, i);
    if (text.startsWith('<?', i)) i = after(text, '?>', i + 2);
    else if (text.startsWith('<!--', i)) i = after(text, '-->', i + 4);
    else if (text.slice(i, i + 9).toUpperCase() === '<!DOCTYPE') i = afterDoctype(text, i + 9);
    else return /^<(?:[A-Za-z_][\w.-]*:)?svg[\s>/]/.test(text.slice(i, i + 64));
  }
  return false;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && /\s/.test(text[i]!)) i++;
  return i;
}

/** The index just past the next `end` from `from`, or the text's length when there is none. */
function after(text: string, end: string, from: number): number {
  const at = text.indexOf(end, from);
  return at < 0 ? text.length : at + end.length;
}

/** The index just past a DOCTYPE's closing `>`: quoted strings, and the internal subset's declarations and comments, skipped. */
function afterDoctype(text: string, i: number): number {
  let depth = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' || c === "'") {
      i = after(text, c, i + 1);
      continue;
    }
    if (text.startsWith('<!--', i)) {
      i = after(text, '-->', i + 4);
      continue;
    }
    if (c === '>' && depth === 0) return i + 1;
    if (c === '[') depth++;
    else if (c === ']') depth = Math.max(0, depth - 1);
    i++;
  }
  return text.length;
}

const ALIASES: Record<string, string[]> = {
  jpg: ['jpg', 'jpeg', 'jpe', 'jfif'],
  tif: ['tif', 'tiff'],
  ico: ['ico'],
  svg: ['svg'],
  heic: ['heic', 'heif'],
};

/** True when a file extension (without the dot) is a fair name for the sniffed type. */
export function extensionMatches(ext: string, sniffed: Sniffed): boolean {
  const e = ext.toLowerCase();
  return (ALIASES[sniffed.ext] ?? [sniffed.ext]).includes(e);
}
