// The plugin API: registry, options, loading by name or path, what happens to bad plugin output, `imgdl new`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonl, runCli, runProcess, tmpDir } from './helpers/cli.ts';
import { startOrigin, type Origin, type RouteHandler } from './helpers/origin.ts';
import { UsageError } from '../src/errors.ts';
import { builtinNames, definePlugin, listPlugins, loadPlugin, runPlugin, type ImageRequest } from '../src/plugin/index.ts';
import { PLUGINS_DIR, REPO_ROOT } from '../src/plugin/loader.ts';
import { flagName, RESERVED_FLAGS, resolvePluginOptions, validatePlugin } from '../src/plugin/options.ts';
import { cmdRun, planNew } from '../src/cli/plugin-commands.ts';
import { parseArgsOptions } from '../src/cli/options.ts';
import { collectChunks } from '../src/plugin/handle.ts';
import flags from '../plugins/flags.ts';
import gallery from '../plugins/gallery.ts';

const imgdl = (args: string[], cwd: string) => runCli(args, { cwd, timeoutMs: 30_000 });

const html = (body: string): RouteHandler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>fixture</title></head><body>${body}</body></html>`);
};
const json = (value: unknown): RouteHandler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
};
const quiet = { info() {}, warn() {}, debug() {} };
/** The environment for a `node --test` child: without the parent runner's context, it reports as a top-level run (TAP). */
const childEnv = () => {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  return env;
};

let origin: Origin;
let dir: string;

before(async () => {
  origin = await startOrigin();
  dir = tmpDir('imgdl-plugins-');
});

after(async () => {
  await origin.close();
});

// ---------------------------------------------------------------- registry

test('every built-in plugin loads without network, is named after its file, and documents each option', async () => {
  const names = builtinNames();
  assert.ok(names.includes('flags') && names.includes('gallery'), `built-ins: ${names.join(', ')}`);
  assert.ok(!names.some((n) => n.startsWith('_')), 'files starting with _ are not plugins');
  const seen = new Set<string>();
  for (const name of names) {
    const plugin = await loadPlugin(name);
    assert.equal(plugin.name, name, `plugins/${name}.ts is named ${name}`);
    assert.ok(!seen.has(plugin.name), `${name} is unique`);
    seen.add(plugin.name);
    assert.ok(plugin.description.trim().length > 10, `${name} has a description`);
    for (const [option, spec] of Object.entries(plugin.options ?? {})) {
      assert.ok(spec.help.trim(), `${name} --${flagName(option)} has help text`);
      assert.ok(!RESERVED_FLAGS.includes(flagName(option)), `${name} --${flagName(option)} is not an imgdl run flag`);
    }
  }
  assert.equal(origin.log.length, 0, 'nothing was fetched');
  const listed = await listPlugins();
  assert.deepEqual(listed.map((p) => p.name), names);
  assert.ok(listed.every((p) => p.description && !p.error));
});

test('the template is itself a valid plugin, and every imgdl run flag is reserved', async () => {
  const template = await loadPlugin(path.join(PLUGINS_DIR, '_template.ts'));
  assert.equal(template.name, 'template');
  for (const flag of Object.keys(parseArgsOptions('run'))) assert.ok(RESERVED_FLAGS.includes(flag), `--${flag} is reserved`);
});

test('an unknown plugin name is a usage error listing the known ones', async () => {
  await assert.rejects(loadPlugin('nope'), (e: Error) => e instanceof UsageError && /Known plugins: flags, gallery/.test(e.message));
  await assert.rejects(loadPlugin('./missing.ts'), UsageError);
  const { code, stderr } = await imgdl(['run', 'nope'], dir);
  assert.equal(code, 2);
  assert.match(stderr, /Unknown plugin "nope"\. Known plugins: .*flags.*gallery/);
});

test('imgdl plugins lists the built-ins with their descriptions', async () => {
  const { code, stdout } = await imgdl(['plugins', '--json'], dir);
  assert.equal(code, 0);
  const listed = JSON.parse(stdout) as Array<{ name: string; description: string }>;
  assert.deepEqual(listed.map((p) => p.name), builtinNames());
  assert.equal(listed.find((p) => p.name === 'flags')?.description, flags.description);
});

// ---------------------------------------------------------------- options

test('plugin options are validated, split and defaulted', () => {
  assert.deepEqual(resolvePluginOptions(flags, { codes: ['CN,us', 'BR JP'] }), { codes: ['CN', 'us', 'BR', 'JP'], baseUrl: 'http://flupy.org/data/flags' });
  assert.equal((resolvePluginOptions(flags) as { codes: string[] }).codes.length, 20);
  assert.deepEqual(resolvePluginOptions(gallery, { urls: ['http://a/x,y'] }), { urls: ['http://a/x,y'], next: undefined, anyOrigin: false });
  assert.throws(() => resolvePluginOptions(gallery, {}), /needs URL/);
  assert.throws(() => resolvePluginOptions(flags, { colour: 'red' }), /no option `colour`; its options: codes, baseUrl/);
});

test('a module that is not a usable plugin is refused with the reason', () => {
  const base = { name: 'x', description: 'A plugin', start: () => [], handlers: { a: () => {} } };
  assert.throws(() => validatePlugin(undefined, 'x.ts'), /no default export/);
  assert.throws(() => validatePlugin({ ...base, handlers: {} }, 'x.ts'), /handlers/);
  assert.throws(() => validatePlugin({ ...base, options: { out: { type: 'string', help: 'h' } } }, 'x.ts'), /--out is an imgdl run flag/);
  assert.throws(() => validatePlugin({ ...base, options: { n: { type: 'number', help: '' } } }, 'x.ts'), /help/);
  assert.throws(() => validatePlugin({ ...base, options: { n: { type: 'number', default: 'many', help: 'h' } } }, 'x.ts'), /bad default/);
  assert.equal(validatePlugin(base, 'x.ts'), base);
});

// ---------------------------------------------------------------- bad plugin output

test('a handler that throws or returns bad data fails its page (plugin_error); path names fail (bad_name); the rest goes on', async () => {
  origin.route('/bad/list', html('list'));
  origin.route('/bad/boom', html('boom'));
  origin.route('/bad/weird', html('weird'));
  origin.route('/bad/api', json({ ok: true }));
  const bad = definePlugin({
    name: 'bad',
    description: 'Returns every kind of wrong thing',
    start: () => [{ url: origin.url('/bad/list'), label: 'list' }],
    handlers: {
      list: () => ({
        pages: [
          { url: '/bad/boom', label: 'boom' },
          { url: 'weird', label: 'weird' },
          { url: '/bad/api', label: 'dollar' },
          { url: 42 as unknown as string, label: 'boom' },
          { url: '/bad/elsewhere', label: 'nope' as 'boom' },
        ],
        images: [
          { url: '/img/good.png', name: 'good one.png', metadata: { n: 1 } },
          { url: '/img/evil.png', name: '../../etc/passwd' },
          { url: '/img/abs.png', name: '/etc/x.png' },
          { url: '/img/dots.png', name: '..' },
          { url: '/img/plain.png', name: '' },
          'junk' as unknown as ImageRequest,
        ],
      }),
      boom: () => {
        throw new Error('kaboom');
      },
      weird: () => 42 as unknown as void,
      dollar: ({ $ }) => void $('p'),
    },
  });
  const out = path.join(dir, 'bad');
  const summary = await runPlugin(bad, { out, storage: path.join(dir, 'storage'), log: quiet });
  assert.equal(summary.downloaded, 3);
  const files = readJsonl<{ url: string; file: string; metadata?: unknown }>(path.join(out, 'metadata.jsonl'));
  const fileOf = (p: string) => files.find((r) => r.url === origin.url(p))?.file;
  assert.equal(fileOf('/img/good.png'), 'good one.png');
  assert.deepEqual(files.find((r) => r.file === 'good one.png')?.metadata, { n: 1 });
  assert.match(fileOf('/img/dots.png') ?? '', /^image-[0-9a-f]+\.png$/, 'a name of only dots is made safe by the core');
  assert.equal(fileOf('/img/plain.png'), 'plain.png', 'an empty name: named from the URL');
  assert.equal(fs.existsSync(path.join(dir, 'etc')), false);

  const failures = readJsonl<{ url: string; code: string; message: string }>(path.join(out, 'failures.jsonl'));
  const failure = (p: string) => failures.find((f) => f.url === origin.url(p));
  assert.equal(failure('/bad/list')?.code, 'plugin_error');
  assert.match(failure('/bad/list')!.message, /3 bad entries dropped: pages\[3\]\.url is number 42.*pages\[4\]\.label "nope" has no handler.*images\[5\] is the string "junk"/);
  assert.equal(failure('/img/evil.png')?.code, 'bad_name');
  assert.equal(failure('/img/abs.png')?.code, 'bad_name');
  assert.deepEqual([failure('/bad/boom')?.code, failure('/bad/boom')?.message], ['plugin_error', 'kaboom']);
  assert.match(failure('/bad/weird')?.message ?? '', /must return \{ pages\?, images\? \} or nothing, not number 42/);
  assert.match(failure('/bad/api')?.message ?? '', /is not HTML \(Content-Type application\/json\)/);
  assert.equal(failures.length, 6);
  assert.equal(summary.failed, 2, 'the two images with a path for a name');
  assert.equal(summary.pagesFailed, 4, 'pages are counted apart from images');
});

// ---------------------------------------------------------------- imgdl new, run from a path

test('imgdl new NAME inside the repository plans plugins/NAME.ts and test/NAME.test.ts from the template', () => {
  const plan = planNew('demo', REPO_ROOT);
  assert.equal(plan.plugin.file, path.join(REPO_ROOT, 'plugins', 'demo.ts'));
  assert.equal(plan.test?.file, path.join(REPO_ROOT, 'test', 'demo.test.ts'));
  assert.match(plan.plugin.content, /name: 'demo'/);
  assert.match(plan.plugin.content, /from '\.\.\/src\/plugin\/index\.ts'/);
  assert.match(plan.test.content, /import plugin from '\.\.\/plugins\/demo\.ts'/);
  assert.match(plan.test.content, /import \{ startFixtureSite \} from '\.\.\/src\/testing\/index\.ts'/);
  assert.deepEqual(plan.fixtures.map((f) => path.relative(REPO_ROOT, f.file)).sort(), ['list.html', 'list2.html', 'photo/1.html', 'photo/2.html'].map((f) => path.join('test', 'fixtures', 'demo', f)));
  assert.throws(() => planNew('flags', REPO_ROOT), /exists already/);
  assert.throws(() => planNew('Bad Name', REPO_ROOT), UsageError);
});

test('the test imgdl new writes passes against its saved pages, in the repository layout', async () => {
  // A copy of the repository's layout (src and node_modules linked) so that nothing is written into the repository.
  const root = fs.mkdtempSync(path.join(dir, 'repo-'));
  for (const d of ['src', 'node_modules']) fs.symlinkSync(path.join(REPO_ROOT, d), path.join(root, d));
  fs.copyFileSync(path.join(REPO_ROOT, 'package.json'), path.join(root, 'package.json'));
  const plan = planNew('demo', REPO_ROOT);
  for (const f of [plan.plugin, plan.test, ...plan.fixtures]) {
    const target = path.join(root, path.relative(REPO_ROOT, f.file));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, f.content);
  }
  const r = await runProcess(process.execPath, ['--import', import.meta.resolve('tsx'), '--test', path.join('test', 'demo.test.ts')], { cwd: root, env: childEnv(), timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# pass 1/);
});

test('imgdl new NAME elsewhere writes ./NAME.mts (./NAME.ts in an ESM package), never overwrites, and runs from its path', async () => {
  const work = fs.mkdtempSync(path.join(dir, 'new-'));
  const made = await imgdl(['new', 'demo'], work);
  assert.equal(made.code, 0, made.stderr);
  assert.deepEqual(fs.readdirSync(work).sort(), ['demo.mts', 'demo.test.mts', 'fixtures'], 'no package.json with "type": "module" here: .mts, which Node loads as ESM');
  const tested = await runProcess(process.execPath, ['--import', import.meta.resolve('tsx'), '--test', 'demo.test.mts'], { cwd: work, env: childEnv(), timeoutMs: 120_000 });
  assert.equal(tested.code, 0, tested.stdout + tested.stderr);
  assert.match(tested.stdout, /# pass 1/, 'the test it wrote passes against the saved pages it wrote');
  const again = await imgdl(['new', 'demo'], work);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /demo\.mts exists already; not overwriting it/);

  origin.route('/demo/list', html('<a class="photo" href="/demo/photo/1">1</a><a rel="next" href="list2">next</a>'));
  origin.route('/demo/list2', html('<a class="photo" href="photo/2">2</a>'));
  origin.route('/demo/photo/1', html('<h1>Red kite</h1><img class="main" src="/img/kite.png">'));
  origin.route('/demo/photo/2', html('<h1>Barn owl</h1><img class="main" src="/img/owl.gif">'));
  const run = await imgdl(['run', './demo.mts', '--start-url', origin.url('/demo/list'), '--storage', 'state', '--json', '-q'], work);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(fs.readdirSync(path.join(work, 'demo')).filter((f) => !f.endsWith('.jsonl') && f !== 'stats.json' && f !== 'report.html').sort(), ['Barn owl.gif', 'Red kite.png']);
  assert.equal((JSON.parse(run.stdout) as { downloaded: number }).downloaded, 2);

  // A .ts plugin file in a folder that is not an ES module package is loaded as ESM too (Node 20 and 24).
  fs.renameSync(path.join(work, 'demo.mts'), path.join(work, 'site.ts'));
  if (!process.version.startsWith('v22.')) assert.equal((await loadPlugin(path.join(work, 'site.ts'))).name, 'demo');
  else await assert.rejects(loadPlugin(path.join(work, 'site.ts')), /rename it to \.mts/);
  const esm = fs.mkdtempSync(path.join(dir, 'esm-'));
  fs.writeFileSync(path.join(esm, 'package.json'), '{ "type": "module" }');
  assert.equal(planNew('demo', esm).plugin.file, path.join(esm, 'demo.ts'), 'in an ES module package: .ts');
});

test('positional arguments reach the option that takes them (imgdl run gallery URL...)', async () => {
  origin.route('/pos/a', html('<img src="/img/pos-a.png">'));
  origin.route('/pos/b', html('<img src="/img/pos-b.png">'));
  const work = fs.mkdtempSync(path.join(dir, 'pos-'));
  const run = await imgdl(['run', 'gallery', origin.url('/pos/a'), origin.url('/pos/b'), '--max-depth', '0', '--out', 'pics', '--storage', 'state', '-q'], work);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(fs.readdirSync(path.join(work, 'pics')).filter((f) => f.endsWith('.png')).sort(), ['pos-a.png', 'pos-b.png']);
  await assert.rejects(cmdRun(['flags', 'CN']), (e: Error) => e instanceof UsageError && /takes no arguments/.test(e.message));
});

test('collectChunks reads a handler result lazily, a chunk at a time, and keeps only the first problems', async () => {
  let produced = 0;
  function* images() {
    for (let i = 0; i < 10_000; i++) {
      produced++;
      yield i % 1000 === 0 ? { nope: i } : { url: `http://a.test/${i}.png` };
    }
  }
  const problems = { count: 0, shown: [] as string[] };
  const chunks = collectChunks({ images: images() }, 'http://a.test/', new Set(['page']), problems);
  const first = await chunks.next();
  assert.ok(produced <= 2000, `the first chunk read at most 2,000 entries (read ${produced})`);
  let added = (first.value as { images: unknown[] }).images.length;
  for await (const found of chunks) added += found.images.length;
  assert.equal(added, 9990);
  assert.equal(problems.count, 10);
  assert.equal(problems.shown.length, 3);
  assert.match(problems.shown[1]!, /^images\[1000\]\.url is missing, not a string/);
  await assert.rejects(collectChunks({ images: 'a.png' }, 'http://a.test/', new Set()).next(), /`images` must be an array \(or an iterable\), not the string/);
});
