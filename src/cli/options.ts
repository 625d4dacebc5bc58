// The options of `imgdl get` and `imgdl run`, each listed once. From this table come each command's parseArgs
// options, its help text, the flags a plugin option may not take (RESERVED_FLAGS), the object handed to get() or
// runPlugin() and the flag names in error messages. Values stay the strings parseArgs gives: the library validates
// them (src/options.ts), with one message for the CLI and library users alike.
import bytes from 'bytes';
import type { ParseArgsConfig } from 'node:util';
import { DEFAULTS } from '../core/types.ts';
import type { GetOptions } from '../get.ts';
import type { RunPluginOptions } from '../plugin/run.ts';
import type { WorkerOptions } from '../queue/worker.ts';

export type Command = 'get' | 'run' | 'worker';

/** What an option's help may depend on: the command, and for `imgdl run <plugin> --help` the plugin's name. */
export interface HelpContext {
  command: Command;
  plugin?: string;
}

export interface CliOption {
  /** The flag, without its dashes (`per-host`). */
  flag: string;
  /** One-letter alias (`-c`). */
  short?: string;
  /** As parseArgs reads it: a string value, or a boolean switch. */
  type: 'string' | 'boolean';
  /** Repeatable: every value given is kept, in order (a string option only). */
  multiple?: boolean;
  /** The placeholder of its value in the help (`N`, `DIR`); string options only. */
  arg?: string;
  /** The option of get() / runPlugin() it sets; none for what only the CLI does (--json, --quiet, --help). */
  key?: keyof GetOptions | keyof RunPluginOptions | keyof WorkerOptions;
  /** A `--no-…` switch: it sets its option to false. */
  negates?: true;
  /** The commands that take it. */
  commands: readonly Command[];
  /** Its line in the help; defaults come from the engine's DEFAULTS, so the help cannot disagree with the code. */
  help: string | ((context: HelpContext) => string);
}

const seconds = (ms: number) => ms / 1000;

