// A complete plugin for a paginated JSON API, as docs/plugins.md ("A complete example") walks through it:
// a cursor from page to page, images that need a Referer, an archive key per photo, a name template, --update.
//
//   imgdl run examples/plugins/photo-api.ts --album birds --base-url https://api.example.org --archive seen.sqlite
//
// The API it reads (any service shaped like it works; test/example-api.test.ts serves one on 127.0.0.1):
//   GET {base}/v1/albums/{album}/photos[?cursor=C]
//   → { "album": { "title": "Birds" },
//       "photos": [{ "id": 81, "title": "Red kite", "taken": "2026-05-01T10:00:00Z", "url": "https://cdn…/81.jpg" }],
//       "next": "C2" | null }                                   (newest first)
// Its CDN answers 403 unless the Referer is the album's web page.
import { definePlugin, UsageError } from '../../src/plugin/index.ts'; // outside this repository: from 'imgdl/plugin'

interface Photo {
  id: number;
  title: string;
  taken: string;
  url: string;
}
interface PhotosPage {
  album: { title: string };
  photos: Photo[];
  next: string | null;
}

export default definePlugin({
  name: 'photo-api',
  description: 'Every photo of an album of a JSON photo API, newest first, with a Referer, archive keys and names by album and date',
  options: {
    album: { type: 'string', required: true, placeholder: 'ID', help: 'the album to fetch (its id in the API)' },
    baseUrl: { type: 'string', default: 'https://api.example.org', placeholder: 'URL', help: 'the API' },
    site: { type: 'string', default: 'https://www.example.org', placeholder: 'URL', help: 'the web site (the Referer its CDN wants)' },
  },

  // Every image goes to <out>/<album title>/<date>-<id>-<title>.<ext>; --name on the command line overrides it.
  nameTemplate: '{metadata.album}/{metadata.date}-{key:.40}-{metadata.title:.60|untitled}.{ext}',

  http: {
    headers: { Accept: 'application/json' },
    // A public API: 8 requests at once and at most 10 a second per host, unless the user says otherwise.
    perHost: 8,
    rate: 10,
  },

  start({ album, baseUrl }) {
    if (!/^[\w-]+$/.test(album)) throw new UsageError(`Expected --album to be an album id like birds, got ${JSON.stringify(album)}`);
    return [{ url: `${baseUrl.replace(/\/$/, '')}/v1/albums/${encodeURIComponent(album)}/photos`, label: 'photos' }];
  },

  handlers: {
    photos({ json, request, options, known, log }) {
      const page = json<PhotosPage>();
      const albumPage = `${options.site.replace(/\/$/, '')}/albums/${encodeURIComponent(options.album)}`;
      const images = page.photos.map((photo) => ({
        url: photo.url,
        // The site's own id: --archive skips photos any earlier run saved, into any folder.
        key: `photo-api:${photo.id}`,
        // The CDN checks where the request comes from.
        headers: { Referer: albumPage },
        metadata: { id: photo.id, title: photo.title, taken: photo.taken, date: photo.taken.slice(0, 10), album: page.album.title },
      }));
      // Newest first: once a page holds a photo we have, the older pages hold nothing new (see --update).
      const reachedKnown = images.some((image) => known(image.key));
      if (reachedKnown) log.debug(`${request.url}: reached photos already saved; not reading older pages`);
      const next = new URL(request.url);
      if (page.next) next.searchParams.set('cursor', page.next);
      return {
        images,
        // `refresh`: with --update, an older page fetched by an earlier run is read again (only while all was new).
        pages: page.next && !reachedKnown ? [{ url: next.href, label: 'photos' as const, refresh: true }] : [],
      };
    },
  },
});
