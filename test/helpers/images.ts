// Tiny but valid image fixtures, generated in code so no binaries are committed.
// Each buffer is recognised by `file-type` (magic bytes) and `image-size` (dimensions).
import { Readable } from 'node:stream';

// PNG, GIF, JPEG and WebP come from the helper shipped to plugin authors (imgdl/testing); the formats below are the tests' own.
import { CHUNK_OVERHEAD, PNG_IEND, checkDims, crc32, gif, jpeg, png, pngChunk, pngHead, seedColour, seedText, u32be, webp, type ImageOpts } from '../../src/testing/images.ts';

export { crc32, gif, jpeg, png, pngChunk, webp, type ImageOpts };

// ---------------------------------------------------------------- BMP

/** 24-bit uncompressed bottom-up BMP. */
export function bmp(width: number, height: number, opts: ImageOpts = {}): Buffer {
  checkDims(width, height);
  const stride = Math.ceil((width * 3) / 4) * 4;
  const pixelBytes = stride * height;
  const b = Buffer.alloc(54 + pixelBytes);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(height, 22);
  b.writeUInt16LE(1, 26); // planes
  b.writeUInt16LE(24, 28); // bpp
  b.writeUInt32LE(pixelBytes, 34);
  b.writeUInt32LE(2835, 38); // 72 dpi
  b.writeUInt32LE(2835, 42);
  const [r, g, bl] = seedColour(opts.seed);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) b.set([bl, g, r], 54 + y * stride + x * 3);
  }
  return b;
}

// ---------------------------------------------------------------- TIFF

/** Little-endian, uncompressed, 8-bit greyscale TIFF with a single strip. */
export function tiff(width: number, height: number, opts: ImageOpts = {}): Buffer {
  checkDims(width, height);
  const SHORT = 3;
  const LONG = 4;
  const entries: Array<[tag: number, type: number, value: number]> = [
    [256, LONG, width],
    [257, LONG, height],
    [258, SHORT, 8], // bits per sample
    [259, SHORT, 1], // no compression
    [262, SHORT, 1], // black is zero
    [273, LONG, 0], // strip offset, patched below
    [277, SHORT, 1], // samples per pixel
    [278, LONG, height], // rows per strip
    [279, LONG, width * height], // strip byte count
  ];
  const ifdSize = 2 + entries.length * 12 + 4;
  const dataOffset = 8 + ifdSize;
  const b = Buffer.alloc(dataOffset + width * height, 0x80);
  b.write('II*\0', 0, 'latin1');
  b.writeUInt32LE(8, 4);
  b.writeUInt16LE(entries.length, 8);
  entries.forEach(([tag, type, value], i) => {
    const at = 10 + i * 12;
    b.writeUInt16LE(tag, at);
    b.writeUInt16LE(type, at + 2);
    b.writeUInt32LE(1, at + 4);
    const v = tag === 273 ? dataOffset : value;
    if (type === SHORT) b.writeUInt32LE(v & 0xffff, at + 8);
    else b.writeUInt32LE(v, at + 8);
  });
  b.writeUInt32LE(0, 10 + entries.length * 12); // no next IFD
  // Bytes after the strip are unreferenced, so readers ignore them.
  return opts.seed === undefined ? b : Buffer.concat([b, seedText(opts.seed)]);
}

// ---------------------------------------------------------------- ICO

/** ICO with one PNG-encoded entry. ICO can only describe up to 256x256. */
export function ico(width: number, height: number, opts: ImageOpts = {}): Buffer {
  checkDims(width, height, 256);
  const image = png(width, height, opts);
  const header = Buffer.alloc(22);
  header.writeUInt16LE(1, 2); // type: icon
  header.writeUInt16LE(1, 4); // count
  header[6] = width & 0xff; // 0 means 256
  header[7] = height & 0xff;
  header.writeUInt16LE(1, 10); // planes
  header.writeUInt16LE(32, 12); // bpp
  header.writeUInt32LE(image.length, 14);
  header.writeUInt32LE(22, 18);
  return Buffer.concat([header, image]);
}

// ---------------------------------------------------------------- AVIF

function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  return Buffer.concat([u32be(8 + body.length), Buffer.from(type, 'latin1'), body]);
}

function fullBox(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  return box(type, u32be(((version & 0xff) << 24) | (flags & 0xffffff)), ...payload);
}

/**
 * ISO-BMFF container with `ftyp` major brand `avif` and an `ispe` property carrying the
 * dimensions. It holds no AV1 bitstream, so it is detectable and measurable, not decodable.
 */
