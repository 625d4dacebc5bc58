// Helpers for plugins that read images off HTML pages.

export interface SrcsetCandidate {
  url: string;
  /** The `w` descriptor (width in pixels), if given. */
  width?: number;
  /** The `x` descriptor (pixel density); 1 when no descriptor is given. */
  density?: number;
}

/**
 * Parses a `srcset` attribute as the HTML standard does: a URL, then descriptors up to the next comma
 * (so commas inside URLs, as in `image.jpg?crop=1,2`, are kept).
 */
export function parseSrcset(srcset: string): SrcsetCandidate[] {
  const out: SrcsetCandidate[] = [];
  let i = 0;
  const n = srcset.length;
  while (i < n) {
    while (i < n && /[\s,]/.test(srcset[i]!)) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && !/\s/.test(srcset[i]!)) i++;
    let url = srcset.slice(start, i);
    let descriptors = '';
    if (url.endsWith(',')) {
      url = url.replace(/,+$/, '');
    } else {
      const from = i;
      let depth = 0;
      while (i < n && (srcset[i] !== ',' || depth > 0)) {
        if (srcset[i] === '(') depth++;
        else if (srcset[i] === ')') depth = Math.max(0, depth - 1);
        i++;
      }
      descriptors = srcset.slice(from, i).trim();
    }
    if (!url) continue;
    const candidate: SrcsetCandidate = { url };
    for (const d of descriptors.split(/\s+/).filter(Boolean)) {
      const m = /^(\d+(?:\.\d+)?)([wx])$/i.exec(d);
      if (m?.[2]?.toLowerCase() === 'w') candidate.width = Number(m[1]);
      else if (m?.[2]?.toLowerCase() === 'x') candidate.density = Number(m[1]);
    }
    if (candidate.width === undefined && candidate.density === undefined) candidate.density = 1;
    out.push(candidate);
  }
  return out;
}

/** The largest candidate of a `srcset`: by width when any has a `w` descriptor, else by density. First wins ties. */
export function largestCandidate(candidates: SrcsetCandidate[]): SrcsetCandidate | undefined {
  const byWidth = candidates.filter((c) => c.width !== undefined);
  const pool = byWidth.length > 0 ? byWidth : candidates;
  const size = (c: SrcsetCandidate) => (byWidth.length > 0 ? c.width! : (c.density ?? 1));
  let best: SrcsetCandidate | undefined;
  for (const c of pool) if (!best || size(c) > size(best)) best = c;
  return best;
}

/** Extensions of image files, for links that point at images (`<a href="big.jpg">`). */
export const IMAGE_EXTENSIONS: readonly string[] = ['jpg', 'jpeg', 'jpe', 'jfif', 'png', 'apng', 'gif', 'webp', 'avif', 'bmp', 'tif', 'tiff', 'svg', 'ico', 'heic', 'heif', 'jxl'];

const IMAGE_PATH = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');

/** True when a URL's path ends in an image extension. */
export function looksLikeImage(url: string | URL): boolean {
  try {
    return IMAGE_PATH.test(new URL(url).pathname);
  } catch {
    return false;
  }
}

/** An image a page shows, as `imagesOnPage` finds it. */
export interface FoundImage {
  /** Absolute http(s) URL, without its #fragment. */
  url: string;
  /** Its alt text (or a link's title or text), if any. */
  alt: string | null;
  /** Where it was found: `img` (src or the largest srcset candidate), `picture`, `background` (CSS), `og` (og:image) or `link` (an <a> to an image file). */
  source: 'img' | 'picture' | 'background' | 'og' | 'link';
}

type Cheerio$ = import('cheerio').CheerioAPI;

