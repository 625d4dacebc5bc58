// Is a body the whole image? Content-Length only says the server sent what it announced; a server (or a proxy)
// that announces a short length, or a file cut short on the server's disk, gives a body that is whole by HTTP and
// cut by format. The formats below end with a marker, so a look at the last bytes tells: cheap, never a decode.

/** How many of the body's last bytes the checks look at (readBody keeps them as the body passes). */
export const TAIL_BYTES = 1024;

/** The PNG IEND chunk: length 0, type `IEND`, and its fixed CRC. */
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
const JPEG_EOI = Buffer.from([0xff, 0xd9]);
/** Where a JPEG's end marker no longer belongs to an APP1 (EXIF) thumbnail: an APP segment is at most 64 KiB. */
const JPEG_LATE_EOI = 64 * 1024 + 4;
/** A GIF's last block terminator then its trailer. */
const GIF_END = Buffer.from([0x00, 0x3b]);
/**
 * Bytes after a GIF's trailer that are taken as padding. Small on purpose: unlike IEND and EOI, `00 3B` can occur
 * in image data, so a wide window would pass cut files.
 */
const GIF_SLACK = 64;

/**
 * Why a body of `total` bytes is not a whole image of type `ext` (as sniffed), or undefined when it looks whole or
 * its format has no end marker to check. `head` is the body's first bytes, `tail` its last (up to TAIL_BYTES; the
 * whole body when it is shorter). Some padding after the end marker is allowed, as real files carry it: up to the
 * tail's length for PNG and JPEG (an IEND chunk, or FF D9, which entropy-coded JPEG data never holds), GIF_SLACK
 * bytes for GIF; WebP's RIFF header gives its length, and anything past it is allowed.
 */
export function incompleteReason(ext: string, head: Uint8Array, tail: Uint8Array, total: number, jpegEndSeen = false): string | undefined {
  const last = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength);
  switch (ext) {
    case 'png':
    case 'apng':
      return last.includes(PNG_IEND) ? undefined : `The PNG has no IEND chunk at its end (${total} bytes): it was cut short`;
    case 'jpg':
      // Or an FF D9 past the first 64 KiB (past any APP1 thumbnail, whose own EOI does not count): a motion photo
      // (Google, Samsung) carries its video after the JPEG's end, so its last bytes are not the JPEG's.
      return last.includes(JPEG_EOI) || jpegEndSeen ? undefined : `The JPEG has no end-of-image marker (FF D9) at its end (${total} bytes): it was cut short`;
    case 'gif':
      return last.subarray(Math.max(0, last.length - GIF_SLACK - GIF_END.length)).includes(GIF_END)
        ? undefined
        : `The GIF has no trailer (3B) at its end (${total} bytes): it was cut short`;
    case 'webp': {
      if (head.length < 12) return `The WebP is only ${total} bytes: it was cut short`;
      const size = Buffer.from(head.buffer, head.byteOffset, head.byteLength).readUInt32LE(4);
      return 8 + size <= total ? undefined : `The WebP's RIFF header says ${8 + size} bytes, ${total} came: it was cut short`;
    }
    default:
      return undefined;
  }
}

/**
 * The last `TAIL_BYTES` of a stream, kept as chunks pass: `push` each chunk, read `bytes`. A chunk at least as long as
 * the tail replaces it (a view, no copy); shorter ones are appended, in one small copy.
 */
export class Tail {
  bytes: Buffer = Buffer.alloc(0);
  /** A JPEG end-of-image marker (FF D9) was seen at or after JPEG_LATE_EOI bytes into the body. */
  jpegEndSeen = false;
  private offset = 0;
  private lastByte = -1;

  push(chunk: Buffer): void {
    const end = this.offset + chunk.length;
    if (!this.jpegEndSeen && end > JPEG_LATE_EOI) {
      const from = Math.max(0, JPEG_LATE_EOI - this.offset);
      this.jpegEndSeen = (from === 0 && this.lastByte === 0xff && chunk[0] === 0xd9) || chunk.indexOf(JPEG_EOI, from) >= 0;
    }
    this.offset = end;
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1]!;
    if (chunk.length >= TAIL_BYTES) this.bytes = chunk.subarray(chunk.length - TAIL_BYTES);
    else {
      const joined = Buffer.concat([this.bytes, chunk]);
      this.bytes = joined.length > TAIL_BYTES ? joined.subarray(joined.length - TAIL_BYTES) : joined;
    }
  }
}
