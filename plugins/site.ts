// A site crawler for sites that need no plugin of their own: `imgdl run site https://example.org/`.
// From the start pages it follows links (same origin by default, within --include/--exclude, --max-depth, --max-pages)
// and saves every image the pages show; each record has the page, its title and the image's alt text.
import picomatch from 'picomatch';
import { definePlugin, UsageError } from '../src/plugin/index.ts';
import { absoluteUrl, baseOf, imagesOnPage, looksLikeImage, pageTitle } from '../src/plugin/html.ts';

/** Links to files that are not web pages: never fetched as pages. */
const NOT_PAGES = /\.(pdf|zip|gz|tgz|bz2|xz|7z|rar|tar|exe|dmg|msi|apk|iso|mp3|mp4|m4a|m4v|mov|avi|mkv|webm|ogg|ogv|wav|flac|css|js|mjs|json|xml|rss|atom|txt|csv|woff2?|ttf|otf|eot|docx?|xlsx?|pptx?|odt|ods|epub)$/i;

/** A URL glob as the site plugin matches it: against the whole URL when it has `://`, else against the path and query. */
interface Glob {
  pattern: string;
  test: (s: string) => boolean;
  whole: boolean;
}

function compile(patterns: readonly string[], flag: string): Glob[] {
  return patterns.map((pattern) => {
    try {
      // dot: `/.well-known/**` matches like any other path; strictBrackets: an unclosed [ { ( is an error, not a literal.
      return { pattern, test: picomatch(pattern, { dot: true, strictBrackets: true }), whole: pattern.includes('://') };
    } catch (error) {
      throw new UsageError(`Expected --${flag} to be a glob like '/blog/**' or 'https://example.org/photos/*', got ${JSON.stringify(pattern)}: ${(error as Error).message}`);
    }
  });
}

const compiled = new Map<string, Glob[]>();
function globs(patterns: readonly string[], flag: string): Glob[] {
  const key = `${flag}\0${patterns.join('\0')}`;
  let found = compiled.get(key);
  if (!found) compiled.set(key, (found = compile(patterns, flag)));
  return found;
}

function matches(list: Glob[], url: URL): boolean {
  const whole = url.href;
  const local = url.pathname + url.search;
  return list.some((g) => g.test(g.whole ? whole : local));
}

export default definePlugin({
  name: 'site',
  description: 'Crawls a site from its start pages and saves every image they show (img, srcset, picture, background-image, og:image, image links)',
  // A crawl can be endless (calendars, faceted search): 1,000 pages unless --max-pages says otherwise.
  limits: { maxPages: 1000 },
  options: {
    urls: { type: 'string[]', positional: true, required: true, placeholder: 'URL', help: 'the page(s) to start from' },
    include: { type: 'string[]', placeholder: 'GLOB', help: "follow only links matching one of these globs ('/blog/**'; with :// the whole URL: 'https://example.org/p/*')" },
    exclude: { type: 'string[]', placeholder: 'GLOB', help: "never follow links matching one of these globs ('/tag/**', '**/*?sort=*')" },
    sameOrigin: { type: 'boolean', help: "follow links on the start pages' origins only (the default)" },
    anyOrigin: { type: 'boolean', help: 'follow links to other origins too (--include keeps that in bounds)' },
  },

  start({ urls, include, exclude, sameOrigin, anyOrigin }) {
    if (sameOrigin && anyOrigin) throw new UsageError('Give --same-origin or --any-origin, not both');
    // Checked here, before any network work: a bad glob is a usage error.
    globs(include, 'include');
    globs(exclude, 'exclude');
    return urls.map((raw) => {
      const url = URL.canParse(raw) ? new URL(raw) : undefined;
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new UsageError(`Expected a page URL like https://example.org/, got ${JSON.stringify(raw)}`);
      url.hash = '';
      return { url: url.href, label: 'page', userData: { start: true } };
    });
  },

  handlers: {
    page(ctx) {
      const { page, request, options, log } = ctx;
      if (!/html|xml/i.test(page.contentType) && !/^\s*</.test(page.body)) {
        log.debug(`${page.finalUrl} is not HTML (${page.contentType || 'no Content-Type'}): no images or links read`);
        return;
      }
      const $ = ctx.$; // parsed here, once the page is known to be HTML
      const title = pageTitle($);
      // Keyed by URL: with --archive, an image any earlier crawl saved (into any folder) is not fetched again.
      const images = imagesOnPage($, page.finalUrl).map(({ url, alt }) => ({ url, key: `site:${url}`, metadata: { page: page.finalUrl, title, alt } }));

      // The origins links may lead to: the start pages' (as given, and where they redirected to).
      const origins = new Set(options.urls.flatMap((u) => (URL.canParse(u) ? [new URL(u).origin] : [])));
      const from = request.userData['origin'];
      if (typeof from === 'string') origins.add(from);
      if (request.userData['start']) origins.add(new URL(page.finalUrl).origin);
      const origin = typeof from === 'string' ? from : new URL(page.finalUrl).origin;
      const include = globs(options.include, 'include');
      const exclude = globs(options.exclude, 'exclude');

      const base = baseOf($, page.finalUrl);
      const seen = new Set<string>();
      const pages: Array<{ url: string; label: 'page'; userData: { origin: string } }> = [];
      $('a[href], area[href], link[rel~="next"][href], link[rel~="prev"][href]').each((_, el) => {
        const node = $(el);
        if (node.is('[download]')) return;
        const href = absoluteUrl(node.attr('href'), base);
        if (!href || seen.has(href)) return;
        seen.add(href);
        const url = new URL(href);
        if (looksLikeImage(url) || NOT_PAGES.test(url.pathname)) return;
        if (!options.anyOrigin && !origins.has(url.origin)) return void log.debug(`not following ${href}: another origin (--any-origin to allow)`);
        if (include.length > 0 && !matches(include, url)) return;
        if (matches(exclude, url)) return;
        pages.push({ url: href, label: 'page', userData: { origin } });
      });
      return { images, pages };
    },
  },
});
