// The signature fast path (commonImage) must answer exactly as file-type does, or not at all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileTypeFromBuffer } from 'file-type';
import { commonImage, sniffImage } from '../src/core/sniff.ts';
import { gif, jpeg, png, pngChunk, PNG_IEND, u32be, webp } from '../src/testing/images.ts';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ihdr = pngChunk('IHDR', Buffer.concat([u32be(4), u32be(4), Buffer.from([8, 6, 0, 0, 0])]));
const idat = pngChunk('IDAT', Buffer.alloc(20));

/** Bodies the fast path must settle, or leave to file-type: every one compared with file-type's answer. */
const cases: Record<string, Buffer> = {
  png: png(16, 16),
  gif: gif(16, 16),
  jpeg: jpeg(16, 16),
  webp: webp(16, 16),
  'apng (acTL before IDAT)': Buffer.concat([SIGNATURE, ihdr, pngChunk('acTL', Buffer.alloc(8)), idat, PNG_IEND]),
  'png with ancillary chunks before IDAT': Buffer.concat([SIGNATURE, ihdr, pngChunk('tEXt', Buffer.from('Comment\0hi')), pngChunk('gAMA', Buffer.alloc(4)), idat, PNG_IEND]),
  'png whose IHDR is not first': Buffer.concat([SIGNATURE, pngChunk('tEXt', Buffer.from('a\0b')), ihdr, idat, PNG_IEND]),
  'png with a 14-byte IHDR': Buffer.concat([SIGNATURE, pngChunk('IHDR', Buffer.alloc(14)), idat, PNG_IEND]),
  'CgBI png (Apple)': Buffer.concat([SIGNATURE, pngChunk('CgBI', Buffer.alloc(4)), ihdr, idat, PNG_IEND]),
  'png cut before IDAT': Buffer.concat([SIGNATURE, ihdr, pngChunk('tEXt', Buffer.alloc(64))]).subarray(0, 60),
  'JPEG-LS': Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xf7]), Buffer.alloc(40)]),
  'GIF87a': Buffer.concat([Buffer.from('GIF87a'), Buffer.alloc(40)]),
  'RIFF that is not WebP (WAV)': Buffer.concat([Buffer.from('RIFF'), u32be(100), Buffer.from('WAVEfmt '), Buffer.alloc(40)]),
  html: Buffer.from('<!doctype html><html><body>not an image</body></html>'),
  'too short': Buffer.from([0xff, 0xd8, 0xff]),
};

test('the signature fast path agrees with file-type, or leaves the body to it', async () => {
  let settled = 0;
  for (const [name, body] of Object.entries(cases)) {
    const fast = commonImage(body);
    const type = await fileTypeFromBuffer(body);
    const expected = type?.mime.startsWith('image/') ? { ext: type.ext, mime: type.mime } : undefined;
    if (fast) {
      settled++;
      assert.deepEqual(fast, expected, name);
    }
    // Whatever path answers, sniffImage's answer is file-type's for these (none is SVG).
    assert.deepEqual(await sniffImage(body), expected, name);
  }
  // The common formats do take the fast path (else it would be dead code).
  for (const name of ['png', 'gif', 'jpeg', 'webp', 'apng (acTL before IDAT)', 'png with ancillary chunks before IDAT', 'GIF87a']) {
    assert.ok(commonImage(cases[name]!), `${name} settled by the fast path`);
  }
  assert.ok(settled >= 7);
});
