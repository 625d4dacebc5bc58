// The CLI's option table (src/cli/options.ts) and the environment read at the CLI's edge only.
// Run: node --import tsx --test test/cli-options.test.ts
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import { CLI_OPTIONS, libraryOptions, parseArgsOptions, type CliOption, type Command } from '../src/cli/options.ts';
import { envDebug, envHttp, envStorage } from '../src/cli/common.ts';
import { GET_HELP, WORKER_HELP } from '../src/cli/main.ts';
import { pluginHelp, RUN_HELP } from '../src/cli/plugin-commands.ts';
import { storageDir } from '../src/core/runs.ts';
import { get } from '../src/get.ts';
import { httpClientKind } from '../src/http/client.ts';
import { resolveOptions } from '../src/options.ts';
import { RESERVED_FLAGS } from '../src/plugin/options.ts';
import { stderrLog } from '../src/plugin/run.ts';
import gallery from '../plugins/gallery.ts';
import { png } from './helpers/images.ts';
import { runCli, tmpDir, type CliResult } from './helpers/cli.ts';
import { startOrigin, type Origin } from './helpers/origin.ts';

const COMMANDS: Command[] = ['get', 'run', 'worker'];
const OPTIONS: readonly CliOption[] = CLI_OPTIONS;

let origin: Origin | undefined;
after(async () => {
  await origin?.close();
});
async function fixtures(): Promise<Origin> {
  return (origin ??= await startOrigin());
}

/** `text` as a regular expression matching it literally. */
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The help line of `option` as `command` shows it: flag (alias, placeholder) and its text, on one line. */
function helpLine(option: CliOption, command: Command, plugin?: string): RegExp {
  const flag = `${option.short ? `-${option.short}, ` : ''}--${option.flag}${option.arg ? ` ${option.arg}` : ''}`;
  const text = typeof option.help === 'string' ? option.help : option.help({ command, plugin });
  return new RegExp(`^ +${literally(flag)} +${literally(text)}$`, 'm');
}

function imgdl(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { cwd, env: { IMGDL_HTTP: '', IMGDL_DEBUG: '', ...env } });
}

/** Sets environment variables for the length of `fn`, then puts them back. */
function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('every option of the table is in the help of each command that has it, with its text, and in no other', () => {
  const helps: Record<Command, Array<[string, string, string?]>> = {
    get: [['imgdl get --help', GET_HELP]],
    run: [['imgdl run --help', RUN_HELP], ['imgdl run gallery --help', pluginHelp(gallery), 'gallery']],
    worker: [['imgdl worker --help', WORKER_HELP]],
  };
  for (const option of OPTIONS) {
    for (const command of COMMANDS) {
      for (const [name, help, plugin] of helps[command]) {
        if (option.commands.includes(command)) assert.match(help, helpLine(option, command, plugin), `${name} shows --${option.flag}`);
        else assert.doesNotMatch(help, new RegExp(`--${option.flag}\\b`), `${name} has no --${option.flag}`);
      }
    }
  }
  assert.match(RUN_HELP, /^ +--retry-failed +try again/m, '--retry-failed is an option of imgdl run too');
  assert.match(GET_HELP, /^ +--storage DIR .*\$IMGDL_STORAGE.*\$CRAWLEE_STORAGE_DIR.*\.\/storage/m, 'the --storage help names both variables');
  assert.match(pluginHelp(gallery), /^ +-o, --out DIR +output folder \(default: gallery\/\)$/m);
});

test('RESERVED_FLAGS are the flags of the table (and --version): a plugin option can take none of them', () => {
  assert.deepEqual([...RESERVED_FLAGS].sort(), [...OPTIONS.map((o) => o.flag), 'version'].sort());
  for (const command of COMMANDS) {
    for (const flag of Object.keys(parseArgsOptions(command))) assert.ok(RESERVED_FLAGS.includes(flag), `--${flag} of imgdl ${command} is reserved`);
  }
});

