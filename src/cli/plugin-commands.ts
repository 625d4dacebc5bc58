import fs from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.ts';
import type { Summary } from '../core/engine.ts';
import { builtinNames, listPlugins, loadPlugin, packageType, PLUGINS_DIR, REPO_ROOT } from '../plugin/loader.ts';
import { flagName, optionsHelp, positionalOption } from '../plugin/options.ts';
import { runPlugin, stderrLog } from '../plugin/run.ts';
import type { AnyPlugin, OptionSpecs, OptionValues } from '../plugin/types.ts';
import { commandLine, envDebug, envHttp, envProxy, envStorage, exitStatus, note, onSignals } from './common.ts';
import { commandHelp, libraryOptions, parseArgsOptions } from './options.ts';
import { formatSummary, queueReporting, showProgress } from './progress.ts';

const RUN_OPTIONS_HELP = `Run options:
${commandHelp('run')}`;

export const RUN_HELP = `Usage: imgdl run <plugin | file.ts> [plugin options] [run options]

Runs a site plugin: a built-in by name (see \`imgdl plugins\`), or a plugin file by path (./my-site.ts).
Running the same command again continues the run: pages already read are not fetched again, saved images are skipped.
\`imgdl run <plugin> --help\` shows the plugin's own options.

${RUN_OPTIONS_HELP}

Exit status: 0 all saved, 1 some failed, 2 bad usage or unknown plugin, 75 stopped by a full disk
(run again once there is room), 130 interrupted.`;

export const PLUGINS_HELP = `Usage: imgdl plugins [--json]

Lists the built-in plugins (plugins/*.ts) with their descriptions.`;

export const NEW_HELP = `Usage: imgdl new <name>

Starts a plugin from plugins/_template.ts, with a test that runs it against saved pages served by a local fixture
site (imgdl/testing). Inside the imgdl repository it writes plugins/<name>.ts, test/<name>.test.ts and
test/fixtures/<name>/; elsewhere ./<name>.ts, ./<name>.test.ts and ./fixtures/<name>/ (.mts outside an ES module
package, so that Node loads them as ESM). Never overwrites a file.
Names are lower-case words: letters, digits and dashes (my-site).`;