/** An http(s) URL made absolute against `base`, without its #fragment; data:, javascript: and unparsable values give undefined. */
export function absoluteUrl(raw: string | undefined | null, base: string): string | undefined {
  if (!raw?.trim()) return undefined;
  try {
    const url = new URL(raw.trim(), base);
    url.hash = '';
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/** The base URL of a page's relative links: its `<base href>` if it has one, else the page's URL. */
export function baseOf($: Cheerio$, pageUrl: string): string {
  return absoluteUrl($('base[href]').first().attr('href'), pageUrl) ?? pageUrl;
}

/** A page's `<title>` (trimmed, whitespace collapsed), or null. */
export function pageTitle($: Cheerio$): string | null {
  return $('title').first().text().replace(/\s+/g, ' ').trim() || null;
}

/**
 * The URLs of a CSS declaration list's `url(...)` values in `background` and `background-image` (as in a `style`
 * attribute), including each candidate of `image-set()`. Other properties are ignored.
 */
export function backgroundUrls(style: string): string[] {
  const out: string[] = [];
  // Declarations split on `;` outside quotes and parentheses (a data: URL may hold one).
  let depth = 0;
  let quote = '';
  let start = 0;
  const decls: string[] = [];
  for (let i = 0; i <= style.length; i++) {
    const c = style[i];
    if (c === undefined || (c === ';' && depth === 0 && !quote)) {
      decls.push(style.slice(start, i));
      start = i + 1;
    } else if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
  }
  for (const decl of decls) {
    const colon = decl.indexOf(':');
    if (colon < 0) continue;
    const property = decl.slice(0, colon).trim().toLowerCase();
    if (property !== 'background' && property !== 'background-image') continue;
    const value = decl.slice(colon + 1);
    for (const m of value.matchAll(/url\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^)\s]*))\s*\)/gi)) {
      const url = (m[1] ?? m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1').trim();
      if (url) out.push(url);
    }
    // image-set("a.jpg" 1x, "b.jpg" 2x) without url(): quoted strings directly.
    for (const set of value.matchAll(/image-set\(([^]*?)\)\s*(?:,|$)/gi)) {
      for (const m of set[1]!.matchAll(/(?:^|,)\s*(["'])((?:(?!\1)[^\\]|\\.)*)\1/g)) if (m[2]) out.push(m[2]);
    }
  }
  return [...new Set(out)];
}

/**
 * Every image a parsed HTML page shows, each once (first occurrence wins), in page order by kind:
 * - `og:image` (with `og:image:alt`);
 * - each `<picture>`: one picture per `media` query (art direction: a different crop or image for each), at its largest
 *   candidate, plus its `<img>` (its largest `srcset` candidate, else `src`); sources without `media` are other formats
 *   or sizes of the `<img>`'s picture, so the largest of them all stands for it;
 * - every other `<img>`: the largest `srcset` candidate (`w` descriptors, else `x`), else `src`; lazy-loading
 *   attributes (`data-src`, `data-srcset`, `data-lazy-src`) when the real ones are missing or a placeholder;
 * - CSS `background`/`background-image` in `style` attributes (each `url()`; `image-set()` candidates);
 * - `<a href>` links to image files (by extension), with the link's title, its image's alt or its text.
 */
export function imagesOnPage($: Cheerio$, pageUrl: string): FoundImage[] {
  const base = baseOf($, pageUrl);
  const images: FoundImage[] = [];
  const seen = new Set<string>();
  const add = (raw: string | undefined, alt: string | null | undefined, source: FoundImage['source']) => {
    const url = absoluteUrl(raw, base);
    if (!url || seen.has(url)) return;
    seen.add(url);
    images.push({ url, alt: alt?.trim() || null, source });
  };
  const largest = (...srcsets: Array<string | undefined>) => largestCandidate(srcsets.flatMap((s) => (s ? parseSrcset(s) : [])))?.url;
  const placeholder = (src: string | undefined) => !src || /^data:/i.test(src.trim());
  /** An <img>'s own picture: its largest srcset candidate, else src; lazy-loading attributes when those are empty or placeholders. */
  const imgUrl = (el: Parameters<Cheerio$>[0]) => {
    const img = $(el);
    const srcset = img.attr('srcset') || img.attr('data-srcset');
    const src = placeholder(img.attr('src')) ? (img.attr('data-src') ?? img.attr('data-lazy-src') ?? img.attr('data-original')) : img.attr('src');
    return largest(srcset) ?? src;
  };

  $('meta[property="og:image"], meta[property="og:image:url"], meta[property="og:image:secure_url"]').each((_, el) => {
    add($(el).attr('content'), $('meta[property="og:image:alt"]').first().attr('content'), 'og');
  });
  $('picture').each((_, el) => {
    const img = $(el).find('img').first();
    const alt = img.attr('alt');
    const byMedia = new Map<string, string[]>();
    const sameAsImg: string[] = [];
    for (const source of $(el).find('source').toArray()) {
      const srcset = $(source).attr('srcset') ?? $(source).attr('data-srcset');
      if (!srcset) continue;
      const media = ($(source).attr('media') ?? '').trim();
      if (media) byMedia.set(media, [...(byMedia.get(media) ?? []), srcset]);
      else sameAsImg.push(srcset);
    }
    for (const srcsets of byMedia.values()) add(largest(...srcsets), alt, 'picture');
    const own = img.length > 0 ? imgUrl(img[0]!) : undefined;
    add((sameAsImg.length > 0 ? largest(...sameAsImg, img.attr('srcset') ?? img.attr('data-srcset')) : undefined) ?? own, alt, 'picture');
  });
  $('img').each((_, el) => {
    if ($(el).parents('picture').length > 0) return;
    add(imgUrl(el), $(el).attr('alt'), 'img');
  });
  $('[style]').each((_, el) => {
    const node = $(el);
    for (const url of backgroundUrls(node.attr('style') ?? '')) add(url, node.attr('aria-label') ?? node.attr('title') ?? null, 'background');
  });
  $('a[href]').each((_, el) => {
    const a = $(el);
    const href = absoluteUrl(a.attr('href'), base);
    if (!href || !looksLikeImage(href)) return;
    add(href, a.attr('title') ?? a.find('img[alt]').first().attr('alt') ?? (a.text().trim() || null), 'link');
  });
  return images;
}
