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
  // Crawlee's EventManager keeps its listeners in an AsyncEventEmitter, whose package also bundles a copy of Node's
  // util.inspect and sets it up at load (~35 ms of a start-up). imgdl's EventManager (crawl.ts) never emits: Node's
  // own EventEmitter holds its listeners, with the one method more that EventManager.close() awaits.
  '@vladfrangu/async_event_emitter': () => `'use strict';
const { EventEmitter } = require('node:events');
class AsyncEventEmitter extends EventEmitter {
  async waitForAllListenersToComplete() {
    return false;
  }
}
module.exports = { AsyncEventEmitter };
`,
  // Crawlee checks the arguments of every call into a RequestQueue (and of every Request it builds) with ow, whose
  // predicates are built anew on each call: ~8% of the main thread of a plugin run of 194 pages (W8), for arguments
  // that, in this bundle, only imgdl's own typed code passes (crawl.ts; plugins reach the queue through it). Here a
  // check passes whatever it is given. The library (dist/src) and the sources keep the real ow, and the tests run both.
  ow: () => `'use strict';
const pass = new Proxy(function () {}, {
  get: (_, key) => (key === 'isValid' ? () => true : key === 'then' ? undefined : pass),
  // Predicates chain (ow.number.greaterThanOrEqual(0).lessThanOrEqual(6)); ow(value, predicate) returns nothing used.
  apply: () => pass,
});
class ArgumentError extends Error {}
module.exports = { __esModule: true, default: pass, Predicate: class Predicate {}, ArgumentError };
`,
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

/** As crawl.ts's shrinkSeenCache. */
const SEEN_CACHE_SLOTS = 4096;

/**
 * Packages that Crawlee's modules require when they load but that a run of imgdl calls only on paths it never takes
 * (tldts: enqueueLinks' same-domain checks; mime-types, json5: the memory storage's key-value files, which imgdl's
 * store replaces; sax: sitemaps; proper-lockfile: the memory storage's files on disk; @crawlee/memory-storage itself,
 * Configuration's default storage, which imgdl replaces by its own, crawlee-client.ts; @apify/ps-tree and Node's
 * child_process: memory figures for the autoscaled pool; Node's zlib: gzipped sitemaps): each is given to Crawlee as a
 * stand-in that loads the real package the first time anything of it is used (anything of them used still works,
 * only later). With the entries above: a one-image start-up's CPU 0.58 → 0.33 s (docs/architecture.md, "Start-up").
 */
const LAZY = ['tldts', 'mime-types', 'json5', 'sax', 'proper-lockfile', '@crawlee/memory-storage', '@apify/ps-tree', 'node:child_process', 'node:zlib'];

/**
 * What a stand-in answers without loading its module, read from the module when bundling: undici reads HTTP/2's
 * constants from node:http2 when it loads (protocol numbers and header names, the same in every Node), and uses the
 * module itself only for an HTTP/2 connection, which imgdl never asks for (loading http2 and the tls it loads: ~20 ms).
 */
const KNOWN = { 'node:http2': (real) => ({ constants: real.constants }) };

function lazyEntry(name, resolveDir) {
  const file = name.startsWith('node:') ? name : require.resolve(name, { paths: [resolveDir] });
  const real = require(file);
  // What tslib's interop asks of a module (its __esModule mark) is answered without loading it too.
  const known = { __esModule: real.__esModule === true, ...KNOWN[name]?.(real) };
  const target = typeof real === 'function' ? 'function () {}' : '{}';
  return `'use strict';
const known = ${JSON.stringify(known)};
let real;
const load = () => (real ??= require(${JSON.stringify(file)}));
module.exports = new Proxy(${target}, {
  get: (_, key) => (Object.hasOwn(known, key) ? known[key] : load()[key]),
  has: (_, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, key) => {
    const d = Reflect.getOwnPropertyDescriptor(load(), key);
    return d && { ...d, configurable: true };
  },
  apply: (_, self, args) => Reflect.apply(load(), self, args),
});
`;
}

/**
 * Resolves `undici` and `@crawlee/core` imported by imgdl's own sources, and `@crawlee/utils`, the event emitter, ow
 * and the LAZY packages imported by Crawlee's own modules, to the entries above; `node:http2` imported by undici to a
 * stand-in (KNOWN); and allocates Crawlee's seen cache small.
 */
const litePackages = {
  name: 'lite-packages',
  setup(b) {
    const crawlee = join(root, 'node_modules', '@crawlee');
    b.onResolve({ filter: /^(undici|@crawlee\/core|@crawlee\/utils|@vladfrangu\/async_event_emitter|ow)$/ }, (args) => {
      const mine = args.importer.startsWith(join(root, 'src'));
      const forCrawlee = ['@crawlee/utils', '@vladfrangu/async_event_emitter', 'ow'].includes(args.path);
      if (forCrawlee ? args.importer.startsWith(crawlee) : mine) return { path: args.path, namespace: 'imgdl-lite' };
      return undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'imgdl-lite' }, (args) => ({ contents: lite[args.path](), loader: 'js', resolveDir: root }));
    // Crawlee's "seen" cache of a queue: 1,000,000 slots (16 MB) allocated when a queue opens, cut to a few thousand
    // by crawl.ts (shrinkSeenCache) right after. The bundle allocates the few thousand from the start (~10 ms and a
    // 16 MB heap spike per run).
    b.onLoad({ filter: /[\\/]@crawlee[\\/]core[\\/]storages[\\/]request_dedup_cache\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const patched = source.replace('constructor(size = 1000000)', `constructor(size = ${SEEN_CACHE_SLOTS})`);
      if (patched === source) throw new Error('@crawlee/core changed: review the request_dedup_cache patch in scripts/bundle.mjs');
      return { contents: patched, loader: 'js' };
    });
    b.onResolve({ filter: /^node:http2$/ }, (args) =>
      args.importer.includes(join('node_modules', 'undici')) ? { path: args.path, namespace: 'imgdl-lazy' } : undefined,
    );
    b.onResolve({ filter: new RegExp(`^(${LAZY.join('|')})$`) }, (args) =>
      args.importer.startsWith(crawlee) ? { path: args.path, namespace: 'imgdl-lazy', pluginData: args.resolveDir } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'imgdl-lazy' }, (args) => ({ contents: lazyEntry(args.path, args.pluginData), loader: 'js', resolveDir: root }));
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
