// report.html in a real headless Chromium (Debian's `chromium`, driven by playwright-core): it loads offline with no
// request leaving the output folder, shows one thumbnail per saved image once scrolled through (lazily: not all at
// first), escapes hostile URLs and captions, and renders (a screenshot is taken).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

const CHROMIUM = '/usr/bin/chromium';
const available = fs.existsSync(CHROMIUM);
// In CI the browser must be there (.ci/run installs it): a missing one fails rather than skipping silently.
const skip = !available && !process.env['CI'] ? `SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium); the report is not checked in a browser` : false;
if (skip) process.stderr.write(`\n*** report.test.ts ${skip} ***\n\n`);

let origin: Origin;
before(async () => {
  origin = await startOrigin();
});
after(async () => {
  await origin.close();
});

const GOOD = 240;

test('report.html opens offline in headless Chromium: nothing requested outside the folder, one thumbnail per saved image, hostile text escaped, a screenshot', { skip, timeout: 240_000 }, async () => {
  const dir = tmpDir();
  const rows = ['url,caption'];
  for (let i = 0; i < GOOD; i++) rows.push(`${origin.url(`/img/t${i}.png?w=${16 + (i % 5) * 8}&h=16`)},cat ${i}`);
  // File names that must be percent-encoded in a relative URL (#, %, space, non-ASCII).
  rows.push(`${origin.url('/cd/x1?name=' + encodeURIComponent('a #1%.png'))},hash and percent`);
  rows.push(`${origin.url('/cd/x2?name=' + encodeURIComponent('国旗 flag.png'))},unicode`);
  // Hostile text: a caption and a bad row's URL text that would load a remote image if they were not escaped.
  rows.push(`${origin.url('/img/hostile.png')},"<img src=http://evil.example/caption.png><script>document.title='owned'</script>"`);
  rows.push(`"""><img src=http://evil.example/url.png>",bad row`);
  rows.push(`ftp://evil.example/<b>x</b>.png,other host`);
  rows.push(`${origin.url('/status/404')},gone`);
  fs.writeFileSync(path.join(dir, 'sheet.csv'), rows.join('\n') + '\n');
  const result = await runCli(['get', 'sheet.csv', '--caption-col', 'caption', '--storage', 'state', '--quiet', '--retries', '0'], { cwd: dir, timeoutMs: 120_000 });
  assert.equal(result.code, 1, result.stderr);
  const out = path.join(dir, 'sheet');
  const records = readJsonl<{ file: string }>(path.join(out, 'metadata.jsonl'));
  assert.equal(records.length, GOOD + 3);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.ok(!html.includes('<img src=http://evil.example') && !html.includes('<script'), 'hostile text escaped');

  const { chromium } = await import('playwright-core');
  const profile = tmpDir('imgdl-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
  try {
    const requests: string[] = [];
    context.on('request', (r) => requests.push(r.url()));
    const page = context.pages()[0] ?? (await context.newPage());
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(pathToFileURL(path.join(out, 'report.html')).href, { waitUntil: 'load', timeout: 60_000 });
    // Page code is given as text: this project's TypeScript has no DOM types.
    const LOADED = '[...document.images].filter((i) => i.complete && i.naturalWidth > 0).length';
    const count = () => page.evaluate<number>(LOADED);
    assert.equal(await page.evaluate<number>('document.images.length'), GOOD + 3, 'one <img> per saved image');
    const atFirst = await count();
    assert.ok(atFirst < GOOD + 3, `thumbnails load lazily (${atFirst} loaded before scrolling)`);
    // Scroll to the end, a viewport at a time (bounded), then wait for the last ones to decode.
    for (let i = 0; i < 200; i++) {
      const done = await page.evaluate<boolean>('window.scrollBy(0, window.innerHeight), window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1');
      await page.waitForTimeout(40);
      if (done) break;
    }
    await page.waitForFunction(`${LOADED} >= ${GOOD + 3}`, undefined, { timeout: 60_000 });
    assert.equal(await count(), GOOD + 3, 'every thumbnail loaded after scrolling');

    const folder = pathToFileURL(out).href + '/';
    const outside = requests.filter((u) => !u.startsWith(folder));
    assert.deepEqual(outside, [], 'no request leaves the output folder');
    assert.ok(requests.some((u) => u.endsWith('/a%20%231%25.png')), 'a name with # and % is reached by its encoded path');
    assert.match(await page.title(), /^imgdl report: get-sheet-/, 'no injected script ran (it would set the title)');
    assert.deepEqual(dialogs, []);
    assert.equal(await page.evaluate<number>('document.scripts.length'), 0);
    // The failures and the chart are there, with the hostile text shown as text.
    const text = await page.evaluate<string>('document.body.innerText');
    assert.match(text, /Failures by code/);
    assert.match(text, /"><img src=http:\/\/evil\.example\/url\.png>/);
    assert.match(text, /evil\.example/);
    assert.ok((await page.evaluate<number>("document.querySelectorAll('svg.chart rect').length")) > 0, 'the throughput chart has bars');

    await page.evaluate('window.scrollTo(0, 0)');
    const shot = path.join(tmpDir('imgdl-shot-'), 'report.png');
    await page.screenshot({ path: shot, fullPage: false });
    const png = fs.readFileSync(shot);
    assert.ok(png.length > 1000, `a non-empty screenshot (${png.length} bytes)`);
    assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
  } finally {
    await context.close();
  }
});

test('report.html escapes every URL, file name, caption and host, and links files by their encoded relative path', async () => {
  const { renderReport } = await import('../src/report/html.ts');
  const evil = '"><img src=http://evil.example/x.png onerror=alert(1)><script>alert(2)</script>';
  const html = renderReport({
    saved: 2,
    thumbs: [
      { file: 'a #1%.png', url: `http://127.0.0.1/${evil}`, caption: evil, width: 8, height: 8 },
      { file: `x'"<b>.png`, url: 'http://127.0.0.1/y.png', width: null, height: null },
    ],
    stats: {
      run: evil,
      generatedAt: '2026-11-28T00:00:00.000Z',
      images: { total: 3, saved: 2, failed: 1, pending: 0 },
      successRate: 2 / 3,
      bytes: 100,
      session: { downloaded: 2, bytes: 100, seconds: 1, imagesPerSecond: 2, interrupted: false },
      failures: { byCode: { invalid_url: 1 }, examples: { invalid_url: [evil] }, byHost: [{ host: evil, failed: 1, saved: 0, byCode: { invalid_url: 1 }, examples: [evil] }], hosts: 1 },
      throughput: { start: '2026-11-28T00:00:00.000Z', bucketSeconds: 1, buckets: [{ t: 0, images: 2, bytes: 100, failed: 1 }] },
    },
  });
  assert.doesNotMatch(html, /<script|<img src=http/);
  assert.match(html, /alt="&quot;&gt;&lt;img src=http:\/\/evil\.example\/x\.png onerror=alert\(1\)&gt;/, 'an attribute cannot be closed by the text');
  assert.match(html, /&lt;script&gt;alert\(2\)&lt;\/script&gt;/);
  assert.match(html, /<img src="a%20%231%25\.png" loading="lazy"/);
  assert.match(html, /<img src="x'%22%3Cb%3E\.png"|<img src="x&#39;%22%3Cb%3E\.png"/);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1|evil\.example)/, 'no link to anywhere else (no CDN)');
});
