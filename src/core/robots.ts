// Robots and opt-out: robots.txt for plugin page fetches (RFC 9309, parsed by robots-parser), and X-Robots-Tag
// directives (`noai`, `noimageai`, `none`…) on images. Nothing here fetches: the page lane hands RobotsRules a
// fetcher (fetchRobotsTxt in download.ts), so this module imports neither the engine nor the HTTP client.
import robotsParserModule from 'robots-parser';
import { DownloadError } from '../errors.ts';

// robots-parser is CommonJS (`module.exports = function`) with types written as an ES default export: imported from
// ESM, the default import is that function, which its types call `.default`.
const robotsParser = robotsParserModule as unknown as typeof robotsParserModule.default;

/** X-Robots-Tag directives that keep an image from being saved, unless the user says otherwise (img2dataset's). */
export const OPT_OUT_DIRECTIVES: readonly string[] = ['noai', 'noimageai', 'none'];

/** The token used when a User-Agent has no usable product name. */
const DEFAULT_TOKEN = 'imgdl';

/**
 * The product token robots.txt groups and X-Robots-Tag scopes are matched against: the User-Agent's first product
 * name (what comes before its first `/` or space), lower-cased, as RFC 9309 §2.2.1 describes it (letters, `_` and
 * `-`). `imgdl/0.1 (+https://…)` → `imgdl`, `MyCrawler/2.0` → `mycrawler`; a User-Agent without one → `imgdl`.
 */
export function userAgentToken(userAgent: string): string {
  const product = /^\s*([^\s/]+)/.exec(userAgent)?.[1] ?? '';
  return /^[A-Za-z_-]+$/.test(product) ? product.toLowerCase() : DEFAULT_TOKEN;
}

/** X-Robots-Tag rules whose value is `name: value`, not a user-agent scope. */
const VALUED = new Set(['unavailable_after', 'max-snippet', 'max-image-preview', 'max-video-preview']);

/**
 * The first of `directives` that the X-Robots-Tag headers `value` apply to us (`token`), if any. Each header is a
 * comma list of directives (case-insensitive); `bot: a, b` scopes `a` and `b` (until the next `bot:`) to that user
 * agent, so `imgdl: noai` counts and `otherbot: noai` does not. Several headers are read one by one.
 */
export function optOutDirective(value: string | string[] | undefined, directives: readonly string[], token: string): string | undefined {
  if (value === undefined || directives.length === 0) return undefined;
  for (const line of Array.isArray(value) ? value : [value]) {
    let scope: string | undefined;
    for (const raw of line.split(',')) {
      let part = raw.trim().toLowerCase();
      const scoped = /^([a-z0-9_.*-]+)\s*:\s*(.*)$/.exec(part);
      if (scoped && !VALUED.has(scoped[1]!)) {
        scope = scoped[1]!;
        part = scoped[2]!.trim();
      }
      if (scope !== undefined && scope !== token) continue;
      const directive = part.split(/\s+/)[0] ?? '';
      if (directives.includes(directive)) return directive;
    }
  }
  return undefined;
}

/** Google's cap: the content of a robots.txt past 500 KiB is ignored. */
export const ROBOTS_MAX_BYTES = 500 * 1024;
/** Google follows at least five redirects for robots.txt; past them, it is as if there were none. */
export const ROBOTS_MAX_REDIRECTS = 5;
/** Origins whose robots.txt is kept in memory at once; the oldest is dropped (and fetched again if needed). */
const MAX_ORIGINS = 1000;

type Verdict = { parsed: ReturnType<typeof robotsParser> } | { all: true } | { none: string };

/**
 * A run's robots.txt rules: fetched once per origin (concurrent pages of an origin wait for the same fetch), kept in
 * memory for the run (at most MAX_ORIGINS origins), and matched for `token`.
 *
 * What a robots.txt that could not be read means follows Google: 2xx is parsed; a 4xx other than 429 (404, 410,
 * 401, 403), too many redirects or another non-retryable failure means there are no rules (allow all); a 429, a
 * 5xx, a network failure or a time-out (after the run's retries) means the site may be down or overloaded: every
 * page of that origin is disallowed for the rest of the run (Google's first 12 hours), and `--retry-failed` in a
 * later run tries them again.
 */
export class RobotsRules {
  private readonly verdicts = new Map<string, Promise<Verdict>>();

  constructor(
    /** Fetches a robots.txt (redirects followed, at most ROBOTS_MAX_BYTES kept); throws DownloadError. */
    private readonly fetchTxt: (url: URL) => Promise<string>,
    private readonly token: string,
  ) {}

  /** Throws DownloadError `robots_disallowed` when robots.txt keeps us from `url`. */
  async check(url: URL): Promise<void> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return;
    const verdict = await this.verdict(url.origin);
    if ('all' in verdict) return;
    if ('none' in verdict) {
      throw new DownloadError('robots_disallowed', `${url.origin}/robots.txt could not be fetched (${verdict.none}): no page of that origin is fetched in this run`);
    }
    if (verdict.parsed.isAllowed(url.href, this.token) === false) {
      throw new DownloadError('robots_disallowed', `${url.origin}/robots.txt disallows ${url.pathname}${url.search} for ${this.token}`);
    }
  }

  private verdict(origin: string): Promise<Verdict> {
    const known = this.verdicts.get(origin);
    if (known) return known;
    const robotsUrl = new URL('/robots.txt', origin);
    const verdict = this.fetchTxt(robotsUrl).then(
      (text): Verdict => ({ parsed: robotsParser(robotsUrl.href, text) }),
      (error: unknown): Verdict => {
        // Not an answer about robots.txt (the run is stopping, or a bug): not kept, thrown as it is.
        if (!(error instanceof DownloadError) || error.code === 'internal') {
          this.verdicts.delete(origin);
          throw error;
        }
        return error.retryable ? { none: error.message } : { all: true };
      },
    );
    this.verdicts.set(origin, verdict);
    if (this.verdicts.size > MAX_ORIGINS) this.verdicts.delete(this.verdicts.keys().next().value!);
    return verdict;
  }
}
