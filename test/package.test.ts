// The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), `npm install <tgz>` in a fresh
// project, and a one-file .mjs script that imports `imgdl`, `imgdl/html` and `imgdl/plugin`, on Node 20, 22 and 24,
// Bun and Deno: images into memory, and into a folder (run state in SQLite: better-sqlite3 on Node 20, node:sqlite on
// Node 22+ and Deno, bun:sqlite on Bun). Packed from a copy of the repository, so that the build cannot disturb the
// repository's own dist/ (other test files run it). The pack and the install are done once, for every test here.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { REPO_ROOT, readJsonl, runProcess, tmpDir, type CliResult } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

/** Bound for `npm pack` (a full tsc build) and for `npm install` of the tarball, each. */
const NPM_TIMEOUT_MS = 240_000;
/** Bound for fetching a Node with `npx -y node@N` (a no-op when npm's cache has it). */
const NPX_TIMEOUT_MS = 90_000;
/** Bound for one script run. */
const RUN_TIMEOUT_MS = 45_000;

/** The environment of every child: no npm_* variables from an enclosing `npm test` (npm_config_local_prefix and the
 * like would point npm at the repository), no run-state or HTTP-client overrides. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' };
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || ['IMGDL_STORAGE', 'CRAWLEE_STORAGE_DIR', 'IMGDL_HTTP', 'IMGDL_SOURCES', 'NODE_TEST_CONTEXT'].includes(key)) continue;
    env[key] ??= value;
  }
  return env;
}

const show = (r: CliResult) => `exit ${r.code} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

let origin: Origin;
/** The temporary project that depends on the packed imgdl. */
let project: string;
/** Why the pack or the install failed, if it did (every test then fails with it). */
let setupError: string | undefined;
/** The fixture PNG every script fetches, as the origin serves it. */
let png: { bytes: number; sha256: string };
/** Node 22 and 24 from `npx -y node@N`: the binary's path, or why there is none. */
const nodes = new Map<number, { command?: string; missing?: string }>();

