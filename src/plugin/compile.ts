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

/** Compiles the plugin file and returns the URL of the module to import. */
export async function compilePlugin(file: string): Promise<string> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
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
  const dir = path.join(os.tmpdir(), 'imgdl-plugins');
  const out = path.join(dir, name);
  if (!fs.existsSync(out)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, code);
    fs.renameSync(tmp, out);
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
