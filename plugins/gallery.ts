// Every image on one or more web pages, following "next page" links: `imgdl run gallery https://example.org/photos`.
// Each image's record carries the page it was found on, its alt text and the page's title.
import { definePlugin, UsageError, type ImageRequest } from '../src/plugin/index.ts';
import { largestCandidate, looksLikeImage, parseSrcset } from '../src/plugin/html.ts';

export default definePlugin({
  name: 'gallery',
  description: 'Every image on web pages (img, srcset, picture, og:image, links to image files), following pagination',
  // A start page and up to 9 next pages after it (--max-depth changes it; --max-pages bounds the whole run).
  limits: { maxDepth: 9 },
  options: {
    urls: { type: 'string[]', positional: true, required: true, placeholder: 'URL', help: 'the page(s) to start from' },
    next: { type: 'string', placeholder: 'CSS', help: 'selector of the next-page link (default: link[rel=next], a[rel=next])' },
    anyOrigin: { type: 'boolean', help: 'follow next-page links to other origins too (default: same origin only)' },
  },

  async start({ urls, next }) {
    if (next) {
      const { load } = await import('cheerio');
      try {
        load('<p></p>')(next);
      } catch (error) {
        throw new UsageError(`Expected --next to be a CSS selector, got ${JSON.stringify(next)}: ${(error as Error).message}`);
      }
    }
    return urls.map((raw) => {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new UsageError(`Expected a page URL like https://example.org/photos, got ${JSON.stringify(raw)}`);
      }
      return { url: url.href, label: 'page', userData: { origin: url.origin } };
    });
  },

  handlers: {
    page({ $, page, request, options, resolve, log }) {
      const title = $('title').first().text().trim() || null;
      // A <base href> changes what relative URLs on the page mean.
      const baseHref = $('base[href]').first().attr('href');
      const base = baseHref ? resolve(baseHref) : page.finalUrl;
      const images: ImageRequest[] = [];
      const seen = new Set<string>();
      const add = (raw: string | undefined, alt: string | null | undefined) => {
        const href = absolute(raw, base);
        if (!href || seen.has(href)) return;
        seen.add(href);
        images.push({ url: href, metadata: { page: page.finalUrl, alt: alt ?? null, title } });
      };
      /** srcset's largest candidate, else src. */
      const best = (srcset: string | undefined, src: string | undefined) => (srcset && largestCandidate(parseSrcset(srcset))?.url) || src;

      $('meta[property="og:image"], meta[property="og:image:url"]').each((_, el) => {
        add($(el).attr('content'), $('meta[property="og:image:alt"]').first().attr('content'));
      });
      // A <picture> is one picture per `media` (art direction: a different crop or image for each), plus its <img>.
      // Sources without `media` are other formats or sizes of the <img>'s picture (type="image/webp"…): the
      // largest candidate of each group is taken, so each picture is saved once, at its best.
      $('picture').each((_, el) => {
        const img = $(el).find('img').first();
        const groups = new Map<string, string[]>([['', [img.attr('srcset') ?? '']]]);
        for (const source of $(el).find('source[srcset]').toArray()) {
          const media = ($(source).attr('media') ?? '').trim();
          groups.set(media, [...(groups.get(media) ?? []), $(source).attr('srcset')!]);
        }
        for (const [media, srcsets] of groups) {
          const largest = largestCandidate(srcsets.flatMap((s) => parseSrcset(s)))?.url;
          add(media ? largest : (largest ?? img.attr('src')), img.attr('alt'));
        }
      });
      // One image per <img>: the largest srcset candidate if there is one (src is the small fallback), else src.
      $('img').each((_, el) => {
        if ($(el).parents('picture').length > 0) return;
        add(best($(el).attr('srcset'), $(el).attr('src')), $(el).attr('alt'));
      });
      $('a[href]').each((_, el) => {
        const href = absolute($(el).attr('href'), base);
        if (!href || !looksLikeImage(href)) return;
        const a = $(el);
        add(href, a.attr('title') ?? a.find('img[alt]').first().attr('alt') ?? (a.text().trim() || null));
      });

      // How far to follow next pages is the core's --max-depth (this plugin's default: 9 after the start page).
      const origin = String(request.userData['origin'] ?? new URL(page.url).origin);
      const pages = [];
      const link = options.next ? $(options.next).first() : $('link[rel~="next"][href], a[rel~="next"][href]').first();
      const next = absolute(link.attr('href') ?? link.find('a[href]').first().attr('href'), base);
      if (next && (options.anyOrigin || new URL(next).origin === origin)) {
        pages.push({ url: next, label: 'page' as const, userData: { origin } });
      } else if (next) {
        log.debug(`not following ${next}: another origin (--any-origin to allow)`);
      }
      return { images, pages };
    },
  },
});

/** An http(s) URL made absolute; data:, javascript: and unparsable values give undefined. */
function absolute(raw: string | undefined, base: string): string | undefined {
  if (!raw?.trim()) return undefined;
  try {
    const url = new URL(raw.trim(), base);
    url.hash = '';
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}
