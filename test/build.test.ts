// The prebuilt CLI: `npm run build` (run by `npm ci` through `prepare`) compiles src/ to dist/ and bundles the CLI into
// dist/cli/, and bin/imgdl.js runs that bundle on Node when it is at least as new as every source file, else the
// sources. Plugins (TypeScript) are compiled by esbuild when loaded, sharing the bundle's modules.
// Checked on a copy of the repository so that touching its sources cannot disturb other test files.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, readJsonl, runCli, tmpDir } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

let copy: string;
let bin: string;
let origin: Origin;

before(async () => {
  copy = tmpDir('imgdl-build-');
  for (const entry of ['bin', 'src', 'plugins', 'scripts']) fs.cpSync(path.join(REPO_ROOT, entry), path.join(copy, entry), { recursive: true });
  for (const file of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) fs.copyFileSync(path.join(REPO_ROOT, file), path.join(copy, file));
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  // The package's own build script, as `npm ci` runs it.
  const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: copy, encoding: 'utf8', timeout: 300_000 });
  assert.equal(built.status, 0, `npm run build failed:\n${built.stdout}\n${built.stderr}`);
  bin = path.join(copy, 'bin', 'imgdl.js');
  origin = await startOrigin();
});

after(async () => {
  await origin?.close();
});

async function get(env: Record<string, string> = {}) {
  const cwd = tmpDir();
  const run = await runCli(['get', origin.url('/img/a.png'), origin.url('/status/404'), '--out', 'out', '--storage', 'st'], {
    cwd,
    bin,
    env: { IMGDL_DEBUG: '1', ...env },
  });
  return { run, out: path.join(cwd, 'out') };
}

test('npm run build writes dist/ with its stamp, and `get` runs it', async () => {
  assert.ok(fs.existsSync(path.join(copy, 'dist', 'src', 'cli', 'main.js')));
  assert.ok(fs.existsSync(path.join(copy, 'dist', 'cli', 'main.js')));
  assert.ok(fs.existsSync(path.join(copy, 'dist', '.built')));
  const { run, out } = await get();
  assert.match(run.stderr, /imgdl: running dist\//);
  assert.equal(run.code, 1, run.stderr); // one of the two URLs is a 404
  assert.deepEqual(fs.readdirSync(out).sort(), ['a.png', 'failures.jsonl', 'metadata.jsonl', 'report.html', 'stats.json']);
  assert.deepEqual(readJsonl(path.join(out, 'failures.jsonl')).map((f) => f['code']), ['http_status']);
});

test('a source file newer than the build runs the sources instead, with the same result', async () => {
  const future = new Date(Date.now() + 60_000);
  const edited = path.join(copy, 'src', 'errors.ts');
  const before = fs.statSync(edited);
  fs.utimesSync(edited, future, future);
  try {
    const { run, out } = await get();
    assert.match(run.stderr, /imgdl: running the sources: src\/errors\.ts is newer than dist\//);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(fs.readdirSync(out).sort(), ['a.png', 'failures.jsonl', 'metadata.jsonl', 'report.html', 'stats.json']);
  } finally {
    fs.utimesSync(edited, before.atime, before.mtime);
  }
});

test('IMGDL_SOURCES=1 runs the sources', async () => {
  const { run } = await get({ IMGDL_SOURCES: '1' });
  assert.match(run.stderr, /running the sources: IMGDL_SOURCES=1/);
});

test('plugin commands run the build too: a plugin file is compiled with its own files, and shares the engine\'s modules', async () => {
  const plugins = await runCli(['plugins'], { cwd: tmpDir(), bin, env: { IMGDL_DEBUG: '1' } });
  assert.equal(plugins.code, 0, plugins.stderr);
  assert.match(plugins.stderr, /imgdl: running dist\//);
  assert.match(plugins.stdout, /gallery/);

  // A user's plugin outside the repository: it imports the engine by path (as the built-ins do) and a file of its own.
  const dir = tmpDir();
  const engine = path.join(copy, 'src', 'plugin', 'index.ts');
  fs.writeFileSync(path.join(dir, 'names.ts'), `export const nameOf = (i: number): string => \`shot-\${i}.png\`;\n`);
  fs.writeFileSync(
    path.join(dir, 'shots.mts'),
    `import { definePlugin, UsageError } from ${JSON.stringify(engine)};
import { nameOf } from './names.ts';
export default definePlugin({
  name: 'shots',
  description: 'test plugin',
  options: { base: { type: 'string', default: '', help: 'origin' }, fail: { type: 'boolean', default: false, help: 'usage error' } },
  start: ({ base, fail }) => {
    if (fail) throw new UsageError('--fail was given');
    return [{ url: base, label: 'list' }];
  },
  handlers: { list: ({ page }) => ({ images: [0, 1].map((i) => ({ url: new URL('/img/s' + i + '.png', page.finalUrl).href, name: nameOf(i) })) }) },
});
`,
  );
  const run = await runCli(['run', './shots.mts', '--base', origin.url('/img/page.png'), '--out', 'out', '--storage', 'st'], { cwd: dir, bin, env: { IMGDL_DEBUG: '1' } });
  assert.match(run.stderr, /imgdl: running dist\//);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'out')).filter((f) => f.endsWith('.png')).sort(), ['shot-0.png', 'shot-1.png'], run.stderr);
  // The plugin's UsageError is the engine's own class (one copy of the engine): a usage error, exit 2, one line.
  const refused = await runCli(['run', './shots.mts', '--fail', '--out', 'out2', '--storage', 'st2'], { cwd: dir, bin });
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  assert.match(refused.stderr, /--fail was given/);
});