/** Every option of `imgdl get` and `imgdl run`, in the order of their help. */
export const CLI_OPTIONS = [
  { flag: 'max-pages', type: 'string', arg: 'N', key: 'maxPages', commands: ['run'], help: "most pages visited in the run, start pages included (default: the plugin's, else all)" },
  { flag: 'max-depth', type: 'string', arg: 'N', key: 'maxDepth', commands: ['run'], help: "most links followed from a start page; 0 = start pages only (default: the plugin's, else all)" },
  {
    flag: 'name', type: 'string', arg: 'TEMPLATE', key: 'name', commands: ['run'],
    help: "where each image goes: '{page.title}/{index:03}-{alt}.{ext}' (/ between folders; fields: docs/plugins.md)",
  },
  { flag: 'archive', type: 'string', arg: 'FILE', key: 'archive', commands: ['run'], help: 'skip images whose key this archive has (shared by runs and folders); add the keys of those saved' },
  { flag: 'update', type: 'boolean', key: 'update', commands: ['run'], help: 'look again for new images: fetch the start pages (and pages marked refresh) again' },
  {
    flag: 'out', short: 'o', type: 'string', arg: 'DIR', key: 'out', commands: ['get', 'run'],
    help: ({ command, plugin }) =>
      command === 'get' ? 'output folder (default: named after the list, cats.txt → cats/; URLs → downloads/), or s3://BUCKET/PREFIX'
      : `output folder (default: ${plugin !== undefined ? `${plugin}/` : 'named after the plugin, e.g. flags/'})`,
  },
  {
    flag: 's3-endpoint', type: 'string', arg: 'URL', key: 's3Endpoint', commands: ['get'],
    help: 'with --out s3://: an S3-compatible store, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS)',
  },
  { flag: 's3-addressing', type: 'string', arg: 'STYLE', key: 's3Addressing', commands: ['get'], help: 'with --out s3://: path or virtual bucket addressing (default: path with an endpoint, else virtual)' },
  { flag: 's3-region', type: 'string', arg: 'REGION', key: 's3Region', commands: ['get'], help: "with --out s3://: the region to sign for (default: $AWS_REGION or the profile's; us-east-1 with an endpoint)" },
  {
    flag: 'queue', type: 'string', arg: 'URL', key: 'queue', commands: ['get', 'run', 'worker'],
    help: ({ command }) =>
      command === 'get' ? 'spread the run over every `imgdl worker` on this Redis (redis://host:6379/0); this process works on it too'
      : command === 'run' ? 'spread the images over every `imgdl worker` on this Redis (redis://host:6379/0); pages are crawled here, this process downloads too'
      : 'the Redis whose queue to take shards from (redis://host:6379/0)',
  },
  {
    flag: 'job-size', type: 'string', arg: 'N', key: 'jobSize', commands: ['get', 'run'],
    help: ({ command }) =>
      command === 'get' ? 'with --queue: URLs per job, the share of the run a worker takes at a time (default 10000)'
      : 'with --queue: images per job (a job is sent once it has N images, or 1 s after its first was found; default 10000)',
  },
  { flag: 'exit-when-idle', type: 'boolean', key: 'exitWhenIdle', commands: ['worker'], help: 'leave once no shard of any run is waiting or active (after a 3 s grace)' },
  {
    flag: 'lock-duration', type: 'string', arg: 'SECONDS', key: 'lockDuration', commands: ['get', 'run', 'worker'],
    help: "with --queue: a worker's hold on a shard lasts this long unrenewed; a dead worker's shard is retaken after 1-2 of these (default 30)",
  },
  { flag: 'concurrency', short: 'c', type: 'string', arg: 'N', key: 'concurrency', commands: ['get', 'run', 'worker'], help: `downloads at once (default ${DEFAULTS.concurrency})` },
  // resolveOptions makes the per-host limit at least the concurrency unless it is given.
  {
    flag: 'per-host', type: 'string', arg: 'N', key: 'perHost', commands: ['get', 'run'],
    help: 'most downloads at once to one host; each host backs off below it on 429, 503, timeouts, resets (default: the concurrency)',
  },
  { flag: 'rate', type: 'string', arg: 'R', key: 'rate', commands: ['get', 'run'], help: 'most requests per second to one host, e.g. 2 or 0.5 (default: no cap)' },
  { flag: 'retries', type: 'string', arg: 'N', key: 'retries', commands: ['get', 'run'], help: `retries on network errors, timeouts, 408, 429, 5xx (default ${DEFAULTS.retries})` },
  { flag: 'retry-delay', type: 'string', arg: 'MS', key: 'retryDelay', commands: ['get', 'run'], help: `first retry delay, doubled each time, with jitter (default ${DEFAULTS.retryDelayMs})` },
  { flag: 'timeout', type: 'string', arg: 'SECONDS', key: 'timeout', commands: ['get', 'run'], help: `time limit of one attempt (default ${seconds(DEFAULTS.timeoutMs)})` },
  { flag: 'stall-timeout', type: 'string', arg: 'S', key: 'stallTimeout', commands: ['get', 'run'], help: `longest wait for headers or between body chunks (default ${seconds(DEFAULTS.stallTimeoutMs)})` },
  { flag: 'connect-timeout', type: 'string', arg: 'S', key: 'connectTimeout', commands: ['get', 'run'], help: `connect time limit (default ${seconds(DEFAULTS.connectTimeoutMs)})` },
  {
    flag: 'max-bytes', type: 'string', arg: 'SIZE', key: 'maxBytes', commands: ['get', 'run'],
    help: `largest image accepted, e.g. 20MB; 0 = no limit (default ${bytes.format(DEFAULTS.maxBytes, { unitSeparator: '' })})`,
  },
  { flag: 'max-redirects', type: 'string', arg: 'N', key: 'maxRedirects', commands: ['get', 'run'], help: `redirects followed (default ${DEFAULTS.maxRedirects})` },
  { flag: 'max-retry-after', type: 'string', arg: 'S', key: 'maxRetryAfter', commands: ['get', 'run'], help: `longest Retry-After waited for (default ${seconds(DEFAULTS.maxRetryAfterMs)})` },
  { flag: 'user-agent', type: 'string', arg: 'UA', key: 'userAgent', commands: ['get', 'run'], help: 'User-Agent header' },
  {
    flag: 'header', short: 'H', type: 'string', multiple: true, arg: "'NAME: VALUE'", key: 'headers', commands: ['get', 'run'],
    help: 'a header for every request, repeatable; not sent after a redirect to another origin (Host, Cookie, Authorization… refused)',
  },
  { flag: 'referer', type: 'string', arg: 'URL', key: 'referer', commands: ['get', 'run'], help: 'Referer header, sent like -H' },
  { flag: 'location-trusted', type: 'boolean', key: 'locationTrusted', commands: ['get', 'run'], help: 'send -H and --referer after a redirect to another origin too (never credentials)' },
  {
    flag: 'cookies', type: 'string', arg: 'FILE', key: 'cookies', commands: ['get', 'run'],
    help: 'cookies.txt (Netscape format, as curl and yt-dlp read): each request and redirect gets those matching its host',
  },
  {
    flag: 'proxy', type: 'string', arg: 'URL', key: 'proxy', commands: ['get', 'run'],
    help: "proxy for every request, http://[user:password@]host:port (default: $http_proxy / $https_proxy; '' for none)",
  },
  { flag: 'noproxy', type: 'string', arg: 'LIST', commands: ['get', 'run'], help: "hosts that bypass the proxy, e.g. localhost,.example.com; '*' for all (default: $no_proxy)" },
  {
    flag: 'block-private', type: 'boolean', key: 'blockPrivateNetwork', commands: ['get', 'run'],
    help: 'refuse hosts that are or resolve to loopback, private or other non-public addresses',
  },
  { flag: 'ignore-robots', type: 'boolean', key: 'ignoreRobots', commands: ['run'], help: "fetch pages that the sites' robots.txt disallows for imgdl (images never consult robots.txt)" },
  {
    flag: 'ignore-opt-out', type: 'boolean', key: 'ignoreOptOut', commands: ['get', 'run'],
    help: `save images whose X-Robots-Tag opts them out (${DEFAULTS.optOutDirectives.join(', ')}) all the same`,
  },
  { flag: 'opt-out-directives', type: 'string', arg: 'LIST', key: 'optOutDirectives', commands: ['get', 'run'], help: `X-Robots-Tag directives that opt an image out (default ${DEFAULTS.optOutDirectives.join(',')})` },
  {
    flag: 'resize', type: 'string', arg: 'N', key: 'resize', commands: ['get', 'run'],
    help: 'resize each image to N pixels as --resize-mode says, re-encoded (JPEG unless --format); needs sharp',
  },
  {
    flag: 'resize-mode', type: 'string', arg: 'MODE', key: 'resizeMode', commands: ['get', 'run'],
    help: 'keep-ratio (shorter side N), keep-ratio-largest (longer side N), center-crop (N×N), border (fit in N×N, padded), no (default border)',
  },
  { flag: 'format', type: 'string', arg: 'FMT', key: 'format', commands: ['get', 'run'], help: 're-encode as jpeg, webp, avif or png; needs sharp' },
  { flag: 'quality', type: 'string', arg: 'Q', key: 'quality', commands: ['get', 'run'], help: "encoder quality 1-100 (default: sharp's for the format)" },
  { flag: 'min-size', type: 'string', arg: 'WxH', key: 'minSize', commands: ['get', 'run'], help: 'images smaller than WxH fail (too_small); needs sharp' },
  { flag: 'max-aspect', type: 'string', arg: 'R', key: 'maxAspect', commands: ['get', 'run'], help: 'images whose longer side is over R times the shorter fail (aspect_ratio); needs sharp' },
  { flag: 'keep-original', type: 'boolean', key: 'keepOriginal', commands: ['get', 'run'], help: 'with --resize or --format: keep the original too (originals/, or KEY.orig.EXT in a shard)' },
  { flag: 'layout', type: 'string', arg: 'L', key: 'layout', commands: ['get', 'run'], help: 'files (one file per image, default) or webdataset (tar shards with an index each)' },
  { flag: 'shard-size', type: 'string', arg: 'N', key: 'shardSize', commands: ['get', 'run'], help: `samples per tar shard with --layout webdataset (default ${DEFAULTS.shardSize})` },
  { flag: 'dedupe', type: 'boolean', key: 'dedupe', commands: ['get', 'run'], help: 'save each distinct image (by sha256) once; later copies are recorded with duplicateOf' },
  {
    flag: 'run', type: 'string', arg: 'NAME', key: 'run', commands: ['get', 'run'],
    help: ({ command }) =>
      command === 'get' ? 'run name (default: derived from the list and output folder)'
      : 'run name (default: derived from the plugin, its options and the output folder)',
  },
  {
    flag: 'storage', type: 'string', arg: 'DIR', key: 'storage', commands: ['get', 'run', 'worker'],
    help: ({ command }) =>
      command === 'worker' ? "where the state of the shards of s3:// runs is kept while they are worked on (default: $IMGDL_STORAGE, else $CRAWLEE_STORAGE_DIR, else ./storage)"
      : 'where run state is kept (default: $IMGDL_STORAGE, else $CRAWLEE_STORAGE_DIR, else ./storage)',
  },
  {
    flag: 'input-format', type: 'string', arg: 'FORMAT', key: 'inputFormat', commands: ['get'],
    help: 'txt, csv, tsv, jsonl or parquet (default: from each list\'s extension: .csv, .tsv, .jsonl, .parquet; else txt)',
  },
  { flag: 'url-col', type: 'string', arg: 'NAME', key: 'urlCol', commands: ['get'], help: 'input tables: the column of the image URLs (default url)' },
  { flag: 'caption-col', type: 'string', arg: 'NAME', key: 'captionCol', commands: ['get'], help: 'input tables: the column of the captions, kept as each record\'s caption (default none)' },
  {
    flag: 'save-cols', type: 'string', arg: 'A,B', key: 'saveCols', commands: ['get'],
    help: 'input tables: the columns kept in each record\'s metadata (default: every column but the URL\'s)',
  },
  { flag: 'no-report', type: 'boolean', key: 'report', negates: true, commands: ['get', 'run'], help: 'no report.html in the output folder (stats.json is always written)' },
  { flag: 'fresh', type: 'boolean', key: 'fresh', commands: ['get', 'run'], help: "forget this run's state and start over" },
  { flag: 'retry-failed', type: 'boolean', key: 'retryFailed', commands: ['get', 'run'], help: 'try again the images (and, for run, the pages) that failed before' },
  { flag: 'json', type: 'boolean', commands: ['get', 'run'], help: 'print one JSON summary on stdout at the end' },
  { flag: 'quiet', short: 'q', type: 'boolean', commands: ['get', 'run', 'worker'], help: 'no progress output' },
  { flag: 'help', short: 'h', type: 'boolean', commands: ['get', 'run', 'worker'], help: 'this help' },
] as const satisfies readonly CliOption[];

