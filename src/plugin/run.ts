import path from 'node:path';
import { UsageError } from '../errors.ts';
import { Engine, type Progress, type RunHandle, type Summary } from '../core/engine.ts';
import { deriveRunName, markRunEnded, markRunStarted, runsDir, safeRunName, storageDir } from '../core/runs.ts';
import { DEFAULTS, type EngineOptions } from '../core/engine.ts';
import { httpOption, type HttpClientKind } from '../http/client.ts';
import { flag, integer, resolveOptions, type DownloadOptions } from '../options.ts';
import { engineHandlers, postOf, type QueuedPage } from './handle.ts';
import { resolveUrl } from '../core/urls.ts';
import { addCookieLines, requestHeaders } from '../http/headers.ts';
import { resolvePluginOptions } from './options.ts';
import { parseNameTemplate } from '../core/naming.ts';
import { Archive } from '../storage/archive.ts';
import type { AnyPlugin, OptionSpecs, OptionValues, PageLimits, Plugin, PluginLog } from './types.ts';
import type { QueueProgress } from '../queue/coordinator.ts';
import type { ShardEvent } from '../queue/worker.ts';

export interface RunPluginOptions<V = Record<string, unknown>> extends DownloadOptions {
  /** The plugin's options (validated; defaults filled in). */
  options?: Partial<V>;
  /** Output folder; default: named after the plugin (`flags/`). */
  out?: string;
  /** Run name; default: derived from the plugin, its options and the output folder. */
  run?: string;
  /** Where run state lives; default `./storage` (no environment variable is read: the CLI passes `$IMGDL_STORAGE`). */
  storage?: string;
  /** The HTTP client: `undici` or the runtime's `fetch`; default: undici where its Agent is usable (Node, Deno), else fetch (Bun). */
  http?: HttpClientKind;
  /** Forget the run's state and start over. */
  fresh?: boolean;
  signal?: AbortSignal;
  /** The argv that reproduces this call, kept so that `imgdl runs` can show how to resume it. */
  command?: string[];
  /** Called once the engine is open (for its `saved`, `failed` and `retry` events). */
  onStart?: (run: RunHandle) => void;
  /** Called with the run's counts after each image is saved or fails, and after each page that fails. */
  onProgress?: (progress: Progress) => void;
  /** Where the plugin's `ctx.log` goes; default: stderrLog(), without debug lines (the CLI shows them with IMGDL_DEBUG set). */
  log?: PluginLog;
  /** Try again the images and pages that failed in an earlier run of this plugin (pages are fetched again). */
  retryFailed?: boolean;
  /** Most pages visited in the run, start pages included (default: the plugin's `limits`, else no limit); digits ("20") too. */
  maxPages?: number | string;
  /** Most links followed from a start page; 0 visits the start pages only (default: the plugin's, else no limit); digits too. */
  maxDepth?: number | string;
  /**
   * Fetch pages whatever the sites' robots.txt says. By default each origin's robots.txt is fetched once per run and
   * a page it disallows for our user agent (the User-Agent's first product name, `imgdl`) fails with
   * `robots_disallowed`, unrequested. Images are never checked against robots.txt. @default false
   */
  ignoreRobots?: boolean;
  /** Write `report.html` (thumbnails, failures, throughput) in the output folder at the end; stats.json is always written. @default true */
  report?: boolean;
  /**
   * Where each image goes and its name, a template: `{page.title}/{index:03}-{alt}.{ext}` (`/` between folders; each
   * folder and the file name made safe; never outside `out`). Fields: docs/plugins.md, "Names". Default: the
   * plugin's `nameTemplate`, else names as always (the plugin's `name`, else from the response and URL).
   */
  name?: string;
  /**
   * A download archive file shared by runs and output folders (gallery-dl's --download-archive): images whose `key`
   * it holds are skipped (counted in `skipped`, never fetched), and the key of each image saved is added.
   */
  archive?: string;
  /**
   * Look again for new images: the start pages, and pages handlers mark `refresh`, are fetched again even if an
   * earlier session of the run did; handlers see `ctx.update` and `ctx.known(key)` to stop at items they have.
   */
  update?: boolean;
  /**
   * Spread the run's images over many machines: the Redis (`redis://host:6379/0`) whose `imgdl worker`s download
   * them. Pages are crawled by this call; the images they give are cut into jobs of `jobSize` as they are found, and
   * this call works on them too, then returns the whole run's summary (see the README, "Many machines").
   */
  queue?: string;
  /** With `queue`: images per job. @default 10000 */
  jobSize?: number | string;
  /** With `queue`: how long a worker's hold on a job lasts without renewal, in seconds (see startWorker). @default 30 */
  lockDuration?: number | string;
  /** With `queue`: called every half second with the whole run's counts. */
  onQueueProgress?: (progress: QueueProgress) => void;
  /** With `queue`: called when this process starts, ends or hands back a shard. */
  onShard?: (event: ShardEvent) => void;
}

export interface PluginRunPlan {
  values: Record<string, unknown>;
  outDir: string;
  run: string;
  stateDir: string;
  engineOptions: EngineOptions;
  start: QueuedPage[];
  limits: PageLimits;
}

