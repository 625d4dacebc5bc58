import { toPluginError, type DownloadError, type ReasonCode } from '../errors.ts';
import { redact, type Secrets } from '../http/credentials.ts';
import type { SqliteRequestQueueClient } from '../storage/crawlee-client.ts';
import type { PageFailure, RunStore } from '../storage/state.ts';
import { fetchPage, fetchRobotsTxt, withCredentials, type FetchContext, type Page } from './download.ts';
import type { Ingest } from './ingest.ts';
import type { Tally } from './tally.ts';
import { RobotsRules, userAgentToken } from './robots.ts';
import { normalizeUrl } from './urls.ts';
import { shortHash } from './naming.ts';
import { BODY_KEY, DEPTH_KEY, HEADERS_KEY, type LabelHandler, type PageContext, type PageInput, type PageRequest } from './types.ts';

/**
 * The page lane of a plugin run: queues pages within --max-pages and --max-depth, fetches each with the run's HTTP
 * settings, hands it to its label's handler through a narrow PageContext, and records a page that failed apart from
 * the images (a page is not an image: it never counts as one, and --retry-failed queues it again).
 */
export class PageLane {
  /** Pages queued in this run's state (start pages and found pages, visited or not); -1 until first needed. */
  private pagesQueued = -1;
  /** Pages found but not visited because of --max-pages or --max-depth. */
  notVisited = 0;
  /** The sites' robots.txt rules (each origin's fetched once per run); none with --ignore-robots. */
  private readonly robots: RobotsRules | undefined;
  /** Pages handled or queued again in this session: --update fetches a page again at most once per session. */
  private readonly thisSession = new Set<string>();

  constructor(
    private readonly store: RunStore,
    private readonly queue: SqliteRequestQueueClient,
    private readonly fetch: FetchContext,
    private readonly secrets: Secrets,
    private readonly ingest: Ingest,
    private readonly tally: Tally,
    private readonly handlers: Record<string, LabelHandler>,
    private readonly limits: { maxPages?: number; maxDepth?: number; update?: boolean; acceptStatus?: readonly number[] },
    /** Check each page against its site's robots.txt (not with --ignore-robots). */
    respectRobots = true,
  ) {
    // robots.txt is fetched outside the run's --concurrency slots: a page's redirect hop may need another origin's
    // while its own attempt holds a slot, and every slot could be held so. (One fetch per origin: few requests.)
    this.robots = respectRobots ? new RobotsRules((url) => fetchRobotsTxt(url, { ...this.fetch, slots: undefined }), userAgentToken(fetch.settings.userAgent)) : undefined;
  }

  /** Queues pages at `depth` (0: start pages); already-seen keys are ignored, pages past a limit are counted. */
  add(requests: PageInput[], depth: number): void {
    const { maxPages, maxDepth } = this.limits;
    if (maxDepth !== undefined && depth > maxDepth) {
      this.notVisited += requests.length;
      return;
    }
    // With --update, a start page or a page marked `refresh` that an earlier session handled is queued again instead.
    const schemas = requests.map((r) => {
      const url = this.keep(r.url);
      const userData = { ...(r.userData ?? {}), label: r.label, [DEPTH_KEY]: depth, ...(r.headers ? { [HEADERS_KEY]: r.headers } : {}), ...(r.body !== undefined ? { [BODY_KEY]: r.body } : {}) };
      // A POST page is known by its body too: one GraphQL endpoint, many queries.
      const uniqueKey = r.uniqueKey ?? (r.body !== undefined ? `${r.label}:POST:${url}#${shortHash(r.body, 16)}` : `${r.label}:${url}`);
      const schema = { url, uniqueKey, method: 'GET' as const, userData };
      return { schema, refresh: this.limits.update === true && (depth === 0 || r.refresh === true) };
    }).filter(({ schema, refresh }) => !(refresh && this.refresh(schema.uniqueKey))).map(({ schema }) => schema);
    if (maxPages === undefined) {
      this.queue.addNow(schemas);
      return;
    }
    if (this.pagesQueued < 0) this.pagesQueued = this.store.pageCount();
    const taken = schemas.filter((r) => {
      if (this.store.requestByKey(r.uniqueKey)) return false;
      if (this.pagesQueued >= maxPages) {
        this.notVisited++;
        return false;
      }
      this.pagesQueued++;
      return true;
    });
    this.queue.addNow(taken);
  }