/** `imgdl run <plugin|file> [options]` */
export async function cmdRun(args: string[]): Promise<number> {
  const [target, ...rest] = args;
  if (target === undefined || target === '--help' || target === '-h') {
    console.log(RUN_HELP);
    return target === undefined ? 2 : 0;
  }
  if (target.startsWith('-')) throw new UsageError(`Give the plugin first: imgdl run <plugin | file.ts> [options] (got ${target}). See \`imgdl run --help\`.`);
  const plugin = await loadPlugin(target);
  const specs: OptionSpecs = plugin.options ?? {};
  const pluginFlags: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.type === 'string[]' && spec.positional) continue;
    pluginFlags[flagName(name)] = spec.type === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: spec.type === 'string[]' };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...pluginFlags, ...parseArgsOptions('run') }, allowPositionals: true, strict: true });
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError(`${(error as Error).message.split('. ')[0]}. See \`imgdl run ${target} --help\`.`);
    }
    throw error;
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values['help']) {
    console.log(pluginHelp(plugin, target));
    return 0;
  }
  const options: Record<string, unknown> = {};
  for (const name of Object.keys(specs)) {
    const value = values[flagName(name)];
    if (value !== undefined) options[name] = value;
  }
  const positional = positionalOption(plugin);
  if (positional) {
    if (parsed.positionals.length > 0) options[positional] = parsed.positionals;
  } else if (parsed.positionals.length > 0) {
    throw new UsageError(`The ${plugin.name} plugin takes no arguments, got ${JSON.stringify(parsed.positionals[0])}. See \`imgdl run ${target} --help\`.`);
  }

  const quiet = values['quiet'] === true;
  const json = values['json'] === true;
  const flags = libraryOptions('run', values);
  const resume = () => commandLine(['run', ...args]);
  const stop = new AbortController();
  const stopOnSignal = onSignals(stop, resume);
  let endProgress: (() => void) | undefined;
  let summary: Summary;
  try {
    summary = await runPlugin(plugin, {
      ...flags,
      storage: flags.storage ?? envStorage(),
      http: envHttp(),
      proxy: envProxy({ proxy: flags.proxy, noproxy: values['noproxy'] as string | undefined }),
      options: options as Partial<OptionValues<OptionSpecs>>,
      signal: stop.signal,
      command: ['run', ...args],
      log: stderrLog(plugin.name, { quiet, debug: envDebug() }),
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
  return exitStatus(summary, resume());
}

/** `imgdl run <plugin> --help`: generated from the plugin's declared options. */
export function pluginHelp(plugin: AnyPlugin, target = plugin.name): string {
  const positional = positionalOption(plugin);
  const spec = positional ? (plugin.options ?? {})[positional] : undefined;
  const args = spec ? ` ${spec.required ? '' : '['}${spec.placeholder ?? positional!.toUpperCase()}...${spec.required ? '' : ']'}` : '';
  const own = optionsHelp(plugin);
  return [
    `Usage: imgdl run ${target}${args} [options]`,
    '',
    plugin.description,
    '',
    ...(own.length > 0 ? ['Plugin options:', ...own, ''] : []),
    `Run options:\n${commandHelp('run', { plugin: plugin.name })}`,
  ].join('\n');
}

/** `imgdl plugins [--json]` */
export async function cmdPlugins(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    console.log(PLUGINS_HELP);
    return 0;
  }
  const plugins = await listPlugins();
  if (values.json) {
    process.stdout.write(JSON.stringify(plugins.map(({ name, description, error }) => ({ name, description, ...(error ? { error } : {}) }))) + '\n');
  } else {
    const width = Math.max(0, ...plugins.map((p) => p.name.length));
    for (const p of plugins) console.log(`${p.name.padEnd(width)}  ${p.error ? `(broken: ${p.error})` : p.description}`);
    console.log('\nRun one: imgdl run <name> [options]; its options: imgdl run <name> --help');
  }
  return plugins.some((p) => p.error) ? 1 : 0;
}

/** Where `imgdl new` writes, and what. */
export interface NewPlan {
  plugin: { file: string; content: string };
  /** A test running the plugin against the saved pages in `fixtures`, served by a local fixture site. */
  test: { file: string; content: string };
  /** Saved pages for the test (test/fixtures/<name>/ in the repository, ./fixtures/<name>/ elsewhere). */
  fixtures: Array<{ file: string; content: string }>;
}

/** Plans `imgdl new <name>` run from `cwd`: inside the repository, plugins/ and test/; elsewhere ./<name>.ts. */
export function planNew(name: string, cwd = process.cwd()): NewPlan {
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name)) {
    throw new UsageError(`Expected a plugin name of lower-case letters, digits and dashes (like my-site), got ${JSON.stringify(name)}`);
  }
  const template = fs.readFileSync(path.join(PLUGINS_DIR, '_template.ts'), 'utf8');
  const inRepo = isInside(fs.realpathSync(cwd), fs.realpathSync(REPO_ROOT));
  if (inRepo && builtinNames().includes(name)) throw new UsageError(`A plugin named ${name} exists already: plugins/${name}.ts`);
  // Outside an ES module package a .ts file is CommonJS to Node, which cannot load imgdl's ESM sources: .mts is ESM everywhere.
  const ext = inRepo || packageType(cwd) === 'module' ? '.ts' : '.mts';
  const file = inRepo ? path.join(PLUGINS_DIR, `${name}.ts`) : path.resolve(cwd, `${name}${ext}`);
  const content = template
    .replace(/^\/\/ A site plugin, started by .*$/m, `// The ${name} plugin. Run it: \`imgdl run ${inRepo ? name : `./${name}${ext}`} --start-url URL\`.`)
    .replace("name: 'template'", `name: '${name}'`)
    .replace("from '../src/plugin/index.ts'", `from '${inRepo ? '../src/plugin/index.ts' : importForOutside(cwd)}'`);
  if (!content.includes(`name: '${name}'`)) throw new Error('plugins/_template.ts has changed: its `name` line was not found');
  const testDir = inRepo ? path.join(REPO_ROOT, 'test') : path.resolve(cwd);
  const outside = importForOutside(cwd);
  const imports = inRepo
    ? { plugin: `../plugins/${name}.ts`, testing: '../src/testing/index.ts', api: '../src/plugin/index.ts' }
    : { plugin: `./${name}${ext}`, testing: outside === 'imgdl' ? 'imgdl/testing' : path.join(REPO_ROOT, 'src', 'testing', 'index.ts'), api: outside };
  const fixtures = `fixtures/${name}`;
  return {
    plugin: { file, content },
    test: { file: path.join(testDir, `${name}.test${ext}`), content: testTemplate(name, imports, fixtures) },
    fixtures: fixturePages().map(([rel, html]) => ({ file: path.join(testDir, fixtures, rel), content: html })),
  };
}

