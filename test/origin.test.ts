// Tests of the test helpers themselves: image fixtures and the fixture origin.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { bigPngLength, bigPngStream, contentTypeFor, IMAGE_EXTS, imageFor, png } from './helpers/images.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

/** Magic bytes at an offset, as file-type checks them. */
const SIGNATURES: Record<string, Array<[offset: number, bytes: Buffer]>> = {
  png: [[0, hex('89 50 4e 47 0d 0a 1a 0a')]],
  jpg: [[0, hex('ff d8 ff')]],
  jpeg: [[0, hex('ff d8 ff')]],
  gif: [[0, Buffer.from('GIF89a')]],
  webp: [[0, Buffer.from('RIFF')], [8, Buffer.from('WEBPVP8L')]],
  avif: [[4, Buffer.from('ftypavif')]],
  bmp: [[0, Buffer.from('BM')]],
  tif: [[0, hex('49 49 2a 00')]],
  tiff: [[0, hex('49 49 2a 00')]],
  ico: [[0, hex('00 00 01 00')]],
  svg: [[0, Buffer.from('<svg ')]],
};

function hasSignature(ext: string, buf: Buffer): boolean {
  return (SIGNATURES[ext] ?? []).every(([at, sig]) => buf.subarray(at, at + sig.length).equals(sig));
}

/** Width and height as each format stores them (what image-size reads). */
function dims(ext: string, b: Buffer): [number, number] {
  switch (ext) {
    case 'png':
      return [b.readUInt32BE(16), b.readUInt32BE(20)];
    case 'gif':
      return [b.readUInt16LE(6), b.readUInt16LE(8)];
    case 'bmp':
      return [b.readInt32LE(18), b.readInt32LE(22)];
    case 'ico':
      return [b[6] || 256, b[7] || 256];
    case 'webp': {
      const bits = b.readUInt32LE(21);
      return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
    }
    case 'jpg':
    case 'jpeg': {
      const sof = b.indexOf(hex('ff c0'));
      return [b.readUInt16BE(sof + 7), b.readUInt16BE(sof + 5)];
    }
    case 'tif':
    case 'tiff': {
      const tag = (id: number): number => {
        for (let i = 0, at = 10; i < b.readUInt16LE(8); i++, at += 12) {
          if (b.readUInt16LE(at) === id) return b.readUInt32LE(at + 8);
        }
        return -1;
      };
      return [tag(256), tag(257)];
    }
    case 'avif': {
      const ispe = b.indexOf('ispe');
      return [b.readUInt32BE(ispe + 8), b.readUInt32BE(ispe + 12)];
    }
    case 'svg': {
      const m = /width="(\d+)" height="(\d+)"/.exec(b.toString());
      return [Number(m?.[1]), Number(m?.[2])];
    }
    default:
      throw new Error(`no dims reader for ${ext}`);
  }
}

/** Walks PNG chunks, checking every CRC; returns their types. */
function pngChunks(buf: Buffer): string[] {
  assert.ok(hasSignature('png', buf));
  const types: string[] = [];
  for (let at = 8; at < buf.length; ) {
    const len = buf.readUInt32BE(at);
    const typeAndData = buf.subarray(at + 4, at + 8 + len);
    assert.equal(buf.readUInt32BE(at + 8 + len), zlib.crc32(typeAndData) >>> 0, 'chunk CRC');
    types.push(typeAndData.subarray(0, 4).toString('latin1'));
    at += 12 + len;
  }
  return types;
}