  /** Fetches a page (HTML, JSON) with the run's HTTP settings, redirects and retries. Throws DownloadError. */
  async fetchPage(url: string, headers?: Readonly<Record<string, string>>, body?: string): Promise<Page> {
    // A page URL given with a password (a plugin's start URL) is kept as `user:***@`; its password is in secrets.
    const robots = this.robots;
    const { acceptStatus } = this.limits;
    const base: FetchContext = {
      ...this.fetch,
      ...(robots ? { checkHop: (hop: URL) => robots.check(hop) } : {}),
      ...(acceptStatus?.length ? { acceptStatus } : {}),
      ...(body !== undefined ? { post: { body } } : {}),
      ...(headers ? { headers } : {}),
    };
    const { url: sent, ctx } = withCredentials(normalizeUrl(url), base);
    // A disallowed page is never requested (robots_disallowed, not retried), nor is a redirect hop to a disallowed
    // path (checkHop). The run's slot is taken per attempt.
    await robots?.check(sent);
    return fetchPage(sent.href, ctx);
  }

  /**
   * --update: queues a page an earlier session handled to be fetched again, once per session (a page this session
   * handled or queued again is left as it is). True when the page was in the queue already (nothing more to add).
   */
  private refresh(uniqueKey: string): boolean {
    if (this.thisSession.has(uniqueKey)) return false;
    this.thisSession.add(uniqueKey);
    return this.store.requeue(uniqueKey);
  }

  /** Handles one queued page; a handler's error fails the page (`plugin_error`, with cause and stack), not the run. */
  async handle(request: PageRequest): Promise<void> {
    this.thisSession.add(request.uniqueKey);
    const handler = this.handlers[request.label];
    if (!handler) return this.fail(request, { code: 'plugin_error', status: null, message: `No handler for label ${JSON.stringify(request.label)}` });
    try {
      await handler(request, this.context(request));
    } catch (error) {
      if (this.fetch.signal.aborted) throw error;
      // Fetches were already retried, and a plugin bug does not go away on retry: report and go on.
      this.failWith(request, error);
    }
  }

  /** A page Crawlee gave up on. */
  gaveUp(request: PageRequest, error: unknown): void {
    this.failWith(request, error);
  }

  /** Queues again the pages that failed in an earlier run; returns them. */
  retryFailed(): PageFailure[] {
    return this.store.transaction(() => {
      const failures = this.store.takePageFailures();
      for (const f of failures) if (!this.store.requeue(f.uniqueKey)) this.add([{ url: f.url, label: f.label, uniqueKey: f.uniqueKey }], 0);
      return failures;
    });
  }

  private context(request: PageRequest): PageContext {
    return {
      signal: this.fetch.signal,
      fetchPage: (url, headers, body) => this.fetchPage(url, headers, body),
      enqueue: (pages) => this.add(pages, request.depth + 1),
      addItems: (images) => this.ingest.add(images, undefined, true),
      failImage: (url, code, message) => this.ingest.fail(url, code, message),
      failPage: (code, message) => this.fail(request, { code, status: null, message }),
      known: (key) => this.store.keyKnown(key),
    };
  }

  private failWith(request: PageRequest, error: unknown): void {
    const e: DownloadError = toPluginError(error);
    this.fail(request, { code: e.code, status: e.status ?? null, message: e.message, stack: e.detail });
  }

  private fail(request: PageRequest, f: { code: ReasonCode; status: number | null; message: string; stack?: string }): void {
    const url = redact(request.url);
    this.store.recordPageFailure({ uniqueKey: request.uniqueKey, url, label: request.label, ...f });
    this.tally.failed({ url, code: f.code, status: f.status, message: f.message, page: true });
  }

  /** A page URL as it is queued and stored: its password (kept in memory) replaced by `***`. */
  private keep(url: string): string {
    if (!url.includes('@')) return url;
    try {
      const parsed = new URL(url);
      return parsed.password === '' ? url : this.secrets.add(parsed);
    } catch {
      return redact(url);
    }
  }
}
