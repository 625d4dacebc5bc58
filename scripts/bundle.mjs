// Bundles the CLI (and the modules a plugin imports) into dist/cli/ with esbuild: one file per entry plus shared
// chunks, so a start-up parses a few large files instead of resolving ~900 small ones (Crawlee's graph is most of a
// run's start-up). Only the CLI runs from here; the library's exports stay the unbundled dist/src (a library must not
// ship copies of its dependencies). See docs/architecture.md, "Start-up".
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/cli`;
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { main: 'src/cli/main.ts', index: 'src/index.ts', plugin: 'src/plugin/index.ts', html: 'src/plugin/html.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Left as imports, resolved from node_modules at run time: native addons (better-sqlite3, sharp) and esbuild; the
  // optional features' packages, loaded only when used and maybe not installed (sharp, bullmq, ioredis, the AWS SDK
  // for s3:// outputs); got-scraping
  // (Crawlee's, never used by imgdl) reads data files next to its own code.
  external: ['better-sqlite3', 'bun:*', 'esbuild', 'got-scraping', 'sharp', 'bullmq', 'ioredis', '@aws-sdk/*'],
  minifyWhitespace: process.env.MW !== '0',
  minifySyntax: process.env.MS !== '0',
  minifyIdentifiers: process.env.MI === '1',
  keepNames: process.env.KN !== '0',
  legalComments: 'none',
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require() for Node's own modules.
  banner: { js: "import { createRequire as __imgdlRequire } from 'node:module'; const require = __imgdlRequire(import.meta.url);" },
});
