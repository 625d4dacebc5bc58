import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Plugins are TypeScript files. Bun and Deno import them as they are; Node 20 cannot, and a TypeScript loader (tsx)
 * runs every module of the process through a second thread, the engine's and Crawlee's included: about 0.5-1 s of
 * start-up and a slower run. So on Node a plugin is compiled once, when it is loaded, by esbuild (tsx's own compiler,
 * a dependency already): the plugin and its own local files become one ES module, and every other import stays an
 * import, resolved now from the plugin's folder (so a plugin's own dependencies are found where it lives):
 * - imports of this engine (`imgdl`, `imgdl/plugin`, `imgdl/html`, or this repository's `src/…` as the built-in plugins
 *   write it) go to the copy of the engine that is running, so the plugin and the engine share one set of modules;
 * - packages and Node's own modules stay imports of the files they resolve to.
 * The result goes to a file named by its content in the OS temporary folder (written once, atomically) and is
 * imported from there.
 */

/** Where the running engine's modules are: this file is src/plugin/compile.ts, dist/src/plugin/compile.js or a chunk of dist/cli/. */
const HERE = fileURLToPath(import.meta.url);
const BUNDLED = path.basename(path.dirname(HERE)) === 'cli' && path.basename(path.dirname(path.dirname(HERE))) === 'dist';
const UP_TWO = path.resolve(path.dirname(HERE), '..', '..');
/** The package's root: above src/, dist/src/ or dist/cli/. */
const ROOT = path.basename(UP_TWO) === 'dist' ? path.dirname(UP_TWO) : UP_TWO;
const SOURCES = path.join(ROOT, 'src');

/** The entry modules of dist/cli (scripts/bundle.mjs) for the engine modules a plugin may import. */
const BUNDLE_ENTRIES: Record<string, string> = { 'index.ts': 'index.js', 'plugin/index.ts': 'plugin.js', 'plugin/html.ts': 'html.js' };
const PACKAGE_SUBPATHS: Record<string, string> = { imgdl: 'index.ts', 'imgdl/plugin': 'plugin/index.ts', 'imgdl/html': 'plugin/html.ts' };

/** True when plugins must be compiled before import: Node running plain JavaScript (not Bun, Deno or tsx). */
export function needsCompiling(): boolean {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined || g.Deno !== undefined) return false;
  return !HERE.endsWith('.ts');
}

/**
 * What a compiled plugin was made of: the files esbuild read (the plugin and its own local imports) with their size
 * and modification time, and the engine build it was compiled against (imports of the engine point into that build's
 * files). Kept beside the compiled module, named after the plugin's path, so the next run imports the module without
 * starting esbuild at all (its service process costs a one-flag `run` ~0.2 s) while nothing it was made of changed.
 */
interface Manifest {
  engine: string;
  inputs: Record<string, [size: number, mtimeMs: number]>;
  module: string;
}

/** The engine build a compiled plugin depends on: the file that holds this module (a bundle chunk, or dist/src). */
function engineStamp(): string {
  const stat = fs.statSync(HERE, { throwIfNoEntry: false });
  return `${HERE}:${stat?.size ?? 0}:${stat?.mtimeMs ?? 0}`;
}

function fileStamp(file: string): [number, number] | undefined {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  return stat ? [stat.size, stat.mtimeMs] : undefined;
}

/** The compiled module of `file` from an earlier run, if nothing it was made of changed since. */
function cached(manifestFile: string): string | undefined {
  try {
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as Manifest;
    if (manifest.engine !== engineStamp() || !fs.existsSync(manifest.module)) return undefined;
    for (const [input, [size, mtimeMs]] of Object.entries(manifest.inputs)) {
      const now = fileStamp(input);
      if (!now || now[0] !== size || now[1] !== mtimeMs) return undefined;
    }
    return pathToFileURL(manifest.module).href;
  } catch {
    return undefined;
  }
}

