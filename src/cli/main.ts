import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.ts';
import { get } from '../get.ts';
import { commandLine, exitStatus, note, numberOrUndefined, onSignals } from './common.ts';
import { formatSummary, showProgress } from './progress.ts';
import { cmdRuns, RUNS_HELP } from './runs.ts';
import { cmdNew, cmdPlugins, cmdRun, LIMIT_FLAGS, NEW_HELP, PLUGINS_HELP, RUN_FLAGS, RUN_HELP } from './plugin-commands.ts';
import type { Summary } from '../core/engine.ts';

export const VERSION = '0.1.0';

/** The flags of `imgdl get`: those of `imgdl run` plus --retry-failed. */
const DOWNLOAD_FLAGS = {
  ...RUN_FLAGS,
  'retry-failed': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

export const GET_HELP = `Usage: imgdl get <list.txt | URL...> [options]

Downloads every image URL of a list (one a line; blank lines and # comments skipped) into a folder.
Running the same command again continues the run: what is saved is skipped, what is pending is fetched.

Options:
  -o, --out DIR            output folder (default: named after the list, cats.txt → cats/; URLs → downloads/)
  -c, --concurrency N      downloads at once (default 64)
      --per-host N         downloads at once to one host (default: the concurrency)
      --retries N          retries on network errors, timeouts, 408, 429, 5xx (default 4)
      --retry-delay MS     first retry delay, doubled each time, with jitter (default 500)
      --timeout SECONDS    time limit of one attempt (default 60)
      --stall-timeout S    longest wait for headers or between body chunks (default 20)
      --connect-timeout S  connect time limit (default 10)
      --max-bytes SIZE     largest image accepted, e.g. 20MB; 0 = no limit (default 100MB)
      --max-redirects N    redirects followed (default 10)
      --max-retry-after S  longest Retry-After waited for (default 120)
      --user-agent UA      User-Agent header
      --block-private      refuse hosts that are or resolve to loopback, private or other non-public addresses
      --run NAME           run name (default: derived from the list and output folder)
      --storage DIR        where run state is kept (default ./storage, or $CRAWLEE_STORAGE_DIR)
      --fresh              forget this run's state and start over
      --retry-failed       try again the images that failed before
      --json               print one JSON summary on stdout at the end
  -q, --quiet              no progress output
  -h, --help               this help

Exit status: 0 all saved, 1 some failed, 2 bad usage or unreadable list, 75 stopped by a full disk
(run again once there is room), 130 interrupted.`;

const HELP = `imgdl ${VERSION}: get images off the web in bulk, fast, safely and resumably.

Usage:
  imgdl get <list.txt | URL...> [options]   download a list of image URLs into a folder
  imgdl run <plugin | file.ts> [options]    run a site plugin (built-in name, or a path to a .ts file)
  imgdl plugins                             list the built-in plugins
  imgdl new <name>                          write a new plugin (and its test) from the template
  imgdl runs [--clean NAME]                 list kept runs with their progress, or remove one
  imgdl help get                            options of a command

Run \`imgdl get --help\` for every option.`;

/** Runs the CLI; returns the exit status. The one place where errors become messages and exit codes. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'get':
        return await cmdGet(rest);
      case 'runs':
        return await cmdRuns(rest);
      case 'run':
        return await cmdRun(rest);
      case 'plugins':
        return await cmdPlugins(rest);
      case 'new':
        return await cmdNew(rest);
      case 'help': {
        const topics: Record<string, string> = { get: GET_HELP, runs: RUNS_HELP, run: RUN_HELP, plugins: PLUGINS_HELP, new: NEW_HELP };
        console.log(topics[rest[0] ?? ''] ?? HELP);
        return 0;
      }
      case '--version':
      case '-v':
        console.log(VERSION);
        return 0;
      case undefined:
      case '--help':
      case '-h':
        console.log(HELP);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command ${JSON.stringify(command)}. Commands: get, run, plugins, new, runs. See \`imgdl --help\`.`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`imgdl: ${asFlags((error as Error).message)}`);
      return 2;
    }
    console.error(`imgdl: ${(error as Error).stack ?? String(error)}`);
    return 1;
  }
}

async function cmdGet(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: DOWNLOAD_FLAGS, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(GET_HELP);
    return 0;
  }
  const stop = new AbortController();
  const stopOnSignal = onSignals(stop, () => commandLine(['get', ...args]));
  let endProgress: (() => void) | undefined;
  let summary: Summary;
  try {
    summary = await get({
      inputs: positionals,
      out: values.out,
      concurrency: numberOrUndefined(values.concurrency),
      perHost: numberOrUndefined(values['per-host']),
      retries: numberOrUndefined(values.retries),
      retryDelay: numberOrUndefined(values['retry-delay']),
      timeout: numberOrUndefined(values.timeout),
      stallTimeout: numberOrUndefined(values['stall-timeout']),
      connectTimeout: numberOrUndefined(values['connect-timeout']),
      maxBytes: values['max-bytes'],
      maxRedirects: numberOrUndefined(values['max-redirects']),
      maxRetryAfter: numberOrUndefined(values['max-retry-after']),
      userAgent: values['user-agent'],
      blockPrivateNetwork: values['block-private'] === true ? true : undefined,
      run: values.run,
      storage: values.storage,
      fresh: values.fresh,
      retryFailed: values['retry-failed'],
      signal: stop.signal,
      command: ['get', ...args],
      onStart: (engine) => {
        if (!values.quiet && !values.json) endProgress = showProgress(engine);
        else if (!values.quiet && values.json && process.stderr.isTTY) endProgress = showProgress(engine);
      },
    });
  } finally {
    endProgress?.();
    stopOnSignal();
  }
  if (values.json) process.stdout.write(JSON.stringify(summary) + '\n');
  if (!values.quiet) note(formatSummary(summary));
  return exitStatus(summary, commandLine(['get', ...args]));
}

/** Option names in library messages (``Expected `maxBytes` …``) as the flags a CLI user typed (`--max-bytes`). */
export function asFlags(message: string): string {
  return message.replace(/`([a-z][A-Za-z]*)`/g, (whole, name: string) => {
    const flag = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    return flag in DOWNLOAD_FLAGS || flag in LIMIT_FLAGS ? `\`--${flag}\`` : whole;
  });
}
