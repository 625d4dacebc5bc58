// Tiny but valid images made in code (PNG, GIF, JPEG, WebP), distinct per seed: what a fixture site serves for an
// image it has no file for. Recognised by file-type (magic bytes), complete by imgdl's checks, sized by image-size.
import zlib from 'node:zlib';

let crcTable: Uint32Array | undefined;
function tableCrc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// zlib.crc32 exists from Node 20.15 / 22.2; fall back to a table CRC on older runtimes.
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
export const crc32: (data: Uint8Array) => number = zlibCrc32 ? (d) => zlibCrc32(d) >>> 0 : tableCrc32;

/** @internal shared with the project's own test helpers */
export function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** @internal shared with the project's own test helpers */
export function checkDims(w: number, h: number, max = 0xffff): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > max || h > max) {
    throw new RangeError(`invalid image size ${w}x${h} (1..${max})`);
  }
}

export function pngChunk(type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  return Buffer.concat([u32be(data.length), typeAndData, u32be(crc32(typeAndData))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** @internal shared with the project's own test helpers */
export const PNG_IEND = pngChunk('IEND');
/** @internal shared with the project's own test helpers */
export const CHUNK_OVERHEAD = 12; // length + type + crc

/** Optional `seed` is embedded (as metadata or colour) so different seeds give different bytes. */
export interface ImageOpts {
  seed?: string;
}

/** The seed as printable ASCII, for comment fields. */
/** @internal shared with the project's own test helpers */
export function seedText(seed: string): Buffer {
  return Buffer.from(/^[\x20-\x7e]*$/.test(seed) ? seed : encodeURIComponent(seed), 'latin1');
}

/** 24-bit colour derived from the seed (a fixed colour without one). */
/** @internal shared with the project's own test helpers */
export function seedColour(seed: string | undefined): [r: number, g: number, b: number] {
  if (seed === undefined) return [0x33, 0x99, 0x66];
  const c = crc32(Buffer.from(seed));
  return [(c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff];
}

/** Signature + IHDR + IDAT (+ tEXt with the seed) of an RGB checkerboard; everything but IEND. */
/** @internal shared with the project's own test helpers */
export function pngHead(width: number, height: number, seed?: string): Buffer {
  checkDims(width, height, 0x7fffffff);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  // compression, filter, interlace: 0
  const row = 1 + width * 3; // filter byte + pixels
  const raw = Buffer.alloc(row * height, 0xff);
  const [r, g, b] = seedColour(seed);
  for (let y = 0; y < height; y++) {
    raw[y * row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      if (((x >> 2) ^ (y >> 2)) & 1) continue; // 4x4 checkerboard, white squares prefilled
      const i = y * row + 1 + x * 3;
      raw[i] = r;
      raw[i + 1] = g;
      raw[i + 2] = b;
    }
  }
  const text = seed === undefined ? [] : [pngChunk('tEXt', Buffer.concat([Buffer.from('Comment\0'), seedText(seed)]))];
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), ...text, pngChunk('IDAT', zlib.deflateSync(raw))]);
}

/** A real PNG. `padTo` adds a private `prVt` chunk so the file is at least that many bytes. */
export function png(width: number, height: number, opts: ImageOpts & { padTo?: number } = {}): Buffer {
  const head = pngHead(width, height, opts.seed);
  const parts = [head];
  const missing = (opts.padTo ?? 0) - head.length - PNG_IEND.length;
  if (missing > 0) parts.push(pngChunk('prVt', Buffer.alloc(Math.max(0, missing - CHUNK_OVERHEAD))));
  parts.push(PNG_IEND);
  return Buffer.concat(parts);
}

export function gif(width: number, height: number, opts: ImageOpts = {}): Buffer {
  checkDims(width, height);
  const header = Buffer.alloc(13);
  header.write('GIF89a', 0, 'latin1');
  header.writeUInt16LE(width, 6);
  header.writeUInt16LE(height, 8);
  header[10] = 0x80; // global colour table, 2 entries
  const palette = Buffer.from([...seedColour(opts.seed), 0xff, 0xff, 0xff]);
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x2c;
  descriptor.writeUInt16LE(width, 5);
  descriptor.writeUInt16LE(height, 7);

  // LZW with min code size 2 (3-bit codes). Emitting CLEAR before every two pixels keeps
  // the dictionary from growing past 8 entries, so the code width never changes.
  const CLEAR = 4;
  const EOI = 5;
  const bytes: number[] = [];
  let acc = 0;
  let nbits = 0;
  const emit = (code: number): void => {
    acc |= code << nbits;
    nbits += 3;
    while (nbits >= 8) {
      bytes.push(acc & 0xff);
      acc >>>= 8;
      nbits -= 8;
    }
  };
  const pixels = width * height;
  for (let i = 0; i < pixels; i++) {
    if (i % 2 === 0) emit(CLEAR);
    emit((i >> 1) & 1); // some stripes
  }
  emit(EOI);
  if (nbits > 0) bytes.push(acc & 0xff);

  const comment = opts.seed === undefined ? [] : [Buffer.from([0x21, 0xfe]), subBlocks(seedText(opts.seed))];
  const image = [descriptor, Buffer.from([2]), subBlocks(Buffer.from(bytes))];
  return Buffer.concat([header, palette, ...comment, ...image, Buffer.from([0x3b])]);
}

/** GIF data sub-blocks (<= 255 bytes each) plus the terminating empty block. */
function subBlocks(data: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += 255) {
    const part = data.subarray(i, i + 255);
    out.push(Buffer.from([part.length]), part);
  }
  out.push(Buffer.from([0]));
  return Buffer.concat(out);
}

