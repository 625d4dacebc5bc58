// Every image on one or more web pages, following "next page" links: `imgdl run gallery https://example.org/photos`.
// Each image's record carries the page it was found on, its alt text and the page's title.
import { definePlugin, UsageError } from '../src/plugin/index.ts';
import { absoluteUrl as absolute, baseOf, imagesOnPage, pageTitle } from '../src/plugin/html.ts';

export default definePlugin({
  name: 'gallery',
  description: 'Every image on web pages (img, srcset, picture, background-image, og:image, links to image files), following pagination',
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
    page({ $, page, request, options, log }) {
      const title = pageTitle($);
      // A <base href> changes what relative URLs on the page mean.
      const base = baseOf($, page.finalUrl);
      // img (largest srcset candidate), every picture of a <picture>, background-image, og:image, links to image files.
      const images = imagesOnPage($, page.finalUrl).map(({ url, alt }) => ({ url, metadata: { page: page.finalUrl, alt, title } }));

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
