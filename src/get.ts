import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './errors.ts';
import { Engine, type ItemInput, type Summary } from './core/engine.ts';
import { readList } from './core/input.ts';
import { deriveRunName, markRunEnded, markRunStarted, runsDir, safeRunName, storageDir } from './core/runs.ts';
import { resolveOptions, type DownloadOptions } from './options.ts';

export interface GetOptions extends DownloadOptions {
  /** List files (one URL a line) and/or URLs. */
  inputs: string[];
  /** Output folder; default: named after the first list file (`cats.txt` → `cats/`), or `downloads/`. */
  out?: string;
  /** Run name; default: derived from the inputs and the output folder. */
  run?: string;
  /** Where run state lives; default `./storage`. */
  storage?: string;
  /** Forget the run's state and start over. */
  fresh?: boolean;
  /** Try again the images that failed in an earlier run. */
  retryFailed?: boolean;
  signal?: AbortSignal;
  /** The argv that reproduces this call, kept so that the run can be resumed by name. */
  command?: string[];
  /** Called once the engine is open (for progress and events). */
  onStart?: (engine: Engine) => void;
}

function isUrlLike(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(value) && !fs.existsSync(value);
}

/** Resolves where a `get` writes and which run it continues, validating everything before any network work. */
export function planGet(options: GetOptions) {
  if (!Array.isArray(options.inputs) || options.inputs.length === 0) {
    throw new UsageError('Give a list file (one URL a line) or one or more URLs');
  }
  const lists: string[] = [];
  const urls: string[] = [];
  for (const input of options.inputs) {
    if (input === '-' ) lists.push(input);
    else if (isUrlLike(input)) urls.push(input);
    else {
      try {
        if (!fs.statSync(input).isFile()) throw new Error('not a file');
        fs.accessSync(input, fs.constants.R_OK);
      } catch {
        throw new UsageError(`Cannot read the list ${input}: no such readable file (and not a URL)`);
      }
      lists.push(path.resolve(input));
    }
  }
  const firstList = lists.find((l) => l !== '-');
  const outDir = path.resolve(options.out ?? (firstList ? path.basename(firstList, path.extname(firstList)) : 'downloads'));
  const label = firstList ? path.basename(firstList, path.extname(firstList)) : 'urls';
  const run = options.run ? safeRunName(options.run) : deriveRunName('get', label, { lists, urls, outDir });
  if (!run) throw new UsageError(`Expected \`run\` to be a usable name, got ${JSON.stringify(options.run)}`);
  const stateDir = path.join(runsDir(storageDir(options.storage)), run);
  return { lists, urls, outDir, run, stateDir, engineOptions: resolveOptions(pick(options)) };
}

function pick(options: GetOptions): DownloadOptions {
  const { inputs: _i, out: _o, run: _r, storage: _s, fresh: _f, retryFailed: _rf, signal: _sg, command: _c, onStart: _os, ...rest } = options;
  return rest;
}

/** Downloads lists and URLs into a folder; continues the run if it was interrupted. */
export async function get(options: GetOptions): Promise<Summary> {
  const plan = planGet(options);
  if (options.fresh) await fs.promises.rm(plan.stateDir, { recursive: true, force: true });
  const info = markRunStarted(plan.stateDir, { name: plan.run, kind: 'get', command: options.command ?? ['get', ...options.inputs], outDir: plan.outDir });
  const ingested = info?.finished === true || (info !== undefined && fs.existsSync(path.join(plan.stateDir, 'ingested')));
  const engine = await Engine.open({
    stateDir: plan.stateDir,
    outDir: plan.outDir,
    options: plan.engineOptions,
    // Once a run has read all of its inputs, a resume does not read them again.
    items: ingested ? undefined : inputs(plan.lists, plan.urls, plan.stateDir),
    retryFailed: options.retryFailed,
    signal: options.signal,
  });
  options.onStart?.(engine);
  const summary = await engine.run();
  markRunEnded(plan.stateDir, summary);
  return summary;
}

async function* inputs(lists: string[], urls: string[], stateDir: string): AsyncGenerator<ItemInput> {
  for (const url of urls) yield { url };
  for (const list of lists) yield* readList(list);
  fs.writeFileSync(path.join(stateDir, 'ingested'), new Date().toISOString());
}