function jpegSegment(marker: number, payload: Buffer): Buffer {
  const head = Buffer.from([0xff, marker, 0, 0]);
  head.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([head, payload]);
}

/**
 * Baseline greyscale JPEG (uniform mid-grey). Both Huffman tables hold a single 1-bit code,
 * for "DC diff 0" and "EOB", so every 8x8 block costs exactly two 0-bits of scan data.
 */
export function jpeg(width: number, height: number, opts: ImageOpts = {}): Buffer {
  checkDims(width, height);
  const app0 = jpegSegment(0xe0, Buffer.from('JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00', 'latin1'));
  const dqt = jpegSegment(0xdb, Buffer.concat([Buffer.from([0x00]), Buffer.alloc(64, 1)]));
  const sof = Buffer.from([8, 0, 0, 0, 0, 1, 1, 0x11, 0]);
  sof.writeUInt16BE(height, 1);
  sof.writeUInt16BE(width, 3);
  const sof0 = jpegSegment(0xc0, sof);
  const oneCodeTable = (classAndId: number): Buffer =>
    jpegSegment(0xc4, Buffer.from([classAndId, 1, ...new Array<number>(15).fill(0), 0x00]));
  const sos = jpegSegment(0xda, Buffer.from([1, 1, 0x00, 0, 63, 0]));
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
  const bits = blocks * 2;
  const scan = Buffer.alloc(Math.ceil(bits / 8));
  if (bits % 8) scan[scan.length - 1] = 0xff >> (bits % 8); // pad the final byte with 1-bits
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    app0,
    ...(opts.seed === undefined ? [] : [jpegSegment(0xfe, seedText(opts.seed))]),
    dqt,
    sof0,
    oneCodeTable(0x00),
    oneCodeTable(0x10),
    sos,
    scan,
    Buffer.from([0xff, 0xd9]),
  ]);
}

/**
 * Lossless (VP8L) WebP of one opaque colour. Each of the five prefix codes is a
 * "simple code" with a single symbol, which takes zero bits per pixel, so the
 * bitstream is the same 9 bytes whatever the size.
 */
export function webp(width: number, height: number, opts: ImageOpts = {}): Buffer {
  checkDims(width, height, 16384);
  const bytes: number[] = [0x2f];
  let acc = 0;
  let nbits = 0;
  const put = (value: number, n: number): void => {
    for (let i = 0; i < n; i++) {
      acc |= ((value >>> i) & 1) << nbits;
      if (++nbits === 8) {
        bytes.push(acc);
        acc = 0;
        nbits = 0;
      }
    }
  };
  put(width - 1, 14);
  put(height - 1, 14);
  put(0, 1); // alpha hint
  put(0, 3); // version
  put(0, 1); // no transform
  put(0, 1); // no colour cache
  put(0, 1); // no meta prefix codes
  const simpleCode = (symbol: number): void => {
    put(1, 1); // simple code
    put(0, 1); // one symbol
    if (symbol < 2) {
      put(0, 1); // 1-bit symbol
      put(symbol, 1);
    } else {
      put(1, 1); // 8-bit symbol
      put(symbol, 8);
    }
  };
  const [r, g, b] = seedColour(opts.seed);
  simpleCode(g);
  simpleCode(r);
  simpleCode(b);
  simpleCode(255); // alpha
  simpleCode(0); // distance
  if (nbits > 0) bytes.push(acc);

  const data = Buffer.from(bytes);
  const pad = data.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0);
  const chunk = Buffer.concat([Buffer.from('VP8L'), le32(data.length), data, pad]);
  return Buffer.concat([Buffer.from('RIFF'), le32(4 + chunk.length), Buffer.from('WEBP'), chunk]);
}

function le32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

