import { createHash } from 'node:crypto';
import path from 'node:path';
import contentDisposition from 'content-disposition';
import sanitize from 'sanitize-filename';
import { extensionMatches, type Sniffed } from './sniff.ts';

/** Query parameters that carry a file path or name, as in `download?filePath=/a/b/x.jpg` (seed 000). */
const NAME_PARAMS = ['filePath', 'filepath', 'file_path', 'fileName', 'filename', 'file_name', 'file'];

/** Longest file name we write, in UTF-8 bytes (most filesystems allow 255). */
export const MAX_NAME_BYTES = 200;

/** The name a response asks for, in order: Content-Disposition, a file-path query parameter, the URL path. */
export function nameFromResponse(url: URL, disposition: string | undefined): string {
  if (disposition) {
    try {
      const parsed = contentDisposition.parse(disposition);
      const name = parsed.parameters['filename'];
      if (name && lastSegment(name)) return rawUtf8(name);
    } catch {
      // A malformed header is ignored, as browsers do; the URL still gives a name.
    }
  }
  return nameFromUrl(url);
}

/** The name a URL alone gives: a file-path query parameter, else the last path segment. */
export function nameFromUrl(url: URL): string {
  for (const key of NAME_PARAMS) {
    const value = url.searchParams.get(key);
    if (value && lastSegment(value)) return value;
  }
  let segment = url.pathname.split('/').filter(Boolean).pop() ?? '';
  try {
    segment = decodeURIComponent(segment);
  } catch {
    // Keep the raw segment when it is not valid percent-encoding.
  }
  return segment;
}

/**
 * Many servers send `filename="国旗.png"` as raw UTF-8 bytes, which arrive as latin1 characters; read such a
 * name as UTF-8 when its bytes are valid UTF-8 (a real latin1 name almost never is).
 */
function rawUtf8(name: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[\u0080-\u00ff]/.test(name) || /[^\u0000-\u00ff]/.test(name)) return name;
  const decoded = Buffer.from(name, 'latin1').toString('utf8');
  return decoded.includes('\ufffd') ? name : decoded;
}

function lastSegment(name: string): string {
  return name.split(/[/\\]/).filter((s) => s && s !== '.' && s !== '..').pop() ?? '';
}

/**
 * A safe, bounded file name: the last path segment only (no separators, no `..`), no control or reserved
 * characters, no leading dots, no Windows reserved names, at most MAX_NAME_BYTES, with an extension that
 * matches the real bytes. `fallback` is used when nothing usable is left.
 */
export function safeName(wanted: string, sniffed: Sniffed | undefined, fallback: string): string {
  // Control characters go, and so do bidirectional overrides and isolates (U+202E makes `gpj.exe` show as `exe.jpg`).
  // eslint-disable-next-line no-control-regex
  let name = lastSegment(wanted.normalize('NFC')).replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '');
  name = sanitize(name, { replacement: '_' }).replace(/^[.\s]+/, '').trim();
  if (!name || /^_+$/.test(name)) name = fallback;
  let { stem, ext } = splitExt(name);
  if (sniffed && !(ext && extensionMatches(ext, sniffed))) {
    // A missing or wrong extension is fixed from the bytes (`photo.php` holding a PNG → `photo.png`).
    ext = sniffed.ext;
  }
  if (!stem) stem = fallback;
  return boundLength(stem, ext ? `.${ext}` : '');
}

export function splitExt(name: string): { stem: string; ext: string } {
  const ext = path.extname(name);
  if (!ext || ext === name || !/^\.[A-Za-z0-9]{1,8}$/.test(ext)) return { stem: name, ext: '' };
  return { stem: name.slice(0, -ext.length), ext: ext.slice(1) };
}

function boundLength(stem: string, suffix: string): string {
  const limit = MAX_NAME_BYTES - Buffer.byteLength(suffix);
  if (Buffer.byteLength(stem) > limit) {
    const chars = [...stem];
    while (Buffer.byteLength(chars.join('')) > limit) chars.pop();
    stem = chars.join('');
  }
  return stem + suffix;
}

/** A short, stable hash of a string (used for fallback names and collision suffixes). */
export function shortHash(value: string, length = 10): string {
  return createHash('sha1').update(value).digest('hex').slice(0, length);
}

/**
 * The first of `base` and its stable alternatives (see disambiguate) that `take` accepts, or undefined after 21:
 * the one rule for name collisions, whether names are claimed in a run's store or in memory.
 */
export function firstFreeName(base: string, url: string, take: (name: string) => boolean): string | undefined {
  for (let tries = 0; tries <= 20; tries++) {
    const name = tries === 0 ? base : disambiguate(base, url, tries - 1);
    if (take(name)) return name;
  }
  return undefined;
}

/** The stable alternative name for `name` when another URL already holds it: `x.png` → `x-1a2b3c4d.png`. */
export function disambiguate(name: string, url: string, attempt: number): string {
  const { stem, ext } = splitExt(name);
  const tag = attempt === 0 ? shortHash(url, 8) : `${shortHash(url, 8)}-${attempt}`;
  return boundLength(stem, `-${tag}${ext ? `.${ext}` : ''}`);
}