/** `imgdl new <name>` */
export async function cmdNew(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(NEW_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`Give one plugin name: imgdl new <name>. See \`imgdl new --help\`.`);
  const plan = planNew(positionals[0]!);
  const files = [plan.plugin, plan.test, ...plan.fixtures];
  for (const f of files) {
    if (fs.existsSync(f.file)) throw new UsageError(`${path.relative(process.cwd(), f.file) || f.file} exists already; not overwriting it`);
  }
  for (const f of files) {
    fs.mkdirSync(path.dirname(f.file), { recursive: true });
    // 'wx': fails rather than overwrite a file that appeared meanwhile.
    fs.writeFileSync(f.file, f.content, { flag: 'wx' });
  }
  note(`Wrote ${path.relative(process.cwd(), plan.plugin.file)}, ${path.relative(process.cwd(), plan.test.file)} and its saved pages in ${path.relative(process.cwd(), path.dirname(plan.fixtures[0]!.file)) || '.'}/`);
  const inRepo = plan.plugin.file.startsWith(PLUGINS_DIR + path.sep);
  const runAs = inRepo ? positionals[0]! : `./${path.basename(plan.plugin.file)}`;
  note(`Next: edit it, then \`imgdl run ${runAs} --help\` and \`node --import tsx --test ${path.relative(process.cwd(), plan.test.file)}\`. Guide: docs/plugins.md`);
  return 0;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Outside the repository a plugin imports the `imgdl` package when it is installed there, else this copy's files. */
function importForOutside(cwd: string): string {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'node_modules', 'imgdl', 'package.json'))) return 'imgdl';
    if (path.dirname(dir) === dir) break;
  }
  return path.join(REPO_ROOT, 'src', 'plugin', 'index.ts');
}

/** Saved pages for the template plugin's test: a listing, its next page and two photo pages (images are made up by the fixture site). */
function fixturePages(): Array<[string, string]> {
  const page = (title: string, body: string) => `<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>${title}</title></head>\n<body>\n${body}\n</body>\n</html>\n`;
  return [
    ['list.html', page('Photos', '<a class="photo" href="/photo/1">Red kite</a>\n<a rel="next" href="list2">Older photos</a>')],
    ['list2.html', page('Photos, page 2', '<a class="photo" href="photo/2">Barn owl</a>')],
    ['photo/1.html', page('Red kite', '<h1>Red kite</h1>\n<img class="main" src="/img/kite.png" alt="A red kite">')],
    ['photo/2.html', page('Barn owl', '<h1>Barn owl</h1>\n<img class="main" src="/img/owl.jpg" alt="A barn owl">')],
  ];
}

function testTemplate(name: string, imports: { plugin: string; testing: string; api: string }, fixtures: string): string {
  return `// Runs the ${name} plugin against pages saved from its site (${fixtures}/), served on 127.0.0.1 by a local
// fixture site: no real host is ever asked. Save real pages there (replace the site's address in them by {{origin}},
// or keep their links relative); images the folder has no file for are made up. Run: node --import tsx --test <this file>
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFixtureSite } from '${imports.testing}';
import { runPlugin } from '${imports.api}';
import plugin from '${imports.plugin}';

test('${name}: follows the listing and its next page, saves each photo with its metadata', async () => {
  const site = await startFixtureSite(path.join(import.meta.dirname, '${fixtures}'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-${name}-'));
  try {
    const summary = await runPlugin(plugin, {
      options: { startUrl: site.url('/list') },
      out: path.join(dir, 'out'),
      storage: path.join(dir, 'storage'),
      log: { info() {}, warn() {}, debug() {} },
    });
    assert.equal(summary.failed, 0);
    assert.equal(summary.pagesFailed, undefined);
    assert.equal(summary.downloaded, 2);
    const files = fs.readdirSync(path.join(dir, 'out')).filter((f) => !f.endsWith('.jsonl') && f !== 'stats.json' && f !== 'report.html').sort();
    assert.deepEqual(files, ['Barn owl.jpg', 'Red kite.png']);
    const records = fs.readFileSync(path.join(dir, 'out', 'metadata.jsonl'), 'utf8').trim().split('\\n').map((l) => JSON.parse(l) as { file: string; metadata: { title: string } });
    assert.equal(records.find((r) => r.file === 'Red kite.png')?.metadata.title, 'Red kite');
    assert.equal(site.count('/photo/'), 2, 'each photo page fetched once');
  } finally {
    await site.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
`;
}
