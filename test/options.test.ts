// resolveOptions: the one place user options are validated (CLI flags arrive as strings) and defaulted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveOptions, type DownloadOptions } from '../src/options.ts';
import { UsageError } from '../src/errors.ts';
import { GET_HELP } from '../src/cli/main.ts';

const MiB = 1024 * 1024;

/** Asserts that the options are refused with a UsageError whose message matches every pattern. */
function refused(options: DownloadOptions, ...patterns: RegExp[]): void {
  assert.throws(
    () => resolveOptions(options),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, `a UsageError, got ${String(error)}`);
      for (const p of patterns) assert.match(error.message, p);
      assert.doesNotMatch(error.message, /\n/, 'one line');
      return true;
    },
    JSON.stringify(options),
  );
}

test('defaults are the ones the help text promises', () => {
  const o = resolveOptions();
  assert.equal(o.concurrency, 64);
  assert.equal(o.retries, 4);
  assert.equal(o.retryDelayMs, 500);
  assert.equal(o.timeoutMs, 60_000);
  assert.equal(o.stallTimeoutMs, 20_000);
  assert.equal(o.connectTimeoutMs, 10_000);
  assert.equal(o.maxBytes, 100 * MiB);
  assert.equal(o.maxRedirects, 10);
  assert.equal(o.maxRetryAfterMs, 120_000);
  assert.ok(o.userAgent.length > 0);
  for (const fragment of ['(default 64)', '(default 4)', '(default 500)', '(default 60)', '(default 20)', '(default 10)', '(default 100MB)', '(default 120)']) {
    assert.ok(GET_HELP.includes(fragment), `help says ${fragment}`);
  }
});

test('numbers typed on the command line are accepted as strings, times in seconds become milliseconds', () => {
  const o = resolveOptions({
    concurrency: '8',
    perHost: ' 2 ',
    retries: '0',
    retryDelay: '20',
    timeout: '1.5',
    stallTimeout: '1',
    connectTimeout: '0.25',
    maxRedirects: '0',
    maxRetryAfter: '3',
  });
  assert.deepEqual(
    [o.concurrency, o.perHost, o.retries, o.retryDelayMs, o.timeoutMs, o.stallTimeoutMs, o.connectTimeoutMs, o.maxRedirects, o.maxRetryAfterMs],
    [8, 2, 0, 20, 1500, 1000, 250, 0, 3000],
  );
});

test('sizes take units: 1KB is 1024 bytes, 20MB is 20 MiB, 0 means no limit', () => {
  assert.equal(resolveOptions({ maxBytes: '1KB' }).maxBytes, 1024);
  assert.equal(resolveOptions({ maxBytes: '20MB' }).maxBytes, 20 * MiB);
  assert.equal(resolveOptions({ maxBytes: '20mb' }).maxBytes, 20 * MiB);
  assert.equal(resolveOptions({ maxBytes: '1536' }).maxBytes, 1536);
  assert.equal(resolveOptions({ maxBytes: 4096 }).maxBytes, 4096);
  assert.equal(resolveOptions({ maxBytes: '0' }).maxBytes, 0);
  assert.equal(resolveOptions({ maxBytes: 0 }).maxBytes, 0);
});

test('a stall timeout is never longer than the whole-attempt timeout', () => {
  assert.equal(resolveOptions({ timeout: 5 }).stallTimeoutMs, 5000);
  assert.equal(resolveOptions({ timeout: 5, stallTimeout: 30 }).stallTimeoutMs, 5000);
  assert.equal(resolveOptions({ timeout: 5, stallTimeout: 2 }).stallTimeoutMs, 2000);
});

test('the per-host limit is never below the overall concurrency by default', () => {
  const o = resolveOptions({ concurrency: 200 });
  assert.ok(o.perHost >= 200, `perHost ${o.perHost}`);
  assert.equal(resolveOptions({ concurrency: 200, perHost: 3 }).perHost, 3);
});

