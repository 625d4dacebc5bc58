// Bundles the CLI (and the modules a plugin imports) into dist/cli/ with esbuild: one file per entry plus shared
// chunks, so a start-up parses a few large files instead of resolving ~900 small ones (Crawlee's graph is most of a
// run's start-up). Only the CLI runs from here; the library's exports stay the unbundled dist/src (a library must not
// ship copies of its dependencies). See docs/architecture.md, "Start-up".
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

/**
 * The parts of two packages the engine uses, instead of their index modules, which load (and run at start-up) all
 * they offer: undici's index loads fetch, WebSocket, caches and mocks, and one line of its cookie module makes Node
 * load its own internal copy of undici as well; @crawlee/core's loads every crawler, the autoscaled pool, sessions,
 * proxies and @crawlee/utils with cheerio. The engine needs a RequestQueue, its Configuration and an EventManager from
 * Crawlee, and Agent, Pool and ProxyAgent (with Dispatcher's request API) from undici. Only this bundle (the CLI) is
 * built so; the library (dist/src) imports the packages as they are. Together ~150 ms of a one-image start-up.
 */
const lite = {
  undici: () => {
    const dir = dirname(require.resolve('undici/package.json'));
    const lib = (path) => JSON.stringify(join(dir, 'lib', path));
    return `'use strict';
const Dispatcher = require(${lib('dispatcher/dispatcher.js')});
Object.assign(Dispatcher.prototype, require(${lib('api/index.js')}));
module.exports = { Dispatcher, Agent: require(${lib('dispatcher/agent.js')}), Pool: require(${lib('dispatcher/pool.js')}), ProxyAgent: require(${lib('dispatcher/proxy-agent.js')}), errors: require(${lib('core/errors.js')}) };
`;
  },
  '@crawlee/core': () => {
    const dir = dirname(require.resolve('@crawlee/core/package.json'));
    const file = (path) => JSON.stringify(join(dir, path));
    return `'use strict';
module.exports = { Configuration: require(${file('configuration.js')}).Configuration, EventManager: require(${file('events/event_manager.js')}).EventManager, RequestQueue: require(${file('storages/request_queue_v2.js')}).RequestQueue };
`;
  },
  // What Crawlee's modules above import of @crawlee/utils: all of it but its HTML helpers (cheerio and what uses it:
  // Open Graph, social handles), which the queue never calls.
  '@crawlee/utils': () => {
    const dir = dirname(require.resolve('@crawlee/utils/package.json'));
    const skip = new Set(['./internals/cheerio', './internals/open_graph_parser', './internals/social']);
    const index = readFileSync(join(dir, 'index.js'), 'utf8');
    const parts = [...index.matchAll(/require\("(\.\/internals\/[^"]+)"\)/g)].map((m) => m[1]).filter((p) => !skip.has(p));
    if (!index.includes('./internals/cheerio') || parts.length < 8) throw new Error('@crawlee/utils changed: review the lite entry in scripts/bundle.mjs');
    return `'use strict';
${parts.map((p) => `Object.assign(module.exports, require(${JSON.stringify(join(dir, p))}));`).join('\n')}
`;
  },
};

/**
 * Resolves `undici` and `@crawlee/core` imported by imgdl's own sources, and `@crawlee/utils` imported by Crawlee's
 * own modules, to the entries above.
 */
const litePackages = {
  name: 'lite-packages',
  setup(b) {
    const crawlee = join(root, 'node_modules', '@crawlee');
    b.onResolve({ filter: /^(undici|@crawlee\/core|@crawlee\/utils)$/ }, (args) => {
      const mine = args.importer.startsWith(join(root, 'src'));
      if (args.path === '@crawlee/utils' ? args.importer.startsWith(crawlee) : mine) return { path: args.path, namespace: 'imgdl-lite' };
      return undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'imgdl-lite' }, (args) => ({ contents: lite[args.path](), loader: 'js', resolveDir: root }));
  },
};
const outdir = `${root}dist/cli`;
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  // IMGDL_BUNDLE_META=1 writes esbuild's metafile (which package went into which chunk) next to the bundle.
  metafile: process.env.IMGDL_BUNDLE_META === '1',
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
  plugins: [litePackages],
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require() for Node's own modules.
  banner: { js: "import { createRequire as __imgdlRequire } from 'node:module'; const require = __imgdlRequire(import.meta.url);" },
});
if (result.metafile) writeFileSync(`${outdir}/meta.json`, JSON.stringify(result.metafile));
