// File naming: which name a response asks for, how it is made safe, and how collisions are resolved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disambiguate, MAX_NAME_BYTES, nameFromResponse, nameFromUrl, safeName } from '../src/core/naming.ts';
import type { Sniffed } from '../src/core/sniff.ts';

const PNG: Sniffed = { ext: 'png', mime: 'image/png' };
const JPG: Sniffed = { ext: 'jpg', mime: 'image/jpeg' };
const TIF: Sniffed = { ext: 'tif', mime: 'image/tiff' };

/** The file name a response ends up with (what the download code does with these two functions). */
function finalName(url: string, disposition?: string, sniffed: Sniffed = PNG): string {
  return safeName(nameFromResponse(new URL(url), disposition), sniffed, 'image-fallback');
}

const RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

test('nameFromResponse prefers Content-Disposition, then a filePath parameter, then the URL path', () => {
  const url = 'http://h.test/p/from-path.png?filePath=/a/b/from-param.png';
  assert.equal(finalName(url, 'attachment; filename="from-cd.png"'), 'from-cd.png');
  assert.equal(finalName(url, undefined), 'from-param.png');
  assert.equal(finalName('http://h.test/p/from-path.png?other=/a/b/x.png', undefined), 'from-path.png');
});

test('nameFromResponse reads filename* (RFC 5987) in UTF-8, and prefers it to filename', () => {
  const url = 'http://h.test/download';
  assert.equal(finalName(url, `attachment; filename*=UTF-8''%E5%9B%BD%E6%97%97.png`), '国旗.png');
  assert.equal(finalName(url, `attachment; filename="flag.png"; filename*=UTF-8''%E5%9B%BD%E6%97%97.png`), '国旗.png');
});

test('nameFromResponse reads a filename sent as raw UTF-8 bytes (as many servers do) as UTF-8', () => {
  // HTTP clients hand header values over as latin1 strings: this is what "国旗.png" in raw UTF-8 looks like.
  const header = `attachment; filename="${Buffer.from('国旗.png').toString('latin1')}"`;
  assert.equal(finalName('http://h.test/download', header), '国旗.png');
});

test('nameFromResponse keeps a filename that is plain latin1 (not valid UTF-8) as latin1', () => {
  assert.equal(finalName('http://h.test/download', 'attachment; filename="caf\u00e9 na\u00efve.png"'), 'caf\u00e9 na\u00efve.png');
});

test('a Content-Disposition without a usable filename falls back to the URL', () => {
  const url = 'http://h.test/p/from-path.png';
  assert.equal(finalName(url, 'attachment'), 'from-path.png');
  assert.equal(finalName(url, 'inline'), 'from-path.png');
  assert.equal(finalName(url, 'attachment; filename=".."'), 'from-path.png');
  assert.equal(finalName(url, 'attachment; filename="/"'), 'from-path.png');
  assert.equal(finalName(url, 'garbage;;=="'), 'from-path.png', 'a malformed header is ignored');
});

test('a filePath parameter that is only separators or dots is ignored', () => {
  assert.equal(finalName('http://h.test/p/from-path.png?filePath=/../'), 'from-path.png');
  assert.equal(finalName('http://h.test/p/from-path.png?filePath='), 'from-path.png');
});

test('nameFromUrl ignores the query string and the fragment, and decodes percent-escapes', () => {
  assert.equal(nameFromUrl(new URL('http://h.test/a/b.png?x=1&y=/c.gif#frag')), 'b.png');
  assert.equal(nameFromUrl(new URL('http://h.test/a/%E5%9B%BD%20x.png')), '国 x.png');
  assert.equal(nameFromUrl(new URL('http://h.test/a/100%25.png')), '100%.png');
});

test('nameFromUrl keeps a segment that is not valid percent-encoding as it is', () => {
  assert.equal(nameFromUrl(new URL('http://h.test/a/%E5.png')), '%E5.png');
});