test('concurrency 0 is refused with a message naming concurrency and the value', () => {
  refused({ concurrency: '0' }, /concurrency/, /\b0\b/, /≥ 1|at least 1/);
  refused({ concurrency: 0 }, /concurrency/);
});

test('counts must be whole numbers in range', () => {
  refused({ concurrency: '-3' }, /concurrency/);
  refused({ concurrency: '1.5' }, /concurrency/, /1\.5/);
  refused({ concurrency: 'lots' }, /concurrency/, /lots/);
  refused({ concurrency: '' }, /concurrency/);
  refused({ perHost: 0 }, /perHost/);
  refused({ retries: '-1' }, /retries/);
  refused({ retryDelay: '-5' }, /retryDelay/);
  refused({ maxRedirects: 'two' }, /maxRedirects/, /two/);
});

test('times must be positive numbers of seconds', () => {
  refused({ timeout: '0' }, /timeout/, /seconds/);
  refused({ timeout: '-1' }, /timeout/);
  refused({ timeout: 'soon' }, /timeout/, /soon/);
  refused({ timeout: Infinity }, /timeout/);
  refused({ timeout: NaN }, /timeout/);
  refused({ stallTimeout: '0' }, /stallTimeout/);
  refused({ connectTimeout: 'x' }, /connectTimeout/);
  refused({ maxRetryAfter: '-2' }, /maxRetryAfter/);
});

test('sizes must be whole, non-negative byte counts', () => {
  refused({ maxBytes: 'lots' }, /maxBytes/, /lots/);
  refused({ maxBytes: '-1' }, /maxBytes/);
  refused({ maxBytes: -1 }, /maxBytes/);
  refused({ maxBytes: 1.5 }, /maxBytes/);
  refused({ maxBytes: '' }, /maxBytes/);
});

test('an empty user agent is refused', () => {
  refused({ userAgent: '' }, /userAgent/);
  assert.equal(resolveOptions({ userAgent: 'me/1.0' }).userAgent, 'me/1.0');
});

test('an unknown option is refused with its name (a typo is not silently ignored)', () => {
  refused({ concurency: 8 } as unknown as DownloadOptions, /concurency/);
});

test('options that are not an object are refused', () => {
  assert.throws(() => resolveOptions(null as unknown as DownloadOptions), UsageError);
  assert.throws(() => resolveOptions('fast' as unknown as DownloadOptions), UsageError);
});

test('undefined values mean "not given": the default applies', () => {
  const o = resolveOptions({ concurrency: undefined, timeout: undefined, maxBytes: undefined });
  assert.equal(o.concurrency, 64);
  assert.equal(o.timeoutMs, 60_000);
  assert.equal(o.maxBytes, 100 * MiB);
});

test('resolveOptions returns a fresh object: changing it leaves the defaults alone', () => {
  const first = resolveOptions();
  first.concurrency = 1;
  first.maxBytes = 1;
  assert.equal(resolveOptions().concurrency, 64);
  assert.equal(resolveOptions().maxBytes, 100 * MiB);
});

test('seconds may be written without a leading zero (.5), as shells and users do', () => {
  assert.equal(resolveOptions({ timeout: '.5' }).timeoutMs, 500);
  assert.equal(resolveOptions({ stallTimeout: '2.' }).stallTimeoutMs, 2000);
  assert.throws(() => resolveOptions({ timeout: '.' }), /Expected `timeout` to be a number of seconds > 0, got "\."/);
});

test('the CLI names options by their flags in error messages', async () => {
  const { asFlags } = await import('../src/cli/main.ts');
  assert.equal(asFlags('Expected `maxBytes` to be a size in bytes (like 20MB) ≥ 0, got "lots"'), 'Expected `--max-bytes` to be a size in bytes (like 20MB) ≥ 0, got "lots"');
  assert.equal(asFlags('Expected `concurrency` to be an integer ≥ 1, got 0'), 'Expected `--concurrency` to be an integer ≥ 1, got 0');
  assert.equal(asFlags('Unknown thing `fooBar`'), 'Unknown thing `fooBar`', 'names that are no flag are left alone');
});
