import path from 'node:path';
import type { CheerioAPI } from 'cheerio';
import { DownloadError } from '../errors.ts';
import { BODY_KEY, DEPTH_KEY, HEADERS_KEY, type ItemInput, type LabelHandler } from '../core/types.ts';
import { requestHeaders } from '../http/headers.ts';
import { resolveUrl } from '../core/urls.ts';
import { pageTitle } from './html.ts';
import type { AnyPlugin, HandlerContext, Page, PluginLog } from './types.ts';

type Cheerio = typeof import('cheerio');

/** A page request as the engine queues it. */
export interface QueuedPage {
  url: string;
  label: string;
  userData: Record<string, unknown>;
  /** Its own headers (checked, names in lower case). */
  headers?: Record<string, string>;
  /** With --update: fetched again even if an earlier session was. */
  refresh?: boolean;
  /** POST this body (a plugin's `body`, or its `json` as JSON). */
  body?: string;
}

/** What a handler's result turned into: work for the core, and what was wrong with it. */
export interface Collected {
  pages: QueuedPage[];
  images: ItemInput[];
  /** Images whose name is a path: each fails with `bad_name`. */
  badNames: Array<{ url: string; message: string }>;
  /** Entries that were dropped (reported as one `plugin_error` for the page). */
  problems: string[];
}

/** What a run adds to the handlers beyond the plugin and its options. */
export interface HandlerExtras {
  /** Keep where each image was found (page, title, label, position): the run names images with a template. */
  keepFound?: boolean;
  /** --archive: images whose key it has are skipped, and `known()` asks it. */
  archive?: { has(key: string): boolean };
  /** --update: handlers see `ctx.update` true, and pages they mark `refresh` are fetched again. */
  update?: boolean;
  /** Images are fetched with `Referer: <the page they were found on>` unless they have their own. */
  imageReferer?: boolean;
}

/** Entries of a handler's result read and added at a time: memory stays flat whatever a handler returns. */
const CHUNK = 2000;

/**
 * Turns a plugin's handlers into engine label handlers: fetch the page, call the plugin, check what it
 * returned, then queue its pages and add its images, a chunk at a time. A handler that throws, or returns something
 * that is not a result, fails its page with `plugin_error` (the engine records it); bad entries are dropped and
 * reported.
 */
export function engineHandlers(plugin: AnyPlugin, options: Record<string, unknown>, log: PluginLog, extras: HandlerExtras = {}): Record<string, LabelHandler> {
  const labels = new Set(Object.keys(plugin.handlers));
  const handlers: Record<string, LabelHandler> = {};
  const { archive } = extras;
  for (const label of labels) {
    const handler = plugin.handlers[label]!;
    handlers[label] = async (request, run) => {
      const page = await run.fetchPage(request.url, request.userData[HEADERS_KEY] as Record<string, string> | undefined, request.userData[BODY_KEY] as string | undefined);
      const known = (key: string) => typeof key === 'string' && (run.known(key) || (archive?.has(key) ?? false));
      const ctx = await context(request, page, options, log, run.signal, { known, update: extras.update ?? false });
      const result = await handler(ctx);
      const problems: Problems = { count: 0, shown: [] };
      let title: string | null | undefined;
      for await (const found of collectChunks(result, page.finalUrl, labels, problems)) {
        if (run.signal.aborted) break;
        if (found.pages.length > 0) run.enqueue(found.pages);
        // An image the archive has is recorded as saved without being fetched: it counts as skipped, once.
        if (archive) for (const image of found.images) if (image.key !== undefined && archive.has(image.key)) image.archived = true;
        if (extras.imageReferer) for (const image of found.images) if (image.headers?.['referer'] === undefined) image.headers = { ...image.headers, referer: page.finalUrl };
        if (extras.keepFound) {
          title ??= titleOf(ctx);
          for (const image of found.images) image.found = { page: { url: page.finalUrl, title }, label, index: image.found?.index ?? 0 };
        } else {
          for (const image of found.images) delete image.found;
        }
        if (found.images.length > 0) run.addItems(found.images);
        for (const bad of found.badNames) run.failImage(bad.url, 'bad_name', bad.message);
      }
      if (problems.count > 0) run.failPage('plugin_error', summarize(plugin.name, label, problems));
    };
  }
  return handlers;
}