async function body(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

let origin: Origin;
before(async () => {
  origin = await startOrigin();
});
after(() => origin.close());

test('every image type has its magic bytes, dimensions and Content-Type', async () => {
  for (const ext of IMAGE_EXTS) {
    const [w, h] = ext === 'ico' ? [16, 32] : [33, 17];
    const res = await fetch(origin.url(`/img/pic.${ext}?w=${w}&h=${h}`));
    const buf = await body(res);
    assert.equal(res.status, 200, ext);
    assert.equal(res.headers.get('content-type'), contentTypeFor(ext), ext);
    assert.equal(Number(res.headers.get('content-length')), buf.length, ext);
    assert.ok(hasSignature(ext, buf), `${ext} signature: ${buf.subarray(0, 12).toString('hex')}`);
    assert.deepEqual(dims(ext, buf), [w, h], ext);
  }
  assert.equal(imageFor('exe', 8, 8), undefined);
  assert.equal(contentTypeFor('.JPG'), 'image/jpeg');
});

test('PNGs are well formed, padTo reaches the size, seeds change the bytes', () => {
  const small = png(5, 3);
  assert.deepEqual(pngChunks(small), ['IHDR', 'IDAT', 'IEND']);
  const idat = small.subarray(41, 41 + small.readUInt32BE(33));
  assert.equal(zlib.inflateSync(idat).length, 3 * (1 + 5 * 3));

  const padded = png(8, 8, { padTo: 12_000 });
  assert.equal(padded.length, 12_000);
  assert.deepEqual(pngChunks(padded), ['IHDR', 'IDAT', 'prVt', 'IEND']);

  for (const ext of IMAGE_EXTS) {
    const a = imageFor(ext, 8, 8, { seed: 'a' });
    assert.deepEqual(a, imageFor(ext, 8, 8, { seed: 'a' }), ext);
    assert.notDeepEqual(a, imageFor(ext, 8, 8, { seed: 'b' }), ext);
  }
});

test('origin seeds images by path unless ?seed= is given', async () => {
  const get = async (p: string): Promise<Buffer> => body(await fetch(origin.url(p)));
  assert.notDeepEqual(await get('/img/a.png'), await get('/img/b.png'));
  assert.deepEqual(await get('/img/a.png?seed=x'), await get('/img/b.png?seed=x'));
  assert.equal((await get('/img/big.png?pad=12000')).length, 12_000);
});

test('misc routes: noext, download, status, wrong types, ct override, 404, HEAD', async () => {
  let res = await fetch(origin.url('/noext/some/thing'));
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.ok(hasSignature('png', await body(res)));

  res = await fetch(origin.url('/download?filePath=/a/b/x.jpg'));
  assert.equal(res.headers.get('content-type'), 'image/jpeg');
  assert.ok(hasSignature('jpg', await body(res)));

  res = await fetch(origin.url('/status/418'));
  assert.equal(res.status, 418);
  assert.match(await res.text(), /^418 /);

  res = await fetch(origin.url('/html-as-png/a.png'));
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.match(await res.text(), /^<!doctype html>/);

  res = await fetch(origin.url('/wrongtype/a.png'));
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  assert.ok(hasSignature('png', await body(res)));

  res = await fetch(origin.url('/img/a.webp?ct=application/octet-stream'));
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  assert.ok(hasSignature('webp', await body(res)));

  res = await fetch(origin.url('/img/a.png?ct='));
  assert.equal(res.headers.get('content-type'), null);
  await res.arrayBuffer();

  res = await fetch(origin.url('/no/such/route'));
  assert.equal(res.status, 404);
  await res.arrayBuffer();

  res = await fetch(origin.url('/img/a.gif'), { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.ok(Number(res.headers.get('content-length')) > 0);
  assert.equal((await body(res)).length, 0);
});

test('flaky and ratelimit fail the first N requests per key, and the log counts them', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await fetch(origin.url('/flaky/k1.png?fails=2&status=500'));
    await res.arrayBuffer();
    statuses.push(res.status);
  }
  assert.deepEqual(statuses, [500, 500, 200]);
  assert.equal(origin.count('/flaky/k1.png'), 3);
  assert.equal(origin.count('/flaky/k1.png?fails=2'), 3);
  assert.deepEqual(
    origin.log.filter((e) => e.path === '/flaky/k1.png').map((e) => [e.status, e.completed]),
    [[500, true], [500, true], [200, true]],
  );

  let res = await fetch(origin.url('/ratelimit/r1.png?fails=1&retryAfter=2'));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '2');
  await res.arrayBuffer();
  res = await fetch(origin.url('/ratelimit/r1.png?fails=1&retryAfter=2'));
  assert.equal(res.status, 200);
  assert.ok(hasSignature('png', await body(res)));

  res = await fetch(origin.url('/ratelimit/r2.png?retryAfter=5&retryAfterDate=1'));
  await res.arrayBuffer();
  const when = Date.parse(res.headers.get('retry-after') ?? '');
  assert.ok(when > Date.now() + 2000 && when <= Date.now() + 6000, `Retry-After date ${when}`);
});

test('truncated sends half the body and then drops the connection', async () => {
  const res = await fetch(origin.url('/truncated/t.png'));
  const expected = Number(res.headers.get('content-length'));
  let received = 0;
  const reader = res.body!.getReader();
  await assert.rejects(async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      received += value.length;
    }
  });
  assert.equal(expected, 4096);
  assert.equal(received, expected / 2);
  const entry = origin.log.findLast((e) => e.path === '/truncated/t.png');
  assert.equal(entry?.completed, false);
});

