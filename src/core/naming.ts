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
export function safeName(wanted: string, sniffed: Sniffed | undefined, fallback: Fallback): string {
  // Control characters go, and so do bidirectional overrides and isolates (U+202E makes `gpj.exe` show as `exe.jpg`).
  let name = lastSegment(wanted.normalize('NFC')).replace(UNSAFE_CHARS, '');
  name = sanitize(name, { replacement: '_' }).replace(/^[.\s]+/, '').trim();
  if (!name || /^_+$/.test(name)) name = fallbackName(fallback);
  let { stem, ext } = splitExt(name);
  if (sniffed && !(ext && extensionMatches(ext, sniffed))) {
    // A missing or wrong extension is fixed from the bytes (`photo.php` holding a PNG → `photo.png`).
    ext = sniffed.ext;
  }
  if (!stem) stem = fallbackName(fallback);
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

/**
 * The name used when nothing usable is left of the wanted one: a string, or a function that makes it (the usual
 * fallback hashes the URL, and almost every image never needs it: made only when used).
 */
export type Fallback = string | (() => string);

function fallbackName(fallback: Fallback): string {
  return typeof fallback === 'string' ? fallback : fallback();
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
  // In a folder (`a/b/x.png`), the file name gets the suffix: `a/b/x-1a2b3c4d.png`.
  const slash = name.lastIndexOf('/');
  const { stem, ext } = splitExt(name.slice(slash + 1));
  const tag = attempt === 0 ? shortHash(url, 8) : `${shortHash(url, 8)}-${attempt}`;
  return name.slice(0, slash + 1) + boundLength(stem, `-${tag}${ext ? `.${ext}` : ''}`);
}

// ---------------------------------------------------------------- folders, and name templates (--name)

// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A folder name made safe as file names are (see safeName, without the extension); '' when nothing usable is left. */
export function safeFolder(wanted: string): string {
  let name = wanted.normalize('NFC').replace(UNSAFE_CHARS, '').replace(/[/\\]/g, '_');
  name = sanitize(name, { replacement: '_' }).replace(/^[.\s]+/, '').trim();
  if (!name || /^_+$/.test(name)) return '';
  return boundLength(name, '').replace(/[.\s]+$/, '');
}

/** Most folders a name may go down (`a/b/c/x.jpg` is 3). */
export const MAX_FOLDERS = 8;

/**
 * A relative path under the output folder for `wanted` (`a/b/x.jpg`): each folder made safe (safeFolder; empty ones
 * dropped, at most MAX_FOLDERS), the file name made safe by safeName. It never leaves the folder: no segment can be
 * `.`, `..`, absolute or hold a separator once made safe.
 */
export function safePath(wanted: string, sniffed: Sniffed | undefined, fallback: Fallback): string {
  const parts = wanted.split('/');
  const file = parts.pop() ?? '';
  const folders = parts.map(safeFolder).filter(Boolean).slice(0, MAX_FOLDERS);
  return [...folders, safeName(file.replace(/\\/g, '_'), sniffed, fallback)].join('/');
}

/** A field of a name template: `{page.title}`, `{index:03}`, `{alt:.40}`, `{alt|untitled}`. */
interface TemplateField {
  field: string;
  /** Zero-padded to this width (`:03`). */
  pad?: number;
  /** At most this many characters (`:.40`). */
  max?: number;
  /** Used when the field is missing or empty (`|untitled`). */
  fallback?: string;
}

/** A parsed name template: its segments (folders, then the file), each a list of literal text and fields. */
export interface NameTemplate {
  source: string;
  segments: Array<Array<string | TemplateField>>;
}

const FIELD = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)(?::(0?\d{1,3})?(?:\.(\d{1,4}))?)?(?:\|([^{}/\\]*))?$/;

/**
 * Parses a name template (`{page.title}/{index:03}-{alt}.{ext}`): literal text and `{field}`s, `/` between folders,
 * `{{` and `}}` for literal braces. A field may be zero-padded (`{index:03}`), cut (`{alt:.40}`) and have a fallback
 * for when it is missing or empty (`{alt|untitled}`). Throws an Error saying what is wrong: an absolute template,
 * `.`/`..` or empty folders, a backslash, an unclosed brace, a bad field, or no field at all.
 */