/** Resolves where a plugin run writes, which run it continues and its start pages, before any network work. */
export async function planPluginRun(plugin: AnyPlugin, opts: RunPluginOptions = {}): Promise<PluginRunPlan> {
  const values = resolvePluginOptions(plugin, opts.options as Record<string, unknown> | undefined);
  const http = plugin.http ?? {};
  // The plugin's --per-host and --rate are defaults: the command line's win.
  const given = downloadOptions(opts);
  const engineOptions = resolveOptions({
    ...(http.perHost !== undefined && given.perHost === undefined ? { perHost: http.perHost } : {}),
    ...(http.rate !== undefined && given.rate === undefined ? { rate: http.rate } : {}),
    ...given,
  });
  if (http.headers !== undefined) {
    const { 'user-agent': userAgent, ...headers } = requestHeaders(`Plugin ${plugin.name}: http.headers`, http.headers);
    engineOptions.headers = { ...headers, ...engineOptions.headers };
    // The plugin's User-Agent, unless the user gave one (--user-agent, or -H 'User-Agent: …').
    if (userAgent && engineOptions.userAgent === DEFAULTS.userAgent) engineOptions.userAgent = userAgent;
  }
  if (http.cookies !== undefined) engineOptions.cookieJar = addCookieLines(engineOptions.cookieJar, http.cookies, `Plugin ${plugin.name}: http.cookies`);
  if (opts.ignoreRobots !== undefined) engineOptions.ignoreRobots = flag('ignoreRobots', opts.ignoreRobots);
  const template = opts.name ?? plugin.nameTemplate;
  if (template !== undefined) {
    if (typeof template !== 'string') throw new UsageError(`Expected \`name\` to be a name template like '{page.title}/{index:03}.{ext}', got ${JSON.stringify(template)}`);
    try {
      parseNameTemplate(template);
    } catch (error) {
      throw new UsageError(`${opts.name !== undefined ? 'Expected `name` to be a usable template: ' : `Plugin ${plugin.name}: nameTemplate: `}${(error as Error).message}`);
    }
    engineOptions.nameTemplate = template;
  }
  if (opts.archive !== undefined && (typeof opts.archive !== 'string' || opts.archive === '')) throw new UsageError(`Expected \`archive\` to be a file path, got ${JSON.stringify(opts.archive)}`);
  if (opts.update !== undefined) flag('update', opts.update);
  httpOption(opts.http);
  const limits: PageLimits = { ...plugin.limits };
  if (opts.maxPages !== undefined) limits.maxPages = integer('maxPages', opts.maxPages, 1);
  if (opts.maxDepth !== undefined) limits.maxDepth = integer('maxDepth', opts.maxDepth, 0);
  if (typeof opts.out === 'string' && /^s3:\/\//i.test(opts.out)) {
    throw new UsageError('A plugin run cannot write to an s3:// output yet (imgdl get can): give a folder as `out`');
  }
  const outDir = path.resolve(opts.out ?? plugin.name);
  const run = opts.run !== undefined ? safeRunName(opts.run) : deriveRunName('run', plugin.name, { plugin: plugin.name, options: values, outDir });
  if (!run) throw new UsageError(`Expected \`run\` to be a usable name, got ${JSON.stringify(opts.run)}`);
  const stateDir = path.join(runsDir(storageDir(opts.storage)), run);
  let requested: unknown;
  try {
    requested = await plugin.start(values);
  } catch (error) {
    // A plugin importing another copy of imgdl (its own node_modules) throws that copy's UsageError.
    if (error instanceof Error && error.name === 'UsageError' && !(error instanceof UsageError)) throw new UsageError(error.message, { cause: error });
    throw error;
  }
  const start = checkStart(plugin, requested);
  return { values, outDir, run, stateDir, engineOptions, start, limits };
}

function checkStart(plugin: AnyPlugin, requests: unknown): QueuedPage[] {
  if (!Array.isArray(requests)) throw new Error(`Plugin ${plugin.name}: start() must return an array of { url, label }`);
  const labels = Object.keys(plugin.handlers);
  return requests.map((r: unknown, i) => {
    const req = r as Partial<QueuedPage> | null;
    if (typeof req !== 'object' || req === null || typeof req.url !== 'string') throw new Error(`Plugin ${plugin.name}: start()[${i}] is not { url, label }`);
    if (typeof req.label !== 'string' || !labels.includes(req.label)) {
      throw new Error(`Plugin ${plugin.name}: start()[${i}] has label ${JSON.stringify(req.label)}, which has no handler (labels: ${labels.join(', ')})`);
    }
    // Start URLs come from the user's options (a base URL, page URLs): a bad one is a usage error.
    const url = resolveUrl(req.url);
    if (!url) throw new UsageError(`Plugin ${plugin.name}: ${JSON.stringify(req.url)} is not an absolute URL`);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`Plugin ${plugin.name}: ${req.url} is not an http(s) URL`);
    const headers = req.headers === undefined ? undefined : requestHeaders(`start()[${i}].headers`, req.headers);
    const post = postOf(`start()[${i}]`, req as Record<string, unknown>);
    if (typeof post === 'string') throw new Error(`Plugin ${plugin.name}: ${post}`);
    const all = post?.type ? { 'content-type': post.type, ...headers } : headers;
    return { url: url.href, label: req.label, userData: req.userData ?? {}, ...(all ? { headers: all } : {}), ...(post ? { body: post.body } : {}) };
  });
}