test('the parseArgs options of each command: every flag and alias of before, and --retry-failed for imgdl run too', () => {
  const s = { type: 'string' } as const;
  const b = { type: 'boolean' } as const;
  const shared = {
    out: { type: 'string', short: 'o' }, concurrency: { type: 'string', short: 'c' }, 'per-host': s, rate: s, retries: s, 'retry-delay': s,
    timeout: s, 'stall-timeout': s, 'connect-timeout': s, 'max-bytes': s, 'max-redirects': s, 'max-retry-after': s,
    'user-agent': s, header: { type: 'string', short: 'H', multiple: true }, referer: s, 'location-trusted': b, cookies: s, proxy: s, noproxy: s, 'block-private': b, 'ignore-opt-out': b, 'opt-out-directives': s,
    resize: s, 'resize-mode': s, format: s, quality: s, 'min-size': s, 'max-aspect': s, 'keep-original': b, layout: s, 'shard-size': s, dedupe: b,
    run: s, storage: s, fresh: b, 'retry-failed': b, json: b,
    quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' }, 'no-report': b,
  };
  assert.deepEqual(parseArgsOptions('get'), { ...shared, 'input-format': s, 'url-col': s, 'caption-col': s, 'save-cols': s, queue: s, 'job-size': s, 'lock-duration': s, 's3-endpoint': s, 's3-addressing': s, 's3-region': s });
  assert.deepEqual(parseArgsOptions('run'), { ...shared, 'max-pages': s, 'max-depth': s, 'ignore-robots': b, name: s, archive: s, update: b, queue: s, 'job-size': s, 'lock-duration': s });
  assert.deepEqual(parseArgsOptions('worker'), { queue: s, 'exit-when-idle': b, 'lock-duration': s, concurrency: { type: 'string', short: 'c' }, storage: s, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' } });
});

test('the flags given become library options by name, as the strings typed; CLI-only and absent flags are left out', () => {
  const values = { 'per-host': '3', 'max-bytes': '20MB', 'block-private': true, 'max-pages': '2', 'retry-failed': true, json: true, quiet: true, out: 'pics' };
  assert.deepEqual(libraryOptions('run', values), { perHost: '3', maxBytes: '20MB', blockPrivateNetwork: true, maxPages: '2', retryFailed: true, out: 'pics' });
  assert.deepEqual(libraryOptions('get', values), { perHost: '3', maxBytes: '20MB', blockPrivateNetwork: true, retryFailed: true, out: 'pics' }, 'imgdl get has no --max-pages');
  const { perHost, maxBytes, blockPrivateNetwork } = libraryOptions('get', values);
  const o = resolveOptions({ perHost, maxBytes, blockPrivateNetwork });
  assert.deepEqual([o.perHost, o.maxBytes, o.blockPrivateNetwork], [3, 20 * 1024 * 1024, true], 'the library validates and converts the strings');
  assert.deepEqual(libraryOptions('get', { header: ['X-A: 1', 'X-B: 2'], referer: 'https://r.example/' }), { headers: ['X-A: 1', 'X-B: 2'], referer: 'https://r.example/' }, '-H is repeatable');
  assert.deepEqual(resolveOptions({ headers: ['X-A: 1', 'User-Agent: ua'], referer: 'https://r.example/' }).headers, { 'x-a': '1', referer: 'https://r.example/' });
  assert.deepEqual(libraryOptions('get', { 'no-report': true, 'url-col': 'URL', 'save-cols': 'a,b' }), { report: false, urlCol: 'URL', saveCols: 'a,b' }, '--no-report sets report: false');
  assert.deepEqual(libraryOptions('run', { 'no-report': true }), { report: false });
});

test('imgdl get --help and imgdl run gallery --help list every option of their command', async () => {
  const dir = tmpDir('imgdl-cli-options-');
  const [getHelp, runHelp] = await Promise.all([imgdl(['get', '--help'], dir), imgdl(['run', 'gallery', '--help'], dir)]);
  assert.equal(getHelp.code, 0, getHelp.stderr);
  assert.equal(runHelp.code, 0, runHelp.stderr);
  for (const option of OPTIONS) {
    if (option.commands.includes('get')) assert.match(getHelp.stdout, helpLine(option, 'get'), `imgdl get --help shows --${option.flag}`);
    if (option.commands.includes('run')) assert.match(runHelp.stdout, helpLine(option, 'run', 'gallery'), `imgdl run gallery --help shows --${option.flag}`);
  }
});

test('a bad value is refused with the message of before, naming the flag typed', async () => {
  const dir = tmpDir('imgdl-cli-options-');
  const url = 'http://127.0.0.1:9/a.png';
  const cases: Array<[string[], string]> = [
    [['get', url, '--concurrency', '0'], 'Expected `--concurrency` to be an integer ≥ 1, got 0'],
    [['get', url, '--max-bytes', 'lots'], 'Expected `--max-bytes` to be a size in bytes (like 20MB) ≥ 0, got "lots"'],
    [['run', 'gallery', url, '--per-host', '1.5'], 'Expected `--per-host` to be an integer ≥ 1, got "1.5"'],
    [['run', 'gallery', url, '--max-pages', '0'], 'Expected `--max-pages` to be an integer ≥ 1, got 0'],
    [['run', 'gallery', url, '--timeout', 'soon'], 'Expected `--timeout` to be a number of seconds > 0, got "soon"'],
  ];
  const runs = await Promise.all(cases.map(([args]) => imgdl([...args, '--storage', 'state'], dir)));
  runs.forEach((run, i) => {
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stderr, `imgdl: ${cases[i]![1]}\n`);
  });
  assert.ok(!fs.existsSync(path.join(dir, 'state', 'runs')), 'refused before any run state is written');
});

test('the library reads no environment variable: storage, HTTP client and debug lines are explicit inputs', () => {
  withEnv({ IMGDL_STORAGE: '/from/imgdl', CRAWLEE_STORAGE_DIR: '/from/crawlee', IMGDL_HTTP: 'fetch', IMGDL_DEBUG: '1' }, () => {
    assert.equal(storageDir(), path.resolve('storage'));
    assert.equal(storageDir('elsewhere'), path.resolve('elsewhere'));
    assert.equal(httpClientKind(), 'undici', 'this runtime’s pick (Node: undici), not $IMGDL_HTTP');
    assert.equal(httpClientKind('fetch'), 'fetch');
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stderr.write;
    try {
      stderrLog('p').debug('hidden');
      stderrLog('p', { debug: true }).debug('shown');
    } finally {
      process.stderr.write = write;
    }
    assert.deepEqual(written, ['imgdl [p]: shown\n']);
  });
});

test('the CLI reads them: --storage, else $IMGDL_STORAGE, else $CRAWLEE_STORAGE_DIR; $IMGDL_HTTP; $IMGDL_DEBUG', () => {
  assert.equal(envStorage({ IMGDL_STORAGE: 'a', CRAWLEE_STORAGE_DIR: 'b' }), 'a');
  assert.equal(envStorage({ CRAWLEE_STORAGE_DIR: 'b' }), 'b');
  assert.equal(envStorage({}), undefined);
  assert.equal(envHttp({ IMGDL_HTTP: ' Fetch ' }), 'fetch');
  assert.equal(envHttp({ IMGDL_HTTP: 'undici' }), 'undici');
  assert.equal(envHttp({}), undefined);
  assert.equal(envDebug({ IMGDL_DEBUG: '1' }), true);
  assert.equal(envDebug({ IMGDL_DEBUG: '' }), false);
  assert.equal(envDebug({}), false);
});

test('imgdl get keeps its state under $IMGDL_STORAGE or $CRAWLEE_STORAGE_DIR, and imgdl runs finds it there', async () => {
  const o = await fixtures();
  const dir = tmpDir('imgdl-cli-options-');
  const [byImgdl, byCrawlee, byFlag] = await Promise.all([
    imgdl(['get', o.url('/img/env-a.png'), '--out', 'a', '--run', 'ra', '-q'], dir, { IMGDL_STORAGE: 'imgdl-state', CRAWLEE_STORAGE_DIR: 'crawlee-state' }),
    imgdl(['get', o.url('/img/env-b.png'), '--out', 'b', '--run', 'rb', '-q'], dir, { CRAWLEE_STORAGE_DIR: 'crawlee-state' }),
    imgdl(['get', o.url('/img/env-c.png'), '--out', 'c', '--run', 'rc', '-q', '--storage', 'flag-state'], dir, { IMGDL_STORAGE: 'imgdl-state' }),
  ]);
  for (const run of [byImgdl, byCrawlee, byFlag]) assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'imgdl-state', 'runs')), ['ra']);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'crawlee-state', 'runs')), ['rb']);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'flag-state', 'runs')), ['rc']);
  assert.ok(!fs.existsSync(path.join(dir, 'storage')));
  const runs = await imgdl(['runs', '--json'], dir, { IMGDL_STORAGE: 'imgdl-state' });
  assert.deepEqual((JSON.parse(runs.stdout) as Array<{ name: string }>).map((r) => r.name), ['ra']);
});

