/**
 * The plugin workloads' sites, served by the origin (`origin.ts`) beside its `/img/<i>.png`:
 *
 * - flags (W8, W12): `/data/flags/<cc>/metadata.json` and `/data/flags/<cc>/<cc>.gif` for 194 ISO codes (the 193 UN
 *   members and VA, as in the "Fluent Python" example), a synthetic three-stripe GIF per country (about 9 KB) and a
 *   metadata record shaped like flupy.org's (`country`, `capital`, `population`, ...). Names from ICU, so some
 *   have spaces, `&`, accents and parentheses.
 * - gallery (W12): `/gallery/<i>.html` for i < GALLERY_PAGES, each with GALLERY_IMAGES `<img>` tags pointing at
 *   `/gallery/img/<i>-<j>.png` and a `<link rel="next">` to page i + 1 (none on the last page).
 *
 * Also: the seeded per-path delay of a slow origin, and each request's place in the dependency graph (which request
 * a client must have answered before it can know this one), for the concurrency bound (`bound.ts`).
 */
import { gif } from '../../test/helpers/images.ts';
import { makePng } from './png.ts';

/** 193 UN members and the Holy See: the 194 codes of the original example's country list. */
export const COUNTRY_CODES: readonly string[] = (
  'AD AE AF AG AL AM AO AR AT AU AZ BA BB BD BE BF BG BH BI BJ BN BO BR BS BT BW BY BZ CA CD CF CG CH CI CL CM CN CO ' +
  'CR CU CV CY CZ DE DJ DK DM DO DZ EC EE EG ER ES ET FI FJ FM FR GA GB GD GE GH GM GN GQ GR GT GW GY HN HR HT HU ID ' +
  'IE IL IN IQ IR IS IT JM JO JP KE KG KH KI KM KN KP KR KW KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MG MH MK ' +
  'ML MM MN MR MT MU MV MW MX MY MZ NA NE NG NI NL NO NP NR NZ OM PA PE PG PH PK PL PT PW PY QA RO RS RU RW SA SB SC ' +
  'SD SE SG SI SK SL SM SN SO SR SS ST SV SY SZ TD TG TH TJ TL TM TN TO TR TT TV TZ UA UG US UY UZ VA VC VE VN VU WS ' +
  'YE ZA ZM ZW'
).split(' ');

export const GALLERY_PAGES = 20;
export const GALLERY_IMAGES = 20;
export const GALLERY_IMAGE_BYTES = 12 * 1024;

const names = new Intl.DisplayNames(['en'], { type: 'region' });
const known = new Set(COUNTRY_CODES.map((cc) => cc.toLowerCase()));

/** A 32-bit hash of a string and a seed (FNV-1a, then a final mix). */
function hash(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The slow origin's delay for a path: uniform in [minMs, maxMs], a function of the seed and the path alone, so that
 * every tool (and every run with the same seed) meets the same delay for the same request, whatever its order.
 */
export function delayFor(path: string, seed: number, minMs: number, maxMs: number): number {
  return minMs + (hash(path, seed) / 0x1_0000_0000) * (maxMs - minMs);
}

/** A flag: a valid GIF (the tests' encoder, whose bytes follow `seed`), about as big as a real small flag. */
export function flagGif(seed: string, width = 160, height = 100): Buffer {
  return gif(width, height, { seed });
}

export function countryName(cc: string): string {
  return names.of(cc.toUpperCase()) ?? cc.toUpperCase();
}

/** flupy.org's metadata.json shape, with synthetic figures. */
export function flagMetadata(cc: string): Record<string, unknown> {
  const h = hash(cc.toUpperCase(), 7);
  return {
    area: 1_000 + (h % 9_000_000),
    capital: `${countryName(cc)} City`,
    cc: cc.toUpperCase(),
    continent: ['Africa', 'Asia', 'Europe', 'North America', 'Oceania', 'South America'][h % 6],
    country: countryName(cc),
    population: 10_000 + (h % 1_400_000_000),
    tld: `.${cc.toLowerCase()}`,
  };
}

export function galleryPagePath(page: number): string {
  return `/gallery/${page}.html`;
}

function galleryPage(page: number): string {
  const next = page + 1 < GALLERY_PAGES ? `<link rel="next" href="${galleryPagePath(page + 1)}">` : '';
  const images = Array.from(
    { length: GALLERY_IMAGES },
    (_, j) => `<figure><img src="/gallery/img/${page}-${j}.png" alt="Photo ${page}-${j}"></figure>`,
  ).join('\n');
  return `<!doctype html><html><head><title>Gallery page ${page + 1}</title>${next}</head><body>\n${images}\n</body></html>\n`;
}

export interface SiteAnswer {
  kind: 'page' | 'image';
  contentType: string;
  body: Buffer;
}

const FLAG_PATH = /^\/data\/flags\/([a-z0-9]{2,3})\/(metadata\.json|([a-z0-9]{2,3})\.gif)$/;
const GALLERY_PAGE_PATH = /^\/gallery\/(\d+)\.html$/;
const GALLERY_IMAGE_PATH = /^\/gallery\/img\/(\d+)-(\d+)\.png$/;

/** The site's answers, built on first use and kept. */
export class Sites {
  private readonly cache = new Map<string, SiteAnswer>();
  private galleryImage: Buffer | undefined;

  /** The answer for `path`, or null when it is not one of the sites' (the origin then answers 404). */
  answer(path: string): SiteAnswer | null {
    const cached = this.cache.get(path);
    if (cached) return cached;
    const made = this.make(path);
    if (made) this.cache.set(path, made);
    return made;
  }

  private make(path: string): SiteAnswer | null {
    const flag = FLAG_PATH.exec(path);
    if (flag) {
      const cc = flag[1]!;
      if (!known.has(cc)) return null;
      if (flag[2] === 'metadata.json') {
        return { kind: 'page', contentType: 'application/json', body: Buffer.from(JSON.stringify(flagMetadata(cc))) };
      }
      if (flag[3] !== cc) return null;
      return { kind: 'image', contentType: 'image/gif', body: flagGif(cc) };
    }
    const page = GALLERY_PAGE_PATH.exec(path);
    if (page) {
      const i = Number(page[1]);
      if (i >= GALLERY_PAGES) return null;
      return { kind: 'page', contentType: 'text/html; charset=utf-8', body: Buffer.from(galleryPage(i)) };
    }
    const image = GALLERY_IMAGE_PATH.exec(path);
    if (image && Number(image[1]) < GALLERY_PAGES && Number(image[2]) < GALLERY_IMAGES) {
      this.galleryImage ??= makePng(GALLERY_IMAGE_BYTES);
      return { kind: 'image', contentType: 'image/png', body: this.galleryImage };
    }
    return null;
  }
}

/**
 * The request a client must have had answered before it can know of `path` (null for a start request), or
 * undefined when `path` is not one of the sites'. A flag needs its country's metadata (its name is in it), a
 * gallery image its page, and a page the page before it.
 */
export function parentOf(path: string): string | null | undefined {
  const flag = FLAG_PATH.exec(path);
  if (flag) return flag[2] === 'metadata.json' ? null : `/data/flags/${flag[1]}/metadata.json`;
  const page = GALLERY_PAGE_PATH.exec(path);
  if (page) return Number(page[1]) === 0 ? null : galleryPagePath(Number(page[1]) - 1);
  const image = GALLERY_IMAGE_PATH.exec(path);
  if (image) return galleryPagePath(Number(image[1]));
  return undefined;
}