/** Writes `text` to `file` atomically (a temporary name, then a rename). */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** Compiles the plugin file (or takes its compiled module from an earlier run) and returns the URL to import. */
export async function compilePlugin(file: string): Promise<string> {
  const dir = path.join(os.tmpdir(), 'imgdl-plugins');
  const absolute = path.resolve(file);
  const manifestFile = path.join(dir, `${path.basename(file).replace(/[^\w.-]/g, '_')}-${createHash('sha256').update(absolute).digest('hex').slice(0, 16)}.json`);
  const hit = cached(manifestFile);
  if (hit) return hit;
  // Stamped before compiling: a file edited while esbuild reads it makes a stale stamp, never a stale hit.
  const engine = engineStamp();
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    metafile: true,
    entryPoints: [file],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    sourcemap: 'inline',
    sourcesContent: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'imgdl-imports',
        setup(build) {
          build.onResolve({ filter: /.*/ }, async (args) => {
            if (args.kind === 'entry-point' || args.pluginData === 'inner') return undefined;
            const spec = args.path;
            if (spec.startsWith('node:') || builtinModules.includes(spec) || builtinModules.includes(spec.split('/')[0]!)) return { path: spec, external: true };
            const subpath = PACKAGE_SUBPATHS[spec];
            if (subpath !== undefined && ownsPackage(args.resolveDir)) return engineModule(subpath);
            const resolved = await build.resolve(spec, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'inner' });
            if (resolved.errors.length > 0) return { errors: resolved.errors };
            if (resolved.external || resolved.path === '') return { path: spec, external: true };
            const inEngine = path.relative(SOURCES, resolved.path);
            if (!inEngine.startsWith('..') && !path.isAbsolute(inEngine)) return engineModule(inEngine.split(path.sep).join('/'));
            // The plugin's own files are compiled in; packages stay imports of the files they resolve to.
            if (/[\\/]node_modules[\\/]/.test(resolved.path)) return { path: pathToFileURL(resolved.path).href, external: true };
            return { path: resolved.path };
          });
        },
      },
    ],
  });
  const code = result.outputFiles[0]!.text;
  const name = `${path.basename(file).replace(/\.[^.]+$/, '').replace(/[^\w.-]/g, '_')}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`;
  const out = path.join(dir, name);
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(out)) writeAtomically(out, code);
  const inputs: Manifest['inputs'] = {};
  for (const input of Object.keys(result.metafile?.inputs ?? {})) {
    const full = path.resolve(input);
    const stamp = fileStamp(full);
    if (stamp) inputs[full] = stamp;
  }
  // A cache that cannot be written costs the next run a compilation, nothing else.
  if (inputs[absolute]) {
    try {
      writeAtomically(manifestFile, JSON.stringify({ engine, inputs, module: out } satisfies Manifest));
    } catch {
      // See above.
    }
  }
  return pathToFileURL(out).href;
}

/** True when `imgdl` imported from `dir` is this very package (a plugin of this repository, or of a project that installed it). */
function ownsPackage(dir: string): boolean {
  for (let at = dir; ; at = path.dirname(at)) {
    if (at === ROOT) return true;
    const installed = path.join(at, 'node_modules', 'imgdl');
    if (fs.existsSync(installed)) return fs.realpathSync(installed) === fs.realpathSync(ROOT);
    if (path.dirname(at) === at) return false;
  }
}

/** The running copy of the engine module `src/<rel>` (rel like `plugin/index.ts`). */
function engineModule(rel: string): { path: string; external: true } {
  if (BUNDLED) {
    const entry = BUNDLE_ENTRIES[rel];
    if (entry !== undefined) return { path: pathToFileURL(path.join(ROOT, 'dist', 'cli', entry)).href, external: true };
  }
  // Not an entry of the bundle (a deep import), or not bundled: the engine's compiled module of that name.
  const js = rel.replace(/\.ts$/, '.js');
  return { path: pathToFileURL(path.join(ROOT, 'dist', 'src', js)).href, external: true };
}
