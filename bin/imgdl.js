#!/usr/bin/env node
// Runs imgdl: on Bun and Deno from the TypeScript sources natively; on Node from dist/ (plain JS that
// `npm ci` builds through `prepare`) for the commands that load no TypeScript, else through tsx.
//   node bin/imgdl.js …            (or `npx imgdl …`)
//   bun bin/imgdl.js …
//   deno run -A bin/imgdl.js …     (or --allow-read --allow-write --allow-net --allow-env --allow-sys)
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Run state is in node:sqlite on Node 22.13+, and Node 22 warns on every run that it is experimental (Node 24
// does not). The AWS SDK (s3:// outputs) warns on Node 20 on every run that its releases after early January 2027
// need Node 22 (the README says so). The CLI drops those two warnings, here at its edge (the library never touches
// process warnings), so that an error stays one line; every other warning still reaches the runtime's own printer,
// which still honours --no-warnings, --trace-warnings etc.
const printWarning = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning' && warning.message.startsWith('SQLite is an experimental feature')) return;
  if (warning.message.startsWith('NodeVersionSupportWarning: The AWS SDK for JavaScript')) return;
  for (const print of printWarning) print.call(process, warning);
});

const { Bun, Deno } = /** @type {{ Bun?: unknown, Deno?: { permissions: { querySync(d: { name: string }): { state: string } } } }} */ (globalThis);
if (Deno && !['read', 'write', 'net', 'env', 'sys'].some((name) => Deno.permissions.querySync({ name }).state === 'granted')) {
  // No permission at all: rather than dozens of prompts (or a stack trace without a terminal), say what works.
  console.error('imgdl: on Deno, run it with permissions: deno run -A bin/imgdl.js … ' +
    '(or --allow-read --allow-write --allow-net --allow-env --allow-sys)');
  process.exit(2);
}

const args = process.argv.slice(2);

/**
 * Why dist/ cannot run, or null when it can: it must hold a build at least as new as every file under src/.
 * The build (dist/cli, one bundle) saves Node about 0.5 s and 30-40 MB per run (no TypeScript loader thread, a few
 * files to load instead of ~900; plugins are compiled by esbuild when loaded, src/plugin/compile.ts); a checkout
 * edited since its last build runs its sources instead, so it never runs stale code. IMGDL_SOURCES=1 always
 * runs the sources; IMGDL_DEBUG=1 says on stderr which ran and why.
 */
function whyNotPrebuilt() {
  const root = fileURLToPath(new URL('..', import.meta.url));
  // An installed copy (npm install imgdl) is never edited, and npm does not keep the package's file times (its src/
  // is unpacked after dist/): its build is current. Deno cannot strip types under node_modules, so it needs it too.
  const installed = /[\\/]node_modules[\\/]/.test(root);
  if (Bun || (Deno && !installed)) return 'Bun and Deno run TypeScript natively';
  if (process.env.IMGDL_SOURCES === '1') return 'IMGDL_SOURCES=1';
  const built = statSync(`${root}dist/.built`, { throwIfNoEntry: false });
  if (!built) return 'no build in dist/ (npm run build)';
  if (installed) return null;
  for (const name of readdirSync(`${root}src`, { recursive: true })) {
    if (statSync(`${root}src/${name}`).mtimeMs > built.mtimeMs) return `src/${name} is newer than dist/ (npm run build)`;
  }
  return null;
}

// Node 22.1+ can keep V8's compiled code of the modules it loads (Crawlee's graph is most of a run's start-up): about
// 0.2 s of 1.1 s for `imgdl get` of one URL on Node 22 here. The cache lives in the OS temporary folder; Node 20
// and the other runtimes have none, and skip this. A process-wide setting, so it is made here, at the CLI's edge.
if (!Bun && !Deno) {
  const { enableCompileCache } = /** @type {{ enableCompileCache?: () => unknown }} */ (await import('node:module'));
  try {
    enableCompileCache?.();
  } catch {
    // A cache that cannot be written costs nothing but the speed-up.
  }
}

// undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it with its baseline compiler (Liftoff), and
// soon after also with its optimizing one (TurboFan) on a background thread; a process waits for that compilation
// before it exits: 0.2-0.4 s of CPU and wall after the work of a run of a few images is done (measured on Node 20
// with strace: last file written to exit, 3 images 200-400 ms, 1 image 22 ms; raising the tiering budget tenfold, as
// imgdl did until 2026-11-29, or turning tier-up off did not stop it). Liftoff's code parses a response about as fast
// for imgdl's purposes: W1-sized runs took the same user CPU with and without it. A process-wide V8 setting, so it is
// made here, at the CLI's edge; the library leaves the runtime's defaults alone.
if (!Bun && !Deno) {
  try {
    (await import('node:v8')).setFlagsFromString('--liftoff-only');
  } catch {
    // A runtime without the flag keeps its default.
  }
}

const why = whyNotPrebuilt();
if (process.env.IMGDL_DEBUG === '1') console.error(why ? `imgdl: running the sources: ${why}` : 'imgdl: running dist/');
let main;
if (why === null) {
  // One bundle (scripts/bundle.mjs): a few large files load faster than the ~900 modules of dist/src and its packages.
  ({ main } = await import('../dist/cli/main.js'));
} else {
  if (!Bun && !Deno) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(args);