export function parseNameTemplate(source: string): NameTemplate {
  const fail = (why: string): never => {
    throw new Error(`The name template ${JSON.stringify(source.slice(0, 200))} ${why}`);
  };
  if (typeof source !== 'string' || source.trim() === '') fail('is empty');
  if (source.length > 1000) fail('is over 1,000 characters');
  if (source.includes('\\')) fail('has a backslash: folders are separated by /');
  if (source.startsWith('/') || /^[a-z]:/i.test(source)) fail('is absolute: it names a path inside the output folder');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(source)) fail('has a control character');
  const segments: NameTemplate['segments'] = [[]];
  let text = '';
  let fields = 0;
  const flush = () => {
    if (text) segments[segments.length - 1]!.push(text);
    text = '';
  };
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '{' && source[i + 1] === '{') {
      text += '{';
      i++;
    } else if (c === '}' && source[i + 1] === '}') {
      text += '}';
      i++;
    } else if (c === '}') {
      fail(`has a } with no { before it (write }} for a brace)`);
    } else if (c === '{') {
      const end = source.indexOf('}', i);
      if (end < 0) fail('has a { with no } after it (write {{ for a brace)');
      const m = FIELD.exec(source.slice(i + 1, end));
      if (!m) fail(`has a bad field {${source.slice(i + 1, end)}}: fields are like {alt}, {page.title}, {index:03}, {alt:.40} or {alt|untitled}`);
      flush();
      const f: TemplateField = { field: m![1]! };
      if (m![2] !== undefined) f.pad = Number(m![2]);
      if (m![3] !== undefined) f.max = Number(m![3]);
      if (m![4] !== undefined) f.fallback = m![4];
      segments[segments.length - 1]!.push(f);
      fields++;
      i = end;
    } else if (c === '/') {
      flush();
      segments.push([]);
    } else {
      text += c;
    }
  }
  flush();
  for (const [n, segment] of segments.entries()) {
    const literal = segment.every((p) => typeof p === 'string') ? segment.join('') : undefined;
    if (literal === '') fail(n === segments.length - 1 ? 'ends with /: it needs a file name' : 'has an empty folder (//)');
    if (literal === '.' || literal === '..') fail(`has a ${literal} folder: names stay inside the output folder`);
  }
  if (segments.length - 1 > MAX_FOLDERS) fail(`goes more than ${MAX_FOLDERS} folders down`);
  if (fields === 0) fail('has no {field}: every image would get the same name');
  return { source, segments };
}

/** A value as text in a name: numbers as they are, lists joined with commas, objects as JSON; separators replaced. */
function fieldText(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : Array.isArray(value) ? value.map(fieldText).join(', ') : typeof value === 'object' ? JSON.stringify(value) : String(value);
  // A value never makes a folder: its separators are replaced, so only the template's own `/` do.
  return text.replace(/[/\\]/g, '_');
}

/**
 * Renders a name template for one image: `lookup` gives each field's value (undefined when unknown). Each folder and
 * the file name is made safe (safeFolder, safeName with its extension fixed from `sniffed`); a folder that comes out
 * empty is left out, a file name that does, or that has no stem, takes `fallback`. Never leaves the output folder.
 */
export function renderName(template: NameTemplate, lookup: (field: string) => unknown, sniffed: Sniffed | undefined, fallback: Fallback): string {
  const text = (segment: Array<string | TemplateField>) =>
    segment
      .map((part) => {
        if (typeof part === 'string') return part;
        let value = fieldText(lookup(part.field));
        if (value === '' && part.fallback !== undefined) value = part.fallback;
        if (part.max !== undefined) value = [...value].slice(0, part.max).join('');
        if (part.pad !== undefined) value = value.padStart(part.pad, /^\d+$/.test(value) || value === '' ? '0' : ' ');
        return value;
      })
      .join('');
  const folders = template.segments.slice(0, -1).map((s) => safeFolder(text(s))).filter(Boolean);
  const file = text(template.segments[template.segments.length - 1]!);
  // Nothing but an extension and punctuation (`.png` when `{alt}.{ext}` has no alt): the core's name instead.
  const noStem = /^[\s._-]*(\.[A-Za-z0-9]{1,8})?$/.test(file);
  return [...folders, safeName(noStem ? fallbackName(fallback) : file, sniffed, fallback)].join('/');
}