type Entry = (typeof CLI_OPTIONS)[number];

/**
 * What the flags of `command` set in get() / runPlugin(), by library option name: the string typed, or `true` for
 * a switch. Passing it to get() or runPlugin() type-checks that the library takes a string for each of them.
 */
export type LibraryValues<C extends Command> = {
  [E in Entry as E extends { key: string } ? (C extends E['commands'][number] ? E['key'] : never) : never]?: E['type'] extends 'boolean' ? boolean : E extends { multiple: true } ? string[] : string;
};

/** The options `command` takes, in help order. */
export function optionsOf(command: Command): CliOption[] {
  return CLI_OPTIONS.filter((o: CliOption) => o.commands.includes(command));
}

/** Every flag of `imgdl get` and `imgdl run`. */
export const CLI_FLAGS: readonly string[] = CLI_OPTIONS.map((o) => o.flag);

/** The parseArgs `options` of `command`. */
export function parseArgsOptions(command: Command): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const o of optionsOf(command)) {
    options[o.flag] = { type: o.type, ...(o.short === undefined ? {} : { short: o.short }), ...(o.multiple ? { multiple: true } : {}) };
  }
  return options;
}

/** The "Options:" lines of `command`'s help. */
export function commandHelp(command: Command, context: Omit<HelpContext, 'command'> = {}): string {
  const rows = optionsOf(command).map((o) => [
    `${o.short === undefined ? '    ' : `-${o.short}, `}--${o.flag}${o.arg === undefined ? '' : ` ${o.arg}`}`,
    typeof o.help === 'string' ? o.help : o.help({ ...context, command }),
  ] as const);
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`).join('\n');
}

/**
 * The options of get() / runPlugin() set by the flags given (parseArgs `values`), as typed; flags not given are
 * left out (the library's defaults apply), and so are those only the CLI reads (--json, --quiet, --help).
 */
export function libraryOptions<C extends Command>(command: C, values: Readonly<Record<string, unknown>>): LibraryValues<C> {
  const options: Record<string, string | boolean | string[]> = {};
  for (const o of optionsOf(command)) {
    const value = values[o.flag];
    if (o.key !== undefined && (typeof value === 'string' || typeof value === 'boolean')) options[o.key] = o.negates && typeof value === 'boolean' ? !value : value;
    if (o.key !== undefined && o.multiple && Array.isArray(value)) options[o.key] = value.map(String);
  }
  // Built from the same table as LibraryValues: each key is an entry's `key`, each value of the entry's type.
  return options as LibraryValues<C>;
}

const FLAG_OF_KEY = new Map<string, string>(CLI_OPTIONS.flatMap((o: CliOption) => (o.key === undefined ? [] : [[o.key, o.flag] as const])));

/** Option names in library messages (``Expected `maxBytes` …``) as the flags a CLI user typed (`--max-bytes`). */
export function asFlags(message: string): string {
  return message.replace(/`([a-z][A-Za-z0-9]*)`/g, (whole, name: string) => {
    const flag = FLAG_OF_KEY.get(name);
    return flag === undefined ? whole : `\`--${flag}\``;
  });
}
