import type { CheerioAPI } from 'cheerio';
import type { Page } from '../core/download.ts';

export type { Page };

interface OptionBase {
  /** One line for `imgdl run <plugin> --help`. */
  help: string;
  /** The value's placeholder in the help, e.g. `URL` (default: from the type). */
  placeholder?: string;
  /** The run cannot start without it (a usage error, exit 2). */
  required?: boolean;
}

/** `--name VALUE` */
export interface StringOption extends OptionBase {
  type: 'string';
  default?: string;
  /** The only values accepted. */
  choices?: readonly string[];
}

/** `--name 12` */
export interface NumberOption extends OptionBase {
  type: 'number';
  default?: number;
  integer?: boolean;
  min?: number;
  max?: number;
}

/** `--name` (a flag: true when given). */
export interface BooleanOption extends OptionBase {
  type: 'boolean';
  default?: boolean;
}

/** `--name a,b c` or `--name a --name b` (split on commas and spaces); or the command's positional arguments. */
export interface ListOption extends OptionBase {
  type: 'string[]';
  default?: readonly string[];
  /** Takes the positional arguments (`imgdl run gallery URL...`), as they are: no splitting. At most one option. */
  positional?: boolean;
}

export type OptionSpec = StringOption | NumberOption | BooleanOption | ListOption;

/** A plugin's options by name; `baseUrl` is `--base-url` on the command line. */
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S> = S extends { type: 'string' } ? string : S extends { type: 'number' } ? number : S extends { type: 'boolean' } ? boolean : string[];

/** Booleans and lists always have a value (false, []); others when they have a default or are required. */
type AlwaysSet<S> = S extends { type: 'boolean' | 'string[]' } ? true : S extends { required: true } ? true : S extends { default: unknown } ? true : false;

/** The parsed options a plugin's `start` and handlers receive, typed from the declaration. */
export type OptionValues<O extends OptionSpecs> = {
  -readonly [K in keyof O]: AlwaysSet<O[K]> extends true ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};

/** A page to fetch and hand to the handler of `label`. */
export interface PageRequest<L extends string = string> {
  /** Absolute, or relative to the page it was found on. */
  url: string;
  label: L;
  /** Carried to the handler as `ctx.request.userData` (must be JSON). */
  userData?: Record<string, unknown>;
  /**
   * Headers to fetch this page with, on top of the run's (-H, --referer), under the same rule: not sent after a
   * redirect to another origin. Host, Cookie, Authorization and the like are refused (the page fails `plugin_error`).
   */
  headers?: Record<string, string>;
  /** `POST` for an API page that wants one (with `body` or `json`); default GET. */
  method?: 'GET' | 'POST';
  /** The body to POST, as text (give a Content-Type in `headers`). */
  body?: string;
  /**
   * A value to POST as JSON (Content-Type application/json), e.g. a GraphQL `{ query, variables: { cursor } }`. A POST
   * page is known by its URL *and* body, so each cursor's page is fetched once.
   */
  json?: unknown;
  /**
   * With `--update`, fetch this page again even if an earlier session of the run did (a listing's next page that
   * may hold new items). Start pages always are. Without `--update` it changes nothing.
   */
  refresh?: boolean;
}

/** A page to start with: `url` must be absolute. */
export type StartRequest<L extends string = string> = PageRequest<L>;

/** An image for the core to download, check, name and store. */
export interface ImageRequest {
  /** Absolute, or relative to the page it was found on. */
  url: string;
  /**
   * The file name, e.g. `CN-China.gif`, or with folders: `Asia/CN-China.gif` (`/` between them). Each part is made
   * safe by the core (reserved characters, length), and the extension is fixed from the bytes. A name that is
   * absolute (`/etc/x`, `C:\\x`), has a backslash or a `.`/`..` folder (`../x`) is not accepted: the image fails with
   * `bad_name`. Empty or missing: named from the response and URL. A --name template given to the run wins over it
   * (its `{name}` field is this name's file part).
   */
  name?: string;
  /**
   * The site's own id for the image, e.g. `flickr:12345`: with `--archive FILE` an image whose key the archive has
   * (saved by any earlier run, into any folder) is skipped, and the key is added once the image is saved. Also
   * what `ctx.known(key)` answers for, and the `{key}` of a name template. At most 1,000 characters.
   */
  key?: string;
  /** Stored in the image's record in metadata.jsonl (must be JSON). */
  metadata?: unknown;
  /**
   * Headers to fetch this image with, on top of the run's, e.g. `{ Referer: ctx.page.finalUrl }` for a site that
   * checks it; kept with the image in the run state, and not sent after a redirect to another origin.
   */
  headers?: Record<string, string>;
}

/**
 * What a handler found on its page. Each list may be an array, or any iterable or async iterable (a generator):
 * the core reads it a few thousand entries at a time, so a handler that yields a million images keeps memory flat.
 */
