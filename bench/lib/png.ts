import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Private, ancillary, safe-to-copy chunk type: decoders skip it. */
const PADDING_TYPE = 'zpAd';
const CHUNK_OVERHEAD = 12; // length + type + crc

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

function header(width: number, height: number): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data[8] = 8; // bit depth
  data[9] = 2; // colour type: RGB
  // compression, filter and interlace methods stay 0
  return chunk('IHDR', data);
}

/** A gradient, one filter byte (0) per row, then RGB triples. */
function pixels(width: number, height: number): Buffer {
  const row = 1 + width * 3;
  const raw = Buffer.alloc(row * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = y * row + 1 + x * 3;
      raw[at] = (x * 255) / width;
      raw[at + 1] = (y * 255) / height;
      raw[at + 2] = ((x + y) * 127) / (width + height);
    }
  }
  return chunk('IDAT', deflateSync(raw));
}

/**
 * A valid PNG of exactly `totalBytes` bytes (when that is larger than the bare image):
 * a small gradient image padded with an ancillary chunk of pseudo-random bytes.
 */
export function makePng(totalBytes: number, width = 64, height = 64): Buffer {
  const ihdr = header(width, height);
  const idat = pixels(width, height);
  const iend = chunk('IEND', Buffer.alloc(0));
  const bare = SIGNATURE.length + ihdr.length + idat.length + iend.length;
  const padBytes = totalBytes - bare - CHUNK_OVERHEAD;
  if (padBytes < 0) return Buffer.concat([SIGNATURE, ihdr, idat, iend]);
  const pad = Buffer.alloc(padBytes);
  let state = 0x12345678;
  for (let i = 0; i < padBytes; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    pad[i] = state >>> 24;
  }
  return Buffer.concat([SIGNATURE, ihdr, idat, chunk(PADDING_TYPE, pad), iend]);
}
