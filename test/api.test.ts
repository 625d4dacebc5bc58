// The library API (src/index.ts) in-process, against the fixture origin: memory, temp folder, folder with
// resume, streaming, progress, aborts and option validation.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { imageSize } from 'image-size';
import {
  definePlugin,
  download,
  Downloader,
  fetchImages,
  runPlugin,
  streamImages,
  UsageError,
  withImages,
  type BatchProgress,
  type ImageOk,
  type Progress,
} from '../src/index.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';
import { listFiles, tmpDir } from './helpers/cli.ts';

let origin: Origin;
let slow: Origin;

before(async () => {
  origin = await startOrigin();
  slow = await startOrigin({ latencyMs: 40 });
});
after(async () => {
  await origin.close();
  await slow.close();
});

const fast = { retries: 1, retryDelay: 10 };

describe('fetchImages (in memory)', () => {
  it('returns one result per URL in input order, with a reason code for each bad one, never throwing', async () => {
    const urls = [
      origin.url('/img/a.png?w=7&h=5'),
      origin.url('/status/404'),
      'not a url',
      origin.url('/html-as-png/login.png'),
      origin.url('/download?filePath=/positionimages/202401/x-1.jpg'),
      'ftp://example.invalid/x.png',
    ];
    const results = await fetchImages(urls, fast);
    assert.deepEqual(
      results.map((r) => (r.ok ? 'ok' : r.code)),
      ['ok', 'http_status', 'invalid_url', 'not_image', 'ok', 'unsupported_scheme'],
    );
    assert.deepEqual(results.map((r) => r.index), [0, 1, 2, 3, 4, 5]);
    const a = results[0] as ImageOk;
    assert.equal(a.contentType, 'image/png');
    assert.equal(a.width, 7);
    assert.equal(a.height, 5);
    assert.equal(a.bytes, a.data.length);
    assert.deepEqual(imageSize(a.data), { width: 7, height: 5, type: 'png' });
    assert.equal(a.name, 'a.png');
    assert.equal((results[4] as ImageOk).name, 'x-1.jpg', 'named from the filePath query parameter (seed 000)');
    assert.equal(results[1]!.ok ? null : results[1]!.status, 404);
  });

  it('retries a flaky 503 and honours Retry-After on 429', async () => {
    const results = await fetchImages([origin.url('/flaky/api-f.png?fails=2'), origin.url('/ratelimit/api-r.png?fails=1&retryAfter=1')], {
      retries: 3,
      retryDelay: 10,
    });
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => (r.ok ? 'ok' : r.message))));
    assert.equal(origin.count('/flaky/api-f.png'), 3);
    assert.equal(origin.count('/ratelimit/api-r.png'), 2);
  });

  it('keeps to the concurrency limit', async () => {
    let active = 0;
    let peak = 0;
    slow.route('/counted.png', async (_req, res) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 30));
      active--;
      res.writeHead(302, { location: '/img/counted.png' }).end();
    });
    const urls = Array.from({ length: 24 }, (_, i) => `${slow.url('/counted.png')}?i=${i}`);
    const results = await fetchImages(urls, { ...fast, concurrency: 3 });
    assert.equal(results.filter((r) => r.ok).length, 24);
    assert.ok(peak <= 3, `peak ${peak} requests at once with concurrency 3`);
    assert.ok(peak >= 2, `peak ${peak}: downloads did run concurrently`);
  });

  it('turns a stalled body into a timeout result', async () => {
    const [r] = await fetchImages([origin.url('/stall/api.png?stallMs=5000')], { retries: 0, timeout: 0.3 });
    assert.equal(r!.ok, false);
    assert.equal(r!.ok ? '' : r!.code, 'timeout');
  });

  it('rejects with the reason when its AbortSignal fires, and reports progress', async () => {
    const controller = new AbortController();
    const seen: BatchProgress[] = [];
    const urls = Array.from({ length: 40 }, (_, i) => slow.url(`/img/abort-${i}.png`));
    const promise = fetchImages(urls, {
      concurrency: 2,
      signal: controller.signal,
      onProgress: (p) => {
        seen.push(p);
        if (p.done === 3) controller.abort(new Error('enough'));
      },
    });
    await assert.rejects(promise, /enough/);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen.map((p) => p.done), [1, 2, 3]);
    assert.equal(seen[0]!.total, 40);
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(slow.count('/img/abort-') < 10, `${slow.count('/img/abort-')} requests: the rest were never started`);
  });

  it('validates options before any network work, naming the option', async () => {
    const before = origin.log.length;
    await assert.rejects(fetchImages([origin.url('/img/v.png')], { concurrency: 0 }), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.message, 'Expected `concurrency` to be an integer ≥ 1, got 0');
      return true;
    });
    await assert.rejects(fetchImages([origin.url('/img/v.png')], { timeout: -1 }), /Expected `timeout` to be a number of seconds > 0, got -1/);
    await assert.rejects(fetchImages([origin.url('/img/v.png')], { conncurrency: 4 } as never), /Unknown option `conncurrency`/);
    assert.equal(origin.log.length, before);
  });
});

