/** What the bytes of a body really are. */
export interface Sniffed {
  ext: string;
  mime: string;
}

/** How many leading bytes the sniffers need (file-type reads up to 4100 for most formats). */
export const SNIFF_BYTES = 4100;

// file-type does not detect SVG (it is text; with an XML declaration it answers `application/xml`); is-svg parses
// the whole document, which we do not have while streaming, so a small check of the head is ours to write.

/** file-type, loaded the first time a body is not one of the common formats (~15 ms of every start-up otherwise). */
let fileType: Promise<typeof import('file-type')> | undefined;

/** The image type of a body from its first bytes, or undefined when it is not an image. */
export async function sniffImage(head: Uint8Array): Promise<Sniffed | undefined> {
  const common = commonImage(head);
  if (common) return common;
  const { fileTypeFromBuffer } = await (fileType ??= import('file-type'));
  const type = await fileTypeFromBuffer(head);
  if (type?.mime.startsWith('image/')) return { ext: type.ext, mime: type.mime };
  if (type && type.ext !== 'xml') return undefined;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head.subarray(0, SNIFF_BYTES));
  return isSvgHead(text) ? { ext: 'svg', mime: 'image/svg+xml' } : undefined;
}

const GIF: Sniffed = { ext: 'gif', mime: 'image/gif' };
const JPEG: Sniffed = { ext: 'jpg', mime: 'image/jpeg' };
const PNG: Sniffed = { ext: 'png', mime: 'image/png' };
const APNG: Sniffed = { ext: 'apng', mime: 'image/apng' };
const WEBP: Sniffed = { ext: 'webp', mime: 'image/webp' };
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * GIF, JPEG, PNG and WebP, told from their signatures the way file-type tells them (same answers, including APNG
 * and JPEG-LS, which go to file-type), without its tokenizer: file-type costs 15-20 µs an image, most of a small
 * image's validation. Undefined when unsure: file-type decides. test/sniff.test.ts checks both agree.
 */
export function commonImage(b: Uint8Array): Sniffed | undefined {
  if (b.length < 12) return undefined;
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return GIF;
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return b[3] === 0xf7 ? undefined : JPEG;
  if (b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return WEBP;
  if (PNG_SIGNATURE.every((byte, i) => b[i] === byte)) return pngKind(b);
  return undefined;
}

/** PNG or APNG (an acTL chunk before the first IDAT), from chunk headers within `b`; undefined when unsure. */
function pngKind(b: Uint8Array): Sniffed | undefined {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // The first chunk must be a 13-byte IHDR: anything else (CgBI, broken files) is file-type's to judge.
  if (view.getUint32(8) !== 13 || chunkType(b, 12) !== 'IHDR') return undefined;
  for (let at = 8 + 25, count = 0; at + 8 <= b.length && count < 64; count++) {
    const length = view.getUint32(at);
    const type = chunkType(b, at + 4);
    if (type === 'IDAT') return PNG;
    if (type === 'acTL') return APNG;
    if (length > 0x7fffffff) return undefined;
    at += 12 + length;
  }
  return undefined;
}

function chunkType(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
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