test('stall keeps the body open until the client gives up', async () => {
  const started = Date.now();
  const res = await fetch(origin.url('/stall/s.png'), { signal: AbortSignal.timeout(300) });
  assert.equal(res.status, 200);
  await assert.rejects(res.arrayBuffer(), { name: 'TimeoutError' });
  assert.ok(Date.now() - started < 2000);
  const entry = origin.log.findLast((e) => e.path === '/stall/s.png');
  assert.deepEqual([entry?.status, entry?.completed, entry?.bytes], [200, false, 100]);

  // stallMs bounds the stall from the server side too.
  const headersOnly = fetch(origin.url('/stall-headers/s.png?stallMs=200'));
  await assert.rejects(headersOnly);
});

test('redirects: chains end at the target, loops never end', async () => {
  const res = await fetch(origin.url('/redirect/2/img/r.png?w=4'));
  assert.equal(res.status, 200);
  assert.equal(res.url, origin.url('/img/r.png?w=4'));
  assert.ok(hasSignature('png', await body(res)));
  assert.equal(origin.count('/redirect/'), 3);

  const loop = await fetch(origin.url('/redirect-loop/l.png'), { redirect: 'manual' });
  assert.equal(loop.status, 302);
  assert.equal(loop.headers.get('location'), '/redirect-loop/l.png');
  await loop.arrayBuffer();
  await assert.rejects(fetch(origin.url('/redirect-loop/l.png')));
});

test('content-disposition: raw UTF-8 filename and RFC 5987 filename*', async () => {
  let res = await fetch(origin.url(`/cd/x?name=${encodeURIComponent('国旗.png')}`));
  // fetch exposes header bytes as latin1 code points
  const raw = Buffer.from(res.headers.get('content-disposition') ?? '', 'latin1').toString('utf8');
  assert.equal(raw, 'attachment; filename="国旗.png"');
  assert.ok(hasSignature('png', await body(res)));

  res = await fetch(origin.url(`/cd/x?star=1&name=${encodeURIComponent('../../x.png')}`));
  assert.equal(res.headers.get('content-disposition'), "attachment; filename*=UTF-8''..%2F..%2Fx.png");
  await res.arrayBuffer();
});

test('bigPngStream has the advertised exact length and valid chunks', async () => {
  for (const size of [0, 100, 65_536 * 2 + 50, 200_003]) {
    const chunks: Buffer[] = [];
    for await (const chunk of bigPngStream(size)) chunks.push(chunk as Buffer);
    const all = Buffer.concat(chunks);
    assert.equal(all.length, bigPngLength(size));
    assert.equal(all.length, Math.max(size, png(8, 8).length));
    assert.ok(Math.max(...chunks.map((c) => c.length)) <= 64 * 1024);
    const types = pngChunks(all);
    assert.deepEqual([types[0], types[1], types.at(-1)], ['IHDR', 'IDAT', 'IEND']);
  }

  const res = await fetch(origin.url('/big/b.png?mb=1'));
  assert.equal(Number(res.headers.get('content-length')), 1024 * 1024);
  const buf = await body(res);
  assert.equal(buf.length, 1024 * 1024);
  assert.ok(hasSignature('png', buf));
});

test('keep-alive connections are reused', async () => {
  const agent = new http.Agent({ keepAlive: true });
  const get = (): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const req = http.get(origin.url('/img/k.png'), { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.reusedSocket));
      });
      req.on('error', reject);
    });
  assert.equal(await get(), false);
  assert.equal(await get(), true);
  agent.destroy();
});

test('custom routes win over built-ins; latency and ?delay= are applied', async () => {
  const slow = await startOrigin({ latencyMs: 100 });
  try {
    slow.route('/img/x.png', (_req, res) => {
      res.end('custom');
    });
    let started = Date.now();
    const res = await fetch(slow.url('/img/x.png'));
    assert.equal(await res.text(), 'custom');
    assert.ok(Date.now() - started >= 90, 'latencyMs');

    started = Date.now();
    await (await fetch(slow.url('/img/y.png?delay=150'))).arrayBuffer();
    assert.ok(Date.now() - started >= 240, '?delay= adds to latencyMs');
  } finally {
    await slow.close();
  }
});

test('close() returns quickly with stalled requests open', async () => {
  const o = await startOrigin();
  const pending = [
    fetch(o.url('/stall-headers/a.png')),
    fetch(o.url('/stall/b.png')).then((r) => r.arrayBuffer()),
    fetch(o.url('/img/c.png?delay=20000')),
  ];
  for (const p of pending) p.catch(() => {});
  while (o.log.length < 3) await new Promise((r) => setTimeout(r, 10));

  const started = Date.now();
  await o.close();
  assert.ok(Date.now() - started < 1000, `close took ${Date.now() - started} ms`);
  for (const p of pending) await assert.rejects(p);
  await o.close(); // idempotent
});