export function avif(width = 8, height = 8, opts: ImageOpts = {}): Buffer {
  checkDims(width, height, 0x7fffffff);
  const ftyp = box('ftyp', Buffer.from('avif'), u32be(0), Buffer.from('avifmif1miaf'));
  const hdlr = fullBox('hdlr', 0, 0, u32be(0), Buffer.from('pict'), Buffer.alloc(12), Buffer.from('\0'));
  const pitm = fullBox('pitm', 0, 0, Buffer.from([0, 1]));
  const ispe = fullBox('ispe', 0, 0, u32be(width), u32be(height));
  // ipma: one item (id 1) associated with property 1 (ispe), marked essential.
  const ipma = fullBox('ipma', 0, 0, u32be(1), Buffer.from([0, 1, 1, 0x81]));
  const meta = fullBox('meta', 0, 0, hdlr, pitm, box('iprp', box('ipco', ispe), ipma));
  return Buffer.concat([ftyp, meta, ...(opts.seed === undefined ? [] : [box('free', seedText(opts.seed))])]);
}

// ---------------------------------------------------------------- SVG

export function svg(width: number, height: number, opts: ImageOpts = {}): Buffer {
  const comment = opts.seed === undefined ? '' : `<!-- ${seedText(opts.seed).toString().replace(/-/g, '%2D')} -->`;
  const [r, g, b] = seedColour(opts.seed);
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
      `${comment}<rect width="${width}" height="${height}" fill="rgb(${r},${g},${b})"/></svg>\n`,
  );
}

// ---------------------------------------------------------------- dispatch

const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  bmp: 'image/bmp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  ico: 'image/x-icon',
  svg: 'image/svg+xml',
};

export const IMAGE_EXTS: readonly string[] = Object.keys(CONTENT_TYPES);

function normExt(ext: string): string {
  return ext.replace(/^\./, '').toLowerCase();
}

/** MIME type for an image extension (with or without dot); `application/octet-stream` if unknown. */
export function contentTypeFor(ext: string): string {
  return CONTENT_TYPES[normExt(ext)] ?? 'application/octet-stream';
}

/** A valid image for the extension, or undefined if the extension is not an image type we know. */
export function imageFor(ext: string, width = 8, height = 8, opts: ImageOpts = {}): Buffer | undefined {
  switch (normExt(ext)) {
    case 'png':
      return png(width, height, opts);
    case 'jpg':
    case 'jpeg':
      return jpeg(width, height, opts);
    case 'gif':
      return gif(width, height, opts);
    case 'webp':
      return webp(width, height, opts);
    case 'avif':
      return avif(width, height, opts);
    case 'bmp':
      return bmp(width, height, opts);
    case 'tif':
    case 'tiff':
      return tiff(width, height, opts);
    case 'ico':
      return ico(width, height, opts);
    case 'svg':
      return svg(width, height, opts);
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------- big streamed PNG

const STREAM_CHUNK = 64 * 1024;
let fullPadChunk: Buffer | undefined; // one 64 KiB prVt chunk, shared (never mutated)

function bigPngParts(totalBytes: number, width: number, height: number) {
  const head = pngHead(width, height);
  let padding = totalBytes - head.length - PNG_IEND.length;
  if (padding > 0 && padding < CHUNK_OVERHEAD) padding = CHUNK_OVERHEAD; // smallest possible chunk
  return { head, padding: Math.max(0, padding) };
}

/** Exact byte length of `bigPngStream(totalBytes)`: max(totalBytes, smallest valid file). */
export function bigPngLength(totalBytes: number, width = 8, height = 8): number {
  const { head, padding } = bigPngParts(totalBytes, width, height);
  return head.length + padding + PNG_IEND.length;
}

/**
 * A valid PNG of `bigPngLength(totalBytes)` bytes: signature, IHDR, a small IDAT, then
 * `prVt` padding chunks of at most 64 KiB and IEND. Generated lazily; memory use is O(64 KiB).
 */
export function bigPngStream(totalBytes: number, width = 8, height = 8): Readable {
  const { head, padding } = bigPngParts(totalBytes, width, height);
  let left = padding;
  let state: 'head' | 'pad' | 'done' = 'head';
  return new Readable({
    highWaterMark: STREAM_CHUNK,
    read() {
      if (state === 'head') {
        state = 'pad';
        this.push(head);
        return;
      }
      if (state === 'pad' && left > 0) {
        // Take a full chunk unless that would leave a remainder too small to hold a chunk.
        let size = Math.min(STREAM_CHUNK, left);
        if (left - size > 0 && left - size < CHUNK_OVERHEAD) size -= CHUNK_OVERHEAD;
        left -= size;
        if (size === STREAM_CHUNK) {
          fullPadChunk ??= pngChunk('prVt', Buffer.alloc(STREAM_CHUNK - CHUNK_OVERHEAD));
          this.push(fullPadChunk);
        } else {
          this.push(pngChunk('prVt', Buffer.alloc(size - CHUNK_OVERHEAD)));
        }
        return;
      }
      if (state !== 'done') {
        state = 'done';
        this.push(PNG_IEND);
        this.push(null);
      }
    },
  });
}