export function downloadOptions(opts: RunPluginOptions): DownloadOptions {
  const {
    options: _p, out: _o, run: _r, storage: _s, http: _h, fresh: _f, signal: _sg, command: _c, onStart: _os, onProgress: _op, log: _l, maxPages: _mp, maxDepth: _md,
    retryFailed: _rf, ignoreRobots: _ir, name: _n, archive: _a, update: _u, report: _rp, queue: _q, jobSize: _js, lockDuration: _ld, onQueueProgress: _oq, onShard: _osh, ...rest
  } = opts;
  return rest;
}

/** ctx.log for a plugin: one line on stderr each, tagged with the plugin's name; `debug` lines only when asked. */
export function stderrLog(plugin: string, { quiet = false, debug = false } = {}): PluginLog {
  const write = (line: string) => process.stderr.write(`imgdl [${plugin}]: ${line}\n`);
  return {
    info: (m) => (quiet ? undefined : write(m)),
    warn: (m) => write(`warning: ${m}`),
    debug: (m) => (debug ? write(m) : undefined),
  };
}

/**
 * Runs a site plugin: its start pages and every page its handlers find are fetched (each once per run: the
 * queue is durable, so an interrupted run continues where it stopped), and the images they return are
 * downloaded, checked, named and stored with their metadata.
 *
 * @example
 * import flags from '../plugins/flags.ts';
 * const summary = await runPlugin(flags, { options: { codes: ['CN', 'US'] }, out: 'flags' });
 */
export async function runPlugin<O extends OptionSpecs, L extends string>(plugin: Plugin<O, L>, opts: RunPluginOptions<OptionValues<O>> = {}): Promise<Summary> {
  const p: AnyPlugin = plugin;
  const plan = await planPluginRun(p, opts as RunPluginOptions);
  const archive = opts.archive !== undefined ? await Archive.open(opts.archive) : undefined;
  try {
    if (opts.queue !== undefined) {
      const { runPluginQueued } = await import('../queue/plugin.ts');
      return await runPluginQueued(p, plan, opts as RunPluginOptions, archive);
    }
    return await runWith(p, plan, opts as RunPluginOptions, archive);
  } finally {
    archive?.close();
  }
}

/**
 * What a plugin's run is made of, for the engine: its state, pages, limits and handlers. A local run adds its output
 * folder; a distributed run's coordinator (src/queue/plugin.ts) its pages-only folder and where found images go.
 */
export function pluginRunSpec(p: AnyPlugin, plan: PluginRunPlan, opts: RunPluginOptions, archive: Archive | undefined, update: boolean) {
  return {
    stateDir: plan.stateDir,
    name: plan.run,
    maxPages: plan.limits.maxPages,
    maxDepth: plan.limits.maxDepth,
    acceptStatus: p.http?.acceptStatus,
    options: plan.engineOptions,
    // Added on every run; pages already seen (uniqueKey label:url) are not fetched again.
    requests: plan.start,
    handlers: engineHandlers(p, plan.values, opts.log ?? stderrLog(p.name), {
      keepFound: plan.engineOptions.nameTemplate !== undefined,
      archive,
      update,
      imageReferer: p.http?.imageReferer === true,
    }),
    signal: opts.signal,
    // The client asked for; when none is, the engine makes this runtime's default.
    httpKind: opts.http,
  };
}

async function runWith(p: AnyPlugin, plan: PluginRunPlan, opts: RunPluginOptions, archive: Archive | undefined): Promise<Summary> {
  const engine = await Engine.open({
    ...pluginRunSpec(p, plan, opts, archive, opts.update === true),
    outDir: plan.outDir,
    fresh: opts.fresh,
    retryFailed: opts.retryFailed,
    update: opts.update === true,
    report: opts.report === undefined ? true : flag('report', opts.report),
  });
  markRunStarted(plan.stateDir, { name: plan.run, kind: 'run', command: opts.command ?? ['run', p.name], outDir: plan.outDir });
  opts.onStart?.(engine);
  if (opts.onProgress) engine.onProgress(opts.onProgress);
  // Keys of saved images go into the archive a few at a time (short transactions: other runs share the file).
  let keys: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const batch = keys;
    keys = [];
    archive?.add(batch);
  };
  if (archive) {
    engine.on('saved', (record) => {
      if (record.key === undefined) return;
      keys.push(record.key);
      if (keys.length >= 256) flush();
      else timer ??= setTimeout(flush, 100);
    });
  }
  let summary: Summary;
  try {
    summary = await engine.run();
  } finally {
    flush();
  }

  markRunEnded(plan.stateDir, summary);
  return summary;
}