/** Bad entries of one handler result: how many, and the first few (what the failure record shows). */
interface Problems {
  count: number;
  shown: string[];
}

/**
 * Checks a handler's result a chunk at a time (see collect): `pages` and `images` may be arrays, iterables or async
 * iterables; anything else fails the page.
 */
export async function* collectChunks(result: unknown, base: string, labels: ReadonlySet<string>, problems: Problems = { count: 0, shown: [] }): AsyncGenerator<Collected> {
  if (result === undefined || result === null) return;
  if (!isObject(result)) throw new DownloadError('plugin_error', `A handler must return { pages?, images? } or nothing, not ${describe(result)}`);
  const pages = entries(result.pages, 'pages');
  const images = entries(result.images, 'images');
  const note = (found: Collected) => {
    problems.count += found.problems.length;
    for (const p of found.problems) if (problems.shown.length < 3) problems.shown.push(p);
  };
  let offset = 0;
  for await (const chunk of chunks(pages)) {
    const found = collect({ pages: chunk }, base, labels, offset);
    offset += chunk.length;
    note(found);
    yield found;
  }
  offset = 0;
  for await (const chunk of chunks(images)) {
    const found = collect({ images: chunk }, base, labels, offset);
    offset += chunk.length;
    note(found);
    yield found;
  }
}

function entries(value: unknown, what: string): Iterable<unknown> | AsyncIterable<unknown> {
  if (value === undefined || value === null) return [];
  if (typeof value === 'object' && (Symbol.iterator in value || Symbol.asyncIterator in value)) return value as Iterable<unknown> | AsyncIterable<unknown>;
  throw new DownloadError('plugin_error', `\`${what}\` must be an array (or an iterable), not ${describe(value)}`);
}