test('IMGDL_HTTP=fetch makes the CLI use the fetch client; imgdl run shows plugin debug lines with IMGDL_DEBUG', async () => {
  const o = await fixtures();
  const seen = new Map<string, IncomingHttpHeaders>();
  o.route('/which/a.png', (req, res) => {
    seen.set(String(req.headers['user-agent']), req.headers);
    res.writeHead(200, { 'content-type': 'image/png' }).end(png(4, 4));
  });
  o.route('/which/page', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<img src="/img/which.png"><a rel="next" href="http://elsewhere.invalid/2">next</a>');
  });
  const dir = tmpDir('imgdl-cli-options-');
  const [viaFetch, viaDefault, debug, quiet] = await Promise.all([
    imgdl(['get', o.url('/which/a.png'), '--out', 'f', '--storage', 'state', '--user-agent', 'fetch-run', '-q'], dir, { IMGDL_HTTP: 'fetch' }),
    imgdl(['get', o.url('/which/a.png'), '--out', 'd', '--storage', 'state', '--user-agent', 'default-run', '-q'], dir),
    imgdl(['run', 'gallery', o.url('/which/page'), '--out', 'g1', '--storage', 'state', '-q'], dir, { IMGDL_DEBUG: '1' }),
    imgdl(['run', 'gallery', o.url('/which/page'), '--out', 'g2', '--storage', 'state', '-q'], dir),
  ]);
  for (const run of [viaFetch, viaDefault, debug, quiet]) assert.equal(run.code, 0, run.stderr);
  // Only the runtime's fetch sends Sec-Fetch-Mode; undici's request sends what it is given.
  assert.equal(seen.get('fetch-run')?.['sec-fetch-mode'], 'cors', 'IMGDL_HTTP=fetch: the fetch client');
  assert.equal(seen.get('default-run')?.['sec-fetch-mode'], undefined, 'by default on Node: undici');
  assert.match(debug.stderr, /imgdl \[gallery\]: not following http:\/\/elsewhere\.invalid\/2: another origin/);
  assert.doesNotMatch(quiet.stderr, /not following/);
});

test('get() takes the HTTP client as an option and refuses one it does not know', async () => {
  const o = await fixtures();
  const seen: IncomingHttpHeaders[] = [];
  o.route('/lib/a.png', (req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'image/png' }).end(png(4, 4));
  });
  const dir = tmpDir('imgdl-cli-options-');
  const summary = await get({ items: [o.url('/lib/a.png')], out: path.join(dir, 'out'), storage: path.join(dir, 'state'), http: 'fetch' });
  assert.equal(summary.downloaded, 1);
  assert.equal(seen[0]?.['sec-fetch-mode'], 'cors');
  await assert.rejects(
    get({ items: [o.url('/lib/a.png')], out: path.join(dir, 'out'), storage: path.join(dir, 'state'), http: 'curl' as 'fetch' }),
    /Expected `http` to be "undici" or "fetch", got "curl"/,
  );
});