async function packAndInstall(): Promise<void> {
  // A copy of what `npm pack` reads (package.json `files`, and the build's inputs), with the repository's node_modules.
  const copy = tmpDir('imgdl-pack-');
  for (const entry of ['bin', 'src', 'plugins', 'scripts', 'README.md', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
    fs.cpSync(path.join(REPO_ROOT, entry), path.join(copy, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  const packs = tmpDir('imgdl-tgz-');
  const pack = await runProcess('npm', ['pack', '--pack-destination', packs], { cwd: copy, env: childEnv(), timeoutMs: NPM_TIMEOUT_MS });
  const tgz = fs.readdirSync(packs).find((f) => f.endsWith('.tgz'));
  if (pack.code !== 0 || !tgz) throw new Error(`npm pack failed: ${show(pack)}`);

  project = tmpDir('imgdl-project-');
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-imgdl', private: true, type: 'module' }));
  // --prefer-offline: npm's cache answers for what it has (the repository's own install filled it).
  const install = await runProcess('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(packs, tgz)], {
    cwd: project,
    env: childEnv(),
    timeoutMs: NPM_TIMEOUT_MS,
  });
  if (install.code !== 0) throw new Error(`npm install ${tgz} failed: ${show(install)}`);
}

async function findNode(major: number): Promise<void> {
  const run = await runProcess('npx', ['-y', `node@${major}`, '-p', 'process.execPath'], { cwd: tmpDir('imgdl-npx-'), env: childEnv(), timeoutMs: NPX_TIMEOUT_MS });
  const command = run.stdout.trim().split('\n').pop() ?? '';
  if (run.code === 0 && fs.existsSync(command)) nodes.set(major, { command });
  else nodes.set(major, { missing: `npx -y node@${major} could not fetch Node ${major} (${run.timedOut ? 'timed out' : `exit ${run.code}`}: ${run.stderr.trim().split('\n').pop()})` });
}

before(async () => {
  origin = await startOrigin();
  const res = await fetch(origin.url('/img/pkg.png'));
  const body = new Uint8Array(await res.arrayBuffer());
  png = { bytes: body.length, sha256: sha256(body) };
  const [setup] = await Promise.allSettled([packAndInstall(), findNode(22), findNode(24)]);
  if (setup.status === 'rejected') setupError = (setup.reason as Error).message;
});

after(async () => {
  await origin?.close();
});

function installed(): string {
  assert.equal(setupError, undefined, setupError);
  return path.join(project, 'node_modules', 'imgdl');
}

// ------------------------------------------------------------------ what the tarball holds

test('npm pack builds dist/ (JS and .d.ts) and ships it with the sources, bin and plugins; better-sqlite3 is an optional peer', () => {
  const pkg = installed();
  for (const file of ['dist/.built', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/plugin/html.js', 'dist/src/plugin/html.d.ts', 'dist/src/plugin/index.js', 'dist/src/testing/index.js', 'dist/src/testing/index.d.ts', 'dist/src/cli/main.js', 'src/index.ts', 'src/plugin/html.ts', 'bin/imgdl.js', 'plugins/gallery.ts', 'plugins/site.ts']) {
    assert.ok(fs.existsSync(path.join(pkg, file)), `the package has ${file}`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(manifest['exports']!), ['.', './html', './plugin', './testing', './package.json']);
  assert.equal(manifest['dependencies']!['better-sqlite3'], undefined, 'not a dependency: nothing to compile on install');
  assert.deepEqual(manifest['peerDependenciesMeta']!['better-sqlite3'], { optional: true });
  assert.ok(!fs.existsSync(path.join(project, 'node_modules', 'better-sqlite3')), 'npm did not install the optional peer');
});

test('every module in dist/ loads on plain Node 20: no TypeScript loader, no import of a .ts path', async () => {
  const pkg = installed();
  const files = fs.readdirSync(path.join(pkg, 'dist'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'));
  assert.ok(files.length > 20, `dist/ has ${files.length} modules`);
  fs.writeFileSync(
    path.join(project, 'load-all.mjs'),
    `for (const file of ${JSON.stringify(files)}) await import(new URL(file, new URL('./node_modules/imgdl/dist/', import.meta.url)));\n`,
  );
  const run = await runProcess(process.execPath, ['load-all.mjs'], { cwd: project, env: childEnv(), timeoutMs: RUN_TIMEOUT_MS });
  assert.equal(run.code, 0, show(run));
});

test('the `types` condition: a TypeScript project type-checks against dist/*.d.ts, types intact through their imports', async () => {
  installed();
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2023'], strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(REPO_ROOT, 'node_modules', '@types')] },
      files: ['check.ts'],
    }),
  );
  fs.writeFileSync(
    path.join(project, 'check.ts'),
    `import { fetchImages, download, type ImageResult } from 'imgdl';
import { parseSrcset, largestCandidate, type SrcsetCandidate } from 'imgdl/html';
import { definePlugin } from 'imgdl/plugin';
const results: ImageResult[] = await fetchImages(['http://127.0.0.1/x.png']);
const best: SrcsetCandidate | undefined = largestCandidate(parseSrcset('a.png 1x'));
// @ts-expect-error \`downloaded\` is a number (its type comes through dist/src/get.d.ts's imports): not \`any\`
const downloaded: string = (await download([])).summary.downloaded;
void definePlugin, results, best, downloaded;
`,
  );
  const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const run = await runProcess(process.execPath, [tsc, '-p', '.'], { cwd: project, env: childEnv(), timeoutMs: RUN_TIMEOUT_MS });
  assert.equal(run.code, 0, show(run));
});

// ------------------------------------------------------------------ a one-file script on every runtime

const SCRIPT = `import { createHash } from 'node:crypto';
import fs from 'node:fs';
import process from 'node:process';
import { download, fetchImages } from 'imgdl';
import { largestCandidate, looksLikeImage, parseSrcset } from 'imgdl/html';
import { definePlugin } from 'imgdl/plugin';

const [image, missing, out, storage] = process.argv.slice(2);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const memory = (await fetchImages([image, missing])).map((r) =>
  r.ok ? { ok: true, name: r.name, bytes: r.data.length, sha256: sha256(r.data), width: r.width } : { ok: false, code: r.code, status: r.status });
let folder;
try {
  const { results } = await download([image, missing], { out, storage });
  folder = results.map((r) => (r.ok ? { ok: true, file: r.file, sha256: sha256(fs.readFileSync(r.path)) } : { ok: false, code: r.code, status: r.httpStatus }));
} catch (error) {
  folder = { error: error.message };
}
const srcset = parseSrcset('small.png 1x, big.png 2x');
console.log(JSON.stringify({
  memory,
  folder,
  html: { candidates: srcset.length, largest: largestCandidate(srcset)?.url, looksLikeImage: looksLikeImage('https://a.example/x.JPG') },
  definePlugin: typeof definePlugin,
}));
`;

/** Runs the script on `command ...args` in the project, against URLs tagged with `tag`; returns its JSON. */
async function runScript(tag: string, command: string, args: string[]) {
  fs.writeFileSync(path.join(project, 'script.mjs'), SCRIPT);
  const urls = [origin.url(`/img/pkg.png?rt=${tag}`), origin.url(`/status/404?rt=${tag}`)];
  const run = await runProcess(command, [...args, 'script.mjs', ...urls, path.join(project, `out-${tag}`), path.join(project, `state-${tag}`)], {
    cwd: project,
    env: childEnv(),
    timeoutMs: RUN_TIMEOUT_MS,
  });
  assert.equal(run.code, 0, show(run));
  const printed = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { memory: unknown; folder: unknown; html: unknown; definePlugin: string };
  assert.deepEqual(
    printed.memory,
    [{ ok: true, name: 'pkg.png', bytes: png.bytes, sha256: png.sha256, width: 8 }, { ok: false, code: 'http_status', status: 404 }],
    show(run),
  );
  assert.deepEqual(printed.html, { candidates: 2, largest: 'big.png', looksLikeImage: true });
  assert.equal(printed.definePlugin, 'function');
  return { run, folder: printed.folder, out: path.join(project, `out-${tag}`) };
}

/** The folder half of a script's result: the PNG saved with the origin's bytes, the 404 in failures.jsonl. */
function assertFolder(folder: unknown, out: string, run: CliResult): void {
  assert.deepEqual(folder, [{ ok: true, file: 'pkg.png', sha256: png.sha256 }, { ok: false, code: 'http_status', status: 404 }], show(run));
  assert.deepEqual(readJsonl(path.join(out, 'failures.jsonl')).map((f) => [f['code'], f['status']]), [['http_status', 404]]);
}

test('Node 20 without better-sqlite3: images into memory work, and a folder download says to `npm install better-sqlite3`', async (t) => {
  installed();
  if (Number(process.versions.node.split('.')[0]) >= 22) return t.skip(`this Node (${process.version}) has node:sqlite`);
  const { folder } = await runScript('node20-bare', process.execPath, []);
  const { error } = folder as { error: string };
  assert.match(error, /No SQLite driver could be loaded: .* On Node [\d.]+, run `npm install better-sqlite3` in your project, or use Node 22\.13\+/);
});

/** The repository's better-sqlite3 (a devDependency, built for this Node by `npm ci`), linked into the project as a
 * user would install it: installing it there would build it from source again (about 90 s). */
function linkBetterSqlite(t: TestContext): boolean {
  const target = path.join(REPO_ROOT, 'node_modules', 'better-sqlite3');
  if (!fs.existsSync(path.join(target, 'build', 'Release', 'better_sqlite3.node'))) {
    t.skip('the repository has no built better-sqlite3 (npm ci installs it as a devDependency)');
    return false;
  }
  const link = path.join(project, 'node_modules', 'better-sqlite3');
  if (!fs.existsSync(link)) fs.symlinkSync(target, link, 'dir');
  return true;
}

test('Node 20 (with better-sqlite3): a one-file script imports imgdl, into memory and into a folder', async (t) => {
  installed();
  if (!linkBetterSqlite(t)) return;
  const { folder, out, run } = await runScript(`node${process.versions.node.split('.')[0]}`, process.execPath, []);
  assertFolder(folder, out, run);
});

for (const major of [22, 24]) {
  test(`Node ${major} (node:sqlite, nothing compiled): a one-file script imports imgdl, into memory and into a folder`, async (t) => {
    installed();
    const node = nodes.get(major);
    if (!node?.command) return t.skip(node?.missing ?? `Node ${major} was not looked for`);
    // The project's better-sqlite3 (if linked) is built for Node 20 and cannot load here: node:sqlite does the work.
    const { folder, out, run } = await runScript(`node${major}`, node.command, []);
    assertFolder(folder, out, run);
  });
}

const bin = (name: string) => path.join(REPO_ROOT, 'node_modules', '.bin', name);
for (const [name, command, args] of [
  ['Bun', bin('bun'), []],
  ['Deno', bin('deno'), ['run', '-A']],
] as const) {
  test(`${name}: a one-file script imports imgdl, into memory and into a folder`, async (t) => {
    installed();
    const probe = await runProcess(command, ['--version'], { cwd: project, env: childEnv(), timeoutMs: RUN_TIMEOUT_MS });
    if (probe.code !== 0) return t.skip(`${name} is not installed (${path.relative(REPO_ROOT, command)} --version failed: run npm ci)`);
    const { folder, out, run } = await runScript(name.toLowerCase(), command, [...args]);
    assertFolder(folder, out, run);
  });
}

test('the installed CLI on Node 22 runs dist/ and prints no ExperimentalWarning for node:sqlite', async (t) => {
  installed();
  const node = nodes.get(22);
  if (!node?.command) return t.skip(node?.missing ?? 'Node 22 was not looked for');
  const run = await runProcess(
    node.command,
    [path.join(installed(), 'bin', 'imgdl.js'), 'get', origin.url('/img/pkg.png?rt=cli'), '--out', 'cli-out', '--storage', 'cli-state', '--json'],
    { cwd: project, env: { ...childEnv(), IMGDL_DEBUG: '1' }, timeoutMs: RUN_TIMEOUT_MS },
  );
  assert.equal(run.code, 0, show(run));
  assert.match(run.stderr, /^imgdl: running dist\/$/m, 'an installed copy runs its build, whatever npm did to the file times');
  assert.doesNotMatch(run.stderr, /Warning/, show(run));
  assert.equal((JSON.parse(run.stdout) as { downloaded: number }).downloaded, 1);
});