async function* chunks(source: Iterable<unknown> | AsyncIterable<unknown>): AsyncGenerator<unknown[]> {
  let chunk: unknown[] = [];
  for await (const entry of source) {
    chunk.push(entry);
    if (chunk.length >= CHUNK) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

function summarize(plugin: string, label: string, problems: Problems): string {
  const shown = problems.shown.join('; ');
  const more = problems.count > problems.shown.length ? `; and ${problems.count - problems.shown.length} more` : '';
  return `Plugin ${plugin}, handler ${label}: ${problems.count} bad ${problems.count === 1 ? 'entry' : 'entries'} dropped: ${shown}${more}`;
}

/** The page's <title> when it is HTML (parsing it if its handler did not), else null. */
function titleOf(ctx: HandlerContext): string | null {
  try {
    return pageTitle(ctx.$);
  } catch {
    return null;
  }
}

function isHtmlLike(page: Page): boolean {
  const type = page.contentType.toLowerCase();
  if (/html|xml/.test(type)) return true;
  // Servers that omit or mislabel the type (text/plain, octet-stream): trust a body that starts with markup.
  return !/json|javascript|image\/|css/.test(type) && /^\s*</.test(page.body);
}

async function context(
  request: { url: string; label: string; userData: Record<string, unknown> },
  page: Page,
  options: Record<string, unknown>,
  log: PluginLog,
  signal: AbortSignal,
  run: { known: (key: string) => boolean; update: boolean },
): Promise<HandlerContext> {
  // cheerio is imported only once a page is HTML (JSON-only plugins never load it), and parsed on first use.
  const cheerio: Cheerio | undefined = isHtmlLike(page) ? await import('cheerio') : undefined;
  let $: CheerioAPI | undefined;
  let parsed: { value: unknown } | undefined;
  const { label: _label, __crawlee: _internal, [DEPTH_KEY]: _depth, [HEADERS_KEY]: _headers, [BODY_KEY]: _body, ...userData } = request.userData;
  return {
    request: { url: request.url, label: request.label, userData },
    page,
    get $(): CheerioAPI {
      if (!cheerio) throw new DownloadError('plugin_error', `${page.finalUrl} is not HTML (Content-Type ${page.contentType || 'none'}); use ctx.json() or ctx.page.body`);
      $ ??= cheerio.load(page.body, { baseURI: page.finalUrl });
      return $;
    },
    json<T = unknown>(): T {
      if (!parsed) {
        try {
          parsed = { value: JSON.parse(page.body) as unknown };
        } catch (error) {
          throw new DownloadError('plugin_error', `${page.finalUrl} is not JSON (Content-Type ${page.contentType || 'none'}): ${(error as Error).message}`);
        }
      }
      return parsed.value as T;
    },
    resolve: (url: string) => new URL(url, page.finalUrl).href,
    options,
    log,
    signal,
    known: run.known,
    update: run.update,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);


/**
 * Checks a chunk of a handler's result (collectChunks has checked its shape). Each entry is checked on its own: bad ones are dropped and listed in `problems`, images whose name is a path go to
 * `badNames`, and the rest is returned with absolute URLs.
 */
export function collect(result: { pages?: unknown[]; images?: unknown[] }, base: string, labels: ReadonlySet<string>, offset = 0): Collected {
  const out: Collected = { pages: [], images: [], badNames: [], problems: [] };
  const { pages = [], images = [] } = result;

  const seenPages = new Set<string>();
  pages.forEach((entry: unknown, i) => {
    const where = `pages[${offset + i}]`;
    if (!isObject(entry)) return void out.problems.push(`${where} is ${describe(entry)}, not { url, label }`);
    if (typeof entry.url !== 'string') return void out.problems.push(`${where}.url is ${describe(entry.url)}, not a string`);
    if (typeof entry.label !== 'string' || !labels.has(entry.label)) {
      return void out.problems.push(`${where}.label ${JSON.stringify(entry.label)} has no handler (labels: ${[...labels].join(', ')})`);
    }
    if (entry.userData !== undefined && !isObject(entry.userData)) return void out.problems.push(`${where}.userData is ${describe(entry.userData)}, not an object`);
    if (entry.userData !== undefined && !isJson(entry.userData)) return void out.problems.push(`${where}.userData cannot be stored as JSON`);
    const url = resolveUrl(entry.url, base);
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return void out.problems.push(`${where}.url ${JSON.stringify(entry.url.slice(0, 200))} is not an http(s) URL`);
    const headers = entryHeaders(`${where}.headers`, entry.headers);
    if (typeof headers === 'string') return void out.problems.push(headers);
    const post = postOf(where, entry);
    if (typeof post === 'string') return void out.problems.push(post);
    if (entry.refresh !== undefined && typeof entry.refresh !== 'boolean') return void out.problems.push(`${where}.refresh is ${describe(entry.refresh)}, not a boolean`);
    const key = `${entry.label}:${url.href}${post ? `#${post.body}` : ''}`;
    if (seenPages.has(key)) return;
    seenPages.add(key);
    out.pages.push({
      url: url.href,
      label: entry.label,
      userData: (entry.userData as Record<string, unknown> | undefined) ?? {},
      ...(headers || post?.type ? { headers: { ...(post?.type ? { 'content-type': post.type } : {}), ...headers } } : {}),
      ...(entry.refresh === true ? { refresh: true } : {}),
      ...(post ? { body: post.body } : {}),
    });
  });

  const seenImages = new Set<string>();
  images.forEach((entry: unknown, i) => {
    const where = `images[${offset + i}]`;
    if (!isObject(entry)) return void out.problems.push(`${where} is ${describe(entry)}, not { url, name?, metadata? }`);
    if (typeof entry.url !== 'string') return void out.problems.push(`${where}.url is ${describe(entry.url)}, not a string`);
    if (entry.name !== undefined && entry.name !== null && typeof entry.name !== 'string') return void out.problems.push(`${where}.name is ${describe(entry.name)}, not a string`);
    if (entry.metadata !== undefined && !isJson(entry.metadata)) return void out.problems.push(`${where}.metadata cannot be stored as JSON`);
    if (entry.key !== undefined && entry.key !== null && (typeof entry.key !== 'string' || entry.key === '' || entry.key.length > 1000)) {
      return void out.problems.push(`${where}.key is ${describe(entry.key)}, not a string of 1 to 1,000 characters`);
    }
    const headers = entryHeaders(`${where}.headers`, entry.headers);
    if (typeof headers === 'string') return void out.problems.push(headers);
    const url = resolveUrl(entry.url, base);
    // A URL that does not parse is left to the core, which records it as `invalid_url` for this image.
    const href = url?.href ?? entry.url;
    if (seenImages.has(href)) return;
    seenImages.add(href);
    const name = typeof entry.name === 'string' ? entry.name.trim() : '';
    const why = name ? badName(name) : undefined;
    if (why) {
      out.badNames.push({ url: href, message: `The name ${JSON.stringify(name.slice(0, 200))} ${why}` });
      return;
    }
    out.images.push({
      url: href,
      ...(name ? { name } : {}),
      ...(entry.metadata !== undefined ? { metadata: entry.metadata } : {}),
      ...(headers ? { headers } : {}),
      ...(typeof entry.key === 'string' ? { key: entry.key } : {}),
      // Its position in the handler's result (kept if the run names images with a template).
      found: { page: { url: base, title: null }, label: '', index: offset + i + 1 },
    });
  });
  return out;
}

/**
 * A page's request body: `method: 'POST'` with `body` (a string) or `json` (any JSON, sent with Content-Type
 * application/json unless the page's headers say otherwise); undefined for a GET; a string saying what is wrong.
 */
export function postOf(where: string, entry: Record<string, unknown>): { body: string; type?: string } | undefined | string {
  const { method, body, json } = entry;
  if (method !== undefined && method !== 'GET' && method !== 'POST') return `${where}.method is ${describe(method)}, not "GET" or "POST"`;
  if (body !== undefined && json !== undefined) return `${where} has both body and json`;
  if (body !== undefined && typeof body !== 'string') return `${where}.body is ${describe(body)}, not a string (json: for a value)`;
  if (json !== undefined && !isJson(json)) return `${where}.json cannot be sent as JSON`;
  const has = body !== undefined || json !== undefined;
  if (method === 'GET' && has) return `${where} is a GET with a body`;
  if (method === 'POST' || has) {
    const given = isObject(entry.headers) && Object.keys(entry.headers).some((h) => h.toLowerCase() === 'content-type');
    return json !== undefined ? { body: JSON.stringify(json), ...(given ? {} : { type: 'application/json' }) } : { body: typeof body === 'string' ? body : '' };
  }
  return undefined;
}

/** An entry's `headers` checked (names lower-cased); a string saying what is wrong with them otherwise. */
function entryHeaders(where: string, value: unknown): Record<string, string> | undefined | string {
  if (value === undefined) return undefined;
  if (!isObject(value)) return `${where} is ${describe(value)}, not an object`;
  try {
    const headers = requestHeaders(where, value);
    return Object.keys(headers).length > 0 ? headers : undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Why a plugin's name cannot be used, or undefined: `/` separates folders (`album/x.jpg`), but a name may not be
 * absolute (`/x`, `C:\x`, `\\server\x`), hold a backslash, or have `.` or `..` folders (`../x`): it would not say where
 * in the output folder the file goes.
 */
function badName(name: string): string | undefined {
  if (path.posix.isAbsolute(name) || path.win32.isAbsolute(name) || /^[a-z]:/i.test(name)) return 'is an absolute path; a plugin names a file inside the output folder';
  if (name.includes('\\')) return 'has a backslash; folders are separated by /';
  if (name.includes('/') && name.split('/').some((s) => s.trim() === '.' || s.trim() === '..')) return 'has a . or .. folder; a plugin names a file inside the output folder';
  return undefined;
}

function isJson(value: unknown): boolean {
  try {
    return JSON.stringify(value) !== undefined;
  } catch {
    return false;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 60))}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value).slice(0, 60)}`;
}
