// A site plugin, started by `imgdl new NAME` from plugins/_template.ts. Run it: `imgdl run NAME --start-url URL`.
// A plugin never downloads images itself: each handler gets a fetched page and returns what it found there
// (more pages to visit, images with a name and metadata); the core fetches, retries, checks, names and stores.
// Walk-through: docs/plugins.md.
import { definePlugin } from '../src/plugin/index.ts';

export default definePlugin({
  // The name is the file name: plugins/NAME.ts.
  name: 'template',
  description: 'Photos of a listing page and its next pages, named after their titles',

  // Command-line options (`startUrl` is --start-url); their parsed values are typed: `options.startUrl` is a string.
  options: {
    startUrl: { type: 'string', default: 'https://example.org/photos', placeholder: 'URL', help: 'the listing page to start from' },
  },

  // The pages to start with, each with the label of the handler that reads it. No network here.
  start: ({ startUrl }) => [{ url: startUrl, label: 'list' }],

  handlers: {
    // A listing page: one link per photo page, and maybe a next page. Relative URLs are fine.
    list: ({ $ }) => ({
      pages: [
        ...$('a.photo[href]').toArray().map((a) => ({ url: $(a).attr('href')!, label: 'photo' as const })),
        ...$('a[rel~="next"][href]').toArray().map((a) => ({ url: $(a).attr('href')!, label: 'list' as const })),
      ],
    }),

    // A photo page: the image, its file name (the core fixes the extension from the bytes) and its metadata.
    photo: ({ $, page }) => {
      const title = $('h1').first().text().trim();
      const src = $('img.main').attr('src');
      if (!src) return; // nothing here (returning nothing is fine)
      return {
        images: [{ url: src, name: title ? `${title.replace(/[/\\]/g, '-')}.jpg` : undefined, metadata: { title, page: page.finalUrl } }],
      };
    },

    // Reading JSON instead? `({ json }) => { const data = json<{ items: Array<{ src: string }> }>(); ... }`
  },
});