export interface HandlerResult<L extends string = string> {
  pages?: Array<PageRequest<L>> | Iterable<PageRequest<L>> | AsyncIterable<PageRequest<L>>;
  images?: ImageRequest[] | Iterable<ImageRequest> | AsyncIterable<ImageRequest>;
}

export interface PluginLog {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** What a handler gets: the request, its fetched page and helpers to read it. */
export interface HandlerContext<V = Record<string, unknown>, L extends string = string> {
  request: { url: string; label: L; userData: Record<string, unknown> };
  /** The fetched page (after redirects: `finalUrl`). */
  page: Page;
  /** The page parsed with cheerio (parsed on first use). Throws when the page is not HTML or XML. */
  readonly $: CheerioAPI;
  /** The page body parsed as JSON. Throws (`plugin_error`) when it is not JSON. */
  json<T = unknown>(): T;
  /** `new URL(url, page.finalUrl).href`: a link on the page made absolute. */
  resolve(url: string): string;
  options: V;
  log: PluginLog;
  /** Aborted when the run is stopping. */
  signal: AbortSignal;
  /**
   * True when an image with this `key` was already found by this run (in an earlier session too, unless it failed),
   * or saved by any run sharing the `--archive`. With `--update`, a listing handler stops walking to older pages once
   * it reaches items it knows (see `update` and `PageRequest.refresh`).
   */
  known(key: string): boolean;
  /** The run was started with `--update`: pages marked `refresh` are fetched again, to find new items. */
  update: boolean;
}

export type Handler<V = Record<string, unknown>, L extends string = string> = (
  ctx: HandlerContext<V, L>,
) => Promise<HandlerResult<L> | void> | HandlerResult<L> | void;

/**
 * A site plugin: it says which pages to start with, and for each page (by label) what it found there.
 * It never downloads images itself: the core fetches, retries, validates, names and stores them.
 */
export interface Plugin<O extends OptionSpecs = OptionSpecs, L extends string = string> {
  /** The plugin's name: for a built-in, its file name (`plugins/flags.ts` → `flags`). */
  name: string;
  /** One line, shown by `imgdl plugins`. */
  description: string;
  options?: O;
  /** The pages to start with (no network here: it runs before anything is fetched). */
  start: (options: OptionValues<O>) => Array<StartRequest<NoInfer<L>>> | Promise<Array<StartRequest<NoInfer<L>>>>;
  /** One handler per label; the labels are these keys (a page with another label is a type error). */
  handlers: Record<L, Handler<OptionValues<O>, NoInfer<L>>>;
  /**
   * This plugin's defaults for the core's page limits, `--max-pages` (pages visited in the run, start pages
   * included) and `--max-depth` (links followed from a start page); the command line overrides them.
   * @example limits: { maxDepth: 9 } // a start page and up to 9 pages after it
   */
  limits?: PageLimits;
  /**
   * This plugin's default name template (see `--name` and docs/plugins.md, "Names"); `--name` overrides it.
   * @example nameTemplate: '{metadata.album}/{index:03}-{name}.{ext}'
   */
  nameTemplate?: string;
  /** HTTP settings of this plugin's runs (the command line's flags win over them). */
  http?: PluginHttp;
}

/** A plugin's HTTP settings. */
export interface PluginHttp {
  /** Headers for every page and image of the run, under -H's rules (not sent after a redirect to another origin); -H wins. */
  headers?: Record<string, string>;
  /**
   * Cookies by the URL they are for, as a Cookie header: `{ 'https://example.org/': 'consent=yes; lang=en' }`. They go
   * into the run's cookie jar (with those of --cookies), so each request gets the ones matching its host and path.
   */
  cookies?: Record<string, string>;
  /** Send each image with `Referer: <the page it was found on>` (unless the image has its own Referer). */
  imageReferer?: boolean;
  /** Default --per-host for this plugin (a polite one for a site that throttles). */
  perHost?: number;
  /** Default --rate (requests per second per host). */
  rate?: number;
  /**
   * Non-2xx statuses handed to the handler as the page (`ctx.page.status`) rather than failing it, e.g. `[404, 410]`
   * for an API answering "gone" with a body to read. Pages only; images must be 2xx.
   */
  acceptStatus?: number[];
}

/** Bounds on the pages a plugin run visits. */
export interface PageLimits {
  /** Most pages visited in the run, start pages included. */
  maxPages?: number;
  /** Most links followed from a start page (0: the start pages only). */
  maxDepth?: number;
}

/** A plugin of any options, as loaded from a file (every `Plugin` is one). */
export interface AnyPlugin {
  name: string;
  description: string;
  options?: OptionSpecs;
  /* eslint-disable @typescript-eslint/no-explicit-any -- the options' type is the plugin's own */
  start: (options: any) => Array<StartRequest> | Promise<Array<StartRequest>>;
  handlers: Record<string, (ctx: HandlerContext<any, any>) => Promise<HandlerResult | void> | HandlerResult | void>;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  limits?: PageLimits;
  nameTemplate?: string;
  http?: PluginHttp;
}