describe('Downloader and streamImages', () => {
  it('a Downloader serves many calls with one pool and says when it is closed', async () => {
    const dl = new Downloader({ ...fast, concurrency: 4 });
    const events: string[] = [];
    dl.on('result', (r) => events.push(r.ok ? 'ok' : r.code));
    const one = await dl.fetchOne(origin.url('/img/one.gif'));
    assert.equal(one.ext, 'gif');
    await assert.rejects(dl.fetchOne(origin.url('/status/410')), (e: Error & { code?: string; status?: number }) => e.code === 'http_status' && e.status === 410);
    const many = await Promise.all([dl.fetch([origin.url('/img/m1.png')]), dl.fetch([origin.url('/img/m2.png'), origin.url('/img/m3.webp')])]);
    assert.deepEqual(many.map((m) => m.length), [1, 2]);
    assert.deepEqual([...events].sort(), ['http_status', 'ok', 'ok', 'ok', 'ok']);
    await dl.close();
    await assert.rejects(dl.fetch([origin.url('/img/after.png')]), /closed/);
  });

  it('yields results as they complete, and stopping early abandons the rest', async () => {
    slow.route('/late.png', async (_req, res) => {
      await new Promise((r) => setTimeout(r, 400));
      res.writeHead(302, { location: '/img/late.png' }).end();
    });
    const order: number[] = [];
    for await (const r of streamImages([slow.url('/late.png'), slow.url('/img/early.png')], fast)) order.push(r.index);
    assert.deepEqual(order, [1, 0], 'the quick image came out first');

    const urls = Array.from({ length: 50 }, (_, i) => slow.url(`/img/stream-stop-${i}.png`));
    let got = 0;
    for await (const r of streamImages(urls, { concurrency: 2 })) {
      assert.ok(r.ok);
      if (++got === 2) break;
    }
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(slow.count('/img/stream-stop-') <= 6, `${slow.count('/img/stream-stop-')} fetched after stopping at 2`);
  });

  it('reads an async iterable lazily', async () => {
    let pulled = 0;
    async function* gen() {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield origin.url(`/img/lazy-${i}.png`);
      }
    }
    let n = 0;
    for await (const r of streamImages(gen(), { concurrency: 4 })) {
      assert.ok(r.ok);
      if (++n === 5) break;
    }
    assert.ok(pulled < 20, `pulled ${pulled} URLs to get 5 images`);
  });
});

describe('withImages (temporary folder)', () => {
  it('hands saved files to the callback and removes the folder afterwards', async () => {
    let folder = '';
    const sizes = await withImages(
      [origin.url('/img/t1.png?w=3&h=4'), origin.url('/status/404'), origin.url('/cd/x?name=scan.png'), origin.url('/img/t1.png?w=5&h=5')],
      (results, dir) => {
        folder = dir;
        assert.deepEqual(results.map((r) => (r.ok ? r.file : r.code)), ['t1.png', 'http_status', 'scan.png', results[3]!.ok ? results[3]!.file : '']);
        assert.match(results[3]!.ok ? results[3]!.file : '', /^t1-[0-9a-f]{8}\.png$/, 'a second t1.png gets a stable suffix');
        const files = fs.readdirSync(dir).sort();
        assert.deepEqual(files, ['scan.png', 't1.png', results[3]!.ok ? results[3]!.file : ''].sort(), 'no temporary files');
        return results.flatMap((r) => (r.ok ? [imageSize(fs.readFileSync(r.path))] : [])).map((s) => `${s.width}x${s.height}`);
      },
      fast,
    );
    assert.deepEqual(sizes, ['3x4', '8x8', '5x5']);
    assert.equal(fs.existsSync(folder), false);
  });

  it('removes the folder when the callback throws', async () => {
    let folder = '';
    await assert.rejects(
      withImages([origin.url('/img/throw.png')], (_r, dir) => {
        folder = dir;
        throw new Error('OCR failed');
      }),
      /OCR failed/,
    );
    assert.ok(folder);
    assert.equal(fs.existsSync(folder), false);
  });
});