test('a URL with no path still gets a name: the fallback, with the extension of its bytes', () => {
  assert.equal(finalName('http://h.test/'), 'image-fallback.png');
  assert.equal(finalName('http://h.test/?q=1', undefined, JPG), 'image-fallback.jpg');
});

test('safeName keeps only the last path segment: ../ and ..\\ cannot leave the folder', () => {
  for (const hostile of ['../../x.png', '..\\..\\x.png', '/etc/x.png', 'a/b/../x.png', 'C:\\Windows\\x.png', './x.png']) {
    assert.equal(safeName(hostile, PNG, 'fb'), 'x.png', hostile);
  }
  for (const hostile of ['..', '.', '../..', '/', '\\', '']) {
    assert.equal(safeName(hostile, PNG, 'fb'), 'fb.png', JSON.stringify(hostile));
  }
});

test('safeName removes control characters and replaces characters reserved on common filesystems', () => {
  assert.equal(safeName('a\u0000b\u001fc\u007fd\u0085e\n.png', PNG, 'fb'), 'abcde.png');
  const reserved = safeName('a<b>c:d"e|f?g*h.png', PNG, 'fb');
  assert.doesNotMatch(reserved, /[<>:"|?*]/);
  assert.match(reserved, /^a.*h\.png$/);
});

test('safeName never yields a Windows device name', () => {
  for (const name of ['CON.png', 'con', 'nul.txt', 'COM1.jpg', 'lpt9', 'AUX.tar.gz', 'Prn.PNG']) {
    const safe = safeName(name, PNG, 'image-fb');
    assert.doesNotMatch(safe, RESERVED, `${name} → ${safe}`);
    assert.match(safe, /\.png$/);
  }
});

test('safeName drops leading dots, so no hidden or dot-only names', () => {
  assert.equal(safeName('.htaccess', PNG, 'fb'), 'htaccess.png');
  assert.doesNotMatch(safeName('...x.png', PNG, 'fb'), /^\./);
});

test('safeName bounds names to 200 UTF-8 bytes, keeping the extension and whole characters', () => {
  assert.equal(MAX_NAME_BYTES, 200);
  const cases = ['a'.repeat(300) + '.png', '图'.repeat(100) + '.png', '😀'.repeat(80) + '.png', 'e\u0301'.repeat(150) + '.png', 'x.' + 'a'.repeat(300)];
  for (const name of cases) {
    const safe = safeName(name, PNG, 'fb');
    assert.ok(Buffer.byteLength(safe) <= 200, `${Buffer.byteLength(safe)} bytes`);
    assert.ok(Buffer.byteLength(safe) >= 150, 'cut near the limit, not to nothing');
    assert.match(safe, /\.png$/);
    assert.doesNotMatch(safe, LONE_SURROGATE, 'no half of a surrogate pair');
    assert.equal(Buffer.from(safe, 'utf8').toString('utf8'), safe);
  }
  assert.match(safeName('图'.repeat(100) + '.png', PNG, 'fb'), /^图+\.png$/);
});

test('safeName normalises to NFC', () => {
  assert.equal(safeName('caf\u0065\u0301.png', PNG, 'fb'), 'caf\u00e9.png');
});

test('safeName fixes a missing or wrong extension from the bytes and keeps a right one', () => {
  assert.equal(safeName('abc', PNG, 'fb'), 'abc.png');
  assert.equal(safeName('photo.php', PNG, 'fb'), 'photo.png');
  assert.equal(safeName('x.jpg', PNG, 'fb'), 'x.png');
  assert.equal(safeName('x.JPG', PNG, 'fb'), 'x.png');
  assert.equal(safeName('x.jpeg', JPG, 'fb'), 'x.jpeg');
  assert.equal(safeName('x.JPG', JPG, 'fb'), 'x.JPG');
  assert.equal(safeName('scan.tiff', TIF, 'fb'), 'scan.tiff');
  assert.equal(safeName('archive.tar.png', PNG, 'fb'), 'archive.tar.png');
});

test('safeName without sniffed bytes keeps the extension it was given', () => {
  assert.equal(safeName('photo.php', undefined, 'fb'), 'photo.php');
  assert.equal(safeName('noext', undefined, 'fb'), 'noext');
});

test('safeName falls back when nothing usable is left', () => {
  assert.equal(safeName('???', PNG, 'image-1a2b'), 'image-1a2b.png');
  assert.equal(safeName('\u0000\u0001', PNG, 'image-1a2b'), 'image-1a2b.png');
  assert.equal(safeName('   ', PNG, 'image-1a2b'), 'image-1a2b.png');
});

test('safeName output is always a plain, bounded, visible name, whatever comes in', () => {
  const hostile = [
    '../../../../etc/passwd', 'CON', ' .png', '.png', '..png', 'a\\..\\..\\b', '%2e%2e%2fx.png', '\u202Egnp.exe',
    'x'.repeat(1000), '\u0000'.repeat(10), '/'.repeat(10), 'name. ', 'name.png.', '<script>.png', '图'.repeat(500),
  ];
  for (const name of hostile) {
    for (const sniffed of [PNG, undefined]) {
      const safe = safeName(name, sniffed, 'image-fb');
      const label = `${JSON.stringify(name.slice(0, 30))} → ${JSON.stringify(safe)}`;
      assert.ok(safe.length > 0, label);
      assert.ok(Buffer.byteLength(safe) <= 200, label);
      assert.doesNotMatch(safe, /[/\\]/, label);
      assert.doesNotMatch(safe, CONTROL, label);
      assert.doesNotMatch(safe, /^[.\s]/, label);
      assert.doesNotMatch(safe, RESERVED, label);
      assert.notEqual(safe, '.', label);
      assert.notEqual(safe, '..', label);
    }
  }
});

test('disambiguate gives a stable name from the URL: same-<8 hex>.png', () => {
  const a = disambiguate('same.png', 'http://h.test/a/same.png', 0);
  assert.match(a, /^same-[0-9a-f]{8}\.png$/);
  assert.equal(disambiguate('same.png', 'http://h.test/a/same.png', 0), a, 'same URL, same name, every time');
  assert.notEqual(disambiguate('same.png', 'http://h.test/b/same.png', 0), a, 'another URL, another name');
});

test('disambiguate gives further distinct, stable names for later attempts', () => {
  const url = 'http://h.test/a/same.png';
  const names = [0, 1, 2, 3].map((n) => disambiguate('same.png', url, n));
  assert.equal(new Set(names).size, 4);
  assert.deepEqual([0, 1, 2, 3].map((n) => disambiguate('same.png', url, n)), names);
  for (const name of names) assert.match(name, /^same-[0-9a-f]{8}(-\d+)?\.png$/);
});

test('disambiguate keeps names without an extension extension-less, and long names within 200 bytes', () => {
  assert.match(disambiguate('same', 'http://h.test/x', 0), /^same-[0-9a-f]{8}$/);
  const long = disambiguate('a'.repeat(196) + '.png', 'http://h.test/x', 0);
  assert.ok(Buffer.byteLength(long) <= 200, `${Buffer.byteLength(long)} bytes`);
  assert.match(long, /^a+-[0-9a-f]{8}\.png$/);
  const cjk = disambiguate('图'.repeat(64) + '.png', 'http://h.test/x', 5);
  assert.ok(Buffer.byteLength(cjk) <= 200);
  assert.match(cjk, /^图+-[0-9a-f]{8}-5\.png$/);
});

test('bidirectional override and isolate characters are removed, so a name shows as what it is', () => {
  // "photo\u202Egnp.exe" displays as "photoexe.png".
  assert.equal(safeName('photo\u202egnp.exe', PNG, 'fb'), 'photognp.png');
  assert.equal(safeName('\u2067a\u2069b\u200f.png', PNG, 'fb'), 'ab.png');
});
