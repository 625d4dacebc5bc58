import fs from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError } from '../errors.ts';
import { compilePlugin, needsCompiling } from './compile.ts';
import { validatePlugin } from './options.ts';
import type { AnyPlugin } from './types.ts';

/**
 * The repository's root, found from this module (src/plugin/loader.ts, or dist/src/plugin/loader.js when built),
 * not from the working directory.
 */
export const REPO_ROOT = ((dir: string) => (path.basename(dir) === 'dist' ? path.dirname(dir) : dir))(
  fileURLToPath(new URL('../../', import.meta.url)).replace(/[\\/]$/, ''),
);
/** Where built-in plugins live: one file each, `plugins/<name>.ts`; files starting with `_` are not plugins. */
export const PLUGINS_DIR = path.join(REPO_ROOT, 'plugins');

/** True when the argument names a file rather than a built-in plugin. */
export function isPluginPath(nameOrPath: string): boolean {
  return /[/\\]/.test(nameOrPath) || /\.(ts|mts|js|mjs)$/.test(nameOrPath);
}

/** The names of the built-in plugins, sorted. Reads the folder only. */
export function builtinNames(): string[] {
  let files: string[];
  try {
    files = fs.readdirSync(PLUGINS_DIR);
  } catch {
    return [];
  }
  return files
    .filter((f) => f.endsWith('.ts') && !f.startsWith('_') && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

/**
 * Loads a plugin: a bare name is a built-in (`flags` → `plugins/flags.ts` of this repository); a path (with a
 * `/`, or ending in .ts/.js) is a file, resolved from the working directory. Unknown names and files that are
 * not plugins are usage errors.
 */
export async function loadPlugin(nameOrPath: string): Promise<AnyPlugin> {
  if (isPluginPath(nameOrPath)) {
    const file = path.resolve(nameOrPath);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new UsageError(`No plugin file ${nameOrPath} (looked at ${file})`);
    return validatePlugin(await importDefault(file), nameOrPath);
  }
  const known = builtinNames();
  if (!known.includes(nameOrPath)) {
    throw new UsageError(
      `Unknown plugin ${JSON.stringify(nameOrPath)}. Known plugins: ${known.join(', ') || 'none'}. ` +
        'To run a plugin file, give its path (./my-site.ts); `imgdl new NAME` starts one.',
    );
  }
  const file = path.join(PLUGINS_DIR, `${nameOrPath}.ts`);
  const plugin = validatePlugin(await importDefault(file), `plugins/${nameOrPath}.ts`);
  if (plugin.name !== nameOrPath) {
    throw new UsageError(`plugins/${nameOrPath}.ts is named ${JSON.stringify(plugin.name)}: a built-in plugin's name is its file name`);
  }
  return plugin;
}

async function importDefault(file: string): Promise<unknown> {
  if (needsCompiling()) {
    let url: string;
    try {
      url = await compilePlugin(file);
    } catch (error) {
      throw new UsageError(`Could not compile the plugin ${file}: ${(error as Error).message}`);
    }
    return ((await import(url)) as { default?: unknown }).default;
  }
  let url = pathToFileURL(file).href;
  // A .ts/.js file outside an ESM package ("type": "module"), e.g. ./my-site.ts in a bare folder, is CommonJS to
  // Node and tsx, and CommonJS cannot load imgdl's ESM sources: such a file is asked for as ESM (works on Node 20
  // and 24; .mts files are ESM everywhere).
  const hinted = needsEsmHint(file);
  if (hinted) url = `${url}?${ESM_HINT}`;
  try {
    return ((await import(url)) as { default?: unknown }).default;
  } catch (error) {
    // Node 22's tsx ignores the hint: say what works everywhere.
    const hint = hinted ? ` (it is not in an ES module package: rename it to .mts, or add "type": "module" to a package.json above it)` : '';
    throw new Error(`Could not load the plugin ${file}${hint}: ${(error as Error).message}`, { cause: error });
  }
}

const ESM_HINT = 'imgdl-format=module';
let hinting = false;

/** True on Node for a .ts/.js file whose package scope is not ESM; registers the resolve hook that makes it ESM. */
function needsEsmHint(file: string): boolean {
  // Bun and Deno load TypeScript files as ESM whatever the package says.
  if ('Bun' in globalThis || 'Deno' in globalThis || typeof register !== 'function') return false;
  if (!/\.(ts|js)$/.test(file) || packageType(path.dirname(file)) === 'module') return false;
  if (!hinting) {
    const hook = `export async function resolve(specifier, context, next) {
      const resolved = await next(specifier, context);
      return resolved.url.endsWith(${JSON.stringify(`?${ESM_HINT}`)}) ? { ...resolved, format: 'module' } : resolved;
    }`;
    register(`data:text/javascript,${encodeURIComponent(hook)}`);
    hinting = true;
  }
  return true;
}

/** The `type` of the package.json nearest to `dir` ("commonjs" when there is none). */
export function packageType(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    const pkg = path.join(d, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { type?: string }).type ?? 'commonjs';
      } catch {
        return 'commonjs';
      }
    }
    if (path.dirname(d) === d) return 'commonjs';
  }
}

export interface PluginListing {
  name: string;
  description: string;
  file: string;
  /** Set when the file could not be loaded or is not a plugin. */
  error?: string;
}

/** The built-in plugins with their descriptions (loading each: no network). */
export async function listPlugins(): Promise<PluginListing[]> {
  const out: PluginListing[] = [];
  for (const name of builtinNames()) {
    const file = path.join(PLUGINS_DIR, `${name}.ts`);
    try {
      const plugin = await loadPlugin(name);
      out.push({ name, description: plugin.description, file });
    } catch (error) {
      out.push({ name, description: '', file, error: (error as Error).message });
    }
  }
  return out;
}