describe('download (folder, resumable)', () => {
  it('returns the summary and one result per URL in input order; a second call fetches nothing again', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    const storage = path.join(dir, 'storage');
    const urls = [origin.url('/img/d1.png'), origin.url('/status/404'), { url: origin.url('/img/d2.jpg'), name: 'cover.jpg', metadata: { page: 3 } }, 'nope'];
    const progress: number[] = [];
    let last: Progress | undefined;
    const first = await download(urls, {
      out,
      storage,
      ...fast,
      onProgress: (p) => {
        progress.push(p.done + p.failed);
        last = p;
      },
    });
    // Counts kept as items are added (no table scan per batch) must agree with the summary.
    assert.deepEqual([last?.total, last?.done, last?.failed, last?.downloaded], [4, 2, 2, 2]);
    assert.equal(first.summary.downloaded, 2);
    assert.equal(first.summary.failed, 2);
    assert.deepEqual(first.results.map((r) => r.status), ['saved', 'failed', 'saved', 'failed']);
    assert.deepEqual(first.results.map((r) => (r.ok ? r.file : r.status === 'failed' ? r.code : '')), ['d1.png', 'http_status', 'cover.jpg', 'invalid_url']);
    const cover = first.results[2]!;
    assert.ok(cover.ok && cover.record.metadata && (cover.record.metadata as { page: number }).page === 3);
    assert.ok(cover.ok && fs.existsSync(cover.path));
    assert.ok(progress.length >= 3);
    assert.deepEqual(listFiles(out).filter((f) => !f.endsWith('.jsonl') && f !== 'stats.json' && f !== 'report.html').sort(), ['cover.jpg', 'd1.png']);

    const requests = origin.count('/img/d');
    const second = await download(urls, { out, storage, ...fast });
    assert.equal(second.summary.downloaded, 0);
    assert.equal(second.summary.skipped, 2);
    assert.deepEqual(second.results.map((r) => r.status), ['saved', 'failed', 'saved', 'failed']);
    assert.equal(origin.count('/img/d'), requests, 'nothing fetched again');
  });

  it('rejects bad arguments with a clear message', async () => {
    await assert.rejects(download('x' as never), /Expected `urls` to be an array/);
    await assert.rejects(download([{ nope: 1 } as never], { storage: tmpDir() }), /Expected `items\[0\]` to be a URL or \{ url, name\?, metadata\? \}/);
  });
});

describe('plugins from a script', () => {
  it('definePlugin + runPlugin from the package entry', async () => {
    const dir = tmpDir();
    const plugin = definePlugin({
      name: 'api-test',
      description: 'Two images from one page.',
      options: { base: { type: 'string', default: '', help: 'the origin' } },
      start: ({ base }) => [{ url: `${base}/status/200`, label: 'page' }],
      handlers: {
        page: ({ options }) => ({
          images: [
            { url: `${options.base}/img/p1.png`, name: 'first.png', metadata: { n: 1 } },
            { url: `${options.base}/img/p2.png`, metadata: { n: 2 } },
          ],
        }),
      },
    });
    const summary = await runPlugin(plugin, { options: { base: origin.base }, out: path.join(dir, 'out'), storage: path.join(dir, 's'), ...fast });
    assert.equal(summary.downloaded, 2);
    assert.deepEqual(listFiles(path.join(dir, 'out')).filter((f) => f.endsWith('.png')).sort(), ['first.png', 'p2.png']);
  });
});

describe('a new run into a folder an earlier run filled', () => {
  it('skips the images it asks for that are already there, and counts only those', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    const storage = path.join(dir, 'storage');
    const earlier = ['/img/e1.png', '/img/e2.png', '/img/e3.png'].map((p) => origin.url(p));
    const first = await download(earlier, { out, storage, ...fast });
    assert.equal(first.summary.downloaded, 3);
    const fetched = origin.count('/img/e');
    // A different list (so a different run) into the same folder: one image already there, one new.
    const second = await download([earlier[1]!, origin.url('/img/e4.png')], { out, storage, ...fast });
    assert.equal(second.summary.downloaded, 1);
    assert.equal(second.summary.skipped, 1, 'only the requested image that was already saved counts as skipped');
    assert.equal(origin.count('/img/e'), fetched + 1, 'e2.png is not fetched again');
    assert.deepEqual(second.results.map((r) => (r.ok ? r.file : r.status)), ['e2.png', 'e4.png']);
  });
});
