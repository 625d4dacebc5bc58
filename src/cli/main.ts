import { parseArgs } from 'node:util';
import { UsageError } from '../errors.ts';
import { get } from '../get.ts';
import { commandLine, envHttp, envProxy, envS3Endpoint, envStorage, exitStatus, note, onSignals } from './common.ts';
import { asFlags, commandHelp, libraryOptions, parseArgsOptions } from './options.ts';
import { formatSummary, queueReporting, showProgress } from './progress.ts';
import { cmdRuns, RUNS_HELP } from './runs.ts';
import { cmdNew, cmdPlugins, cmdRun, NEW_HELP, PLUGINS_HELP, RUN_HELP } from './plugin-commands.ts';
import type { Summary } from '../core/engine.ts';

export { asFlags };

export const VERSION = '0.1.0';

export const GET_HELP = `Usage: imgdl get <list.txt | URL...> [options]

Downloads every image URL of a list (one a line; blank lines and # comments skipped) into a folder.
Running the same command again continues the run: what is saved is skipped, what is pending is fetched.

Options:
${commandHelp('get')}

Exit status: 0 all saved, 1 some failed, 2 bad usage or unreadable list, 75 stopped by a full disk
(run again once there is room), 130 interrupted.`;

export const WORKER_HELP = `Usage: imgdl worker --queue redis://HOST:PORT/DB [options]

Takes shards of any run spread through that Redis (\`imgdl get LIST --queue …\`, \`imgdl run PLUGIN … --queue …\`: a
plugin's images carry what saving them needs, the plugin's code is not loaded here) and downloads them into each
run's output folder (which this machine must reach at the same path), or its s3:// bucket (credentials from this
machine's AWS environment or profile). A worker that dies loses nothing: its shard goes
to another worker once its lock lapses, and that worker skips the images already saved. Ctrl-C hands the shard in
hand back to the queue.

Options:
${commandHelp('worker')}

Exit status: 0 when it left (idle with --exit-when-idle), 2 bad usage, Redis unreachable, or a run's s3:// output
that this machine cannot write to, 130 interrupted.`;

const HELP = `imgdl ${VERSION}: get images off the web in bulk, fast, safely and resumably.

Usage:
  imgdl get <list.txt | URL...> [options]   download a list of image URLs into a folder
  imgdl run <plugin | file.ts> [options]    run a site plugin (built-in name, or a path to a .ts file)
  imgdl plugins                             list the built-in plugins
  imgdl new <name>                          write a new plugin (and its test) from the template
  imgdl worker --queue redis://HOST/DB      take shards of runs spread over many machines (get --queue)
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
      case 'worker':
        return await cmdWorker(rest);
      case 'run':
        return await cmdRun(rest);
      case 'plugins':
        return await cmdPlugins(rest);
      case 'new':
        return await cmdNew(rest);
      case 'help': {
        const topics: Record<string, string> = { get: GET_HELP, worker: WORKER_HELP, runs: RUNS_HELP, run: RUN_HELP, plugins: PLUGINS_HELP, new: NEW_HELP };
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
        throw new UsageError(`Unknown command ${JSON.stringify(command)}. Commands: get, run, plugins, new, worker, runs. See \`imgdl --help\`.`);
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
  const { values, positionals } = parseArgs({ args, options: parseArgsOptions('get'), allowPositionals: true, strict: true });
  if (values['help']) {
    console.log(GET_HELP);
    return 0;
  }
  const quiet = values['quiet'] === true;
  const json = values['json'] === true;
  const flags = libraryOptions('get', values);
  const stop = new AbortController();
  const stopOnSignal = onSignals(stop, () => commandLine(['get', ...args]));
  let endProgress: (() => void) | undefined;
  let summary: Summary;
  try {
    summary = await get({
      ...flags,
      storage: flags.storage ?? envStorage(),
      http: envHttp(),
      proxy: envProxy({ proxy: flags.proxy, noproxy: values['noproxy'] as string | undefined }),
      ...(/^s3:\/\//i.test(flags.out ?? '') && flags.s3Endpoint === undefined && envS3Endpoint() !== undefined ? { s3Endpoint: envS3Endpoint() } : {}),
      inputs: positionals,
      signal: stop.signal,
      command: ['get', ...args],
      onStart: (engine) => {
        if (!quiet && (!json || process.stderr.isTTY)) endProgress = showProgress(engine);
      },
      ...(flags.queue !== undefined && !quiet ? queueReporting() : {}),
    });
  } finally {
    endProgress?.();
    stopOnSignal();
  }
  if (json) process.stdout.write(JSON.stringify(summary) + '\n');
  if (!quiet) note(formatSummary(summary));
  return exitStatus(summary, commandLine(['get', ...args]));
}

async function cmdWorker(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: parseArgsOptions('worker'), allowPositionals: true, strict: true });
  if (values['help']) {
    console.log(WORKER_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`imgdl worker takes no list (got ${JSON.stringify(positionals[0])}): give the list to imgdl get --queue`);
  const flags = libraryOptions('worker', values);
  if (flags.queue === undefined) throw new UsageError('Give the Redis to take shards from: imgdl worker --queue redis://HOST:6379/0');
  const quiet = values['quiet'] === true;
  const stop = new AbortController();
  let interrupted = false;
  const stopOnSignal = onSignals(stop, () => commandLine(['worker', ...args]));
  stop.signal.addEventListener('abort', () => (interrupted = true), { once: true });
  const { startWorker } = await import('../queue/worker.ts');
  try {
    const worker = await startWorker({
      ...flags,
      queue: flags.queue,
      storage: flags.storage ?? envStorage(),
      http: envHttp(),
      signal: stop.signal,
      onShard: quiet ? undefined : (e) => {
        if (e.type === 'done') note(`${e.run} shard ${e.shard}: ${e.result.saved} saved, ${e.result.failed} failed of ${e.result.urls} (${e.summary.downloaded} now, ${e.summary.seconds.toFixed(1)} s)`);
        else if (e.type === 'start') note(`${e.run} shard ${e.shard}: ${e.urls} URLs`);
        else if (e.type === 'handed-back') note(`${e.run} shard ${e.shard}: handed back (${e.reason})`);
        else note(`${e.run} shard ${e.shard}: ${e.message}`);
      },
    });
    if (!quiet) note(`imgdl worker ${worker.name}: taking shards from ${flags.queue.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')}`);
    await worker.done;
    if (worker.stoppedBecause !== undefined) {
      console.error(`imgdl: ${asFlags(worker.stoppedBecause)} (the shard went back to the queue; this worker stopped)`);
      return 2;
    }
  } finally {
    stopOnSignal();
  }
  return interrupted ? 130 : 0;
}
