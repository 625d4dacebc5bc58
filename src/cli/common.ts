// Helpers shared by the CLI commands.
import { httpClientKind, type HttpClientKind } from '../http/client.ts';
import { redactArgs } from '../http/credentials.ts';
import { proxySettings, type ProxyOption } from '../http/proxy.ts';
import type { Summary } from '../core/engine.ts';

/**
 * Prints a line of information (summary, hints) on stderr. Not console.error: Bun colours that red on a terminal,
 * which makes a summary look like an error.
 */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

// The environment variables imgdl reads, all of them here, at the CLI's edge; the library reads none.

/** Where run state is kept when --storage is not given: $IMGDL_STORAGE, else $CRAWLEE_STORAGE_DIR (Crawlee's own). */
export function envStorage(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env['IMGDL_STORAGE'] ?? env['CRAWLEE_STORAGE_DIR'];
}

/**
 * The endpoint of an s3:// output when --s3-endpoint is not given: `$AWS_ENDPOINT_URL_S3`, else `$AWS_ENDPOINT_URL`
 * (the AWS SDKs' own variables; read here so that a custom endpoint also means path-style addressing, and so that the
 * endpoint is part of the run's identity). Credentials and the region are left to the SDK's default chain.
 */
export function envS3Endpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env['AWS_ENDPOINT_URL_S3'] || env['AWS_ENDPOINT_URL'] || undefined;
}

/** `IMGDL_HTTP=fetch` (or `undici`) forces an HTTP client, e.g. to compare them; unset, the library picks. */
export function envHttp(env: NodeJS.ProcessEnv = process.env): HttpClientKind | undefined {
  const wanted = env['IMGDL_HTTP'];
  return wanted === undefined ? undefined : httpClientKind(wanted, 'IMGDL_HTTP=undici');
}

/**
 * The `proxy` option from --proxy / --noproxy and the environment, as curl and most tools read it: `$http_proxy`
 * for http URLs, `$https_proxy` for https URLs (each also in upper case; the lower-case one wins when both are set; an empty one counts as unset),
 * `$no_proxy` / `$NO_PROXY` for the hosts that go direct. `--proxy URL` replaces both proxies (`--proxy ''`: none),
 * `--noproxy LIST` the bypass list (`'*'`: every host). An unusable value is a UsageError naming the variable.
 * `$ALL_PROXY` is not read (it is mostly socks5://, which imgdl does not speak).
 */
export function envProxy(flags: { proxy?: string; noproxy?: string }, env: NodeJS.ProcessEnv = process.env): ProxyOption | undefined {
  const read = (lower: string): [string, string | undefined] => {
    const upper = lower.toUpperCase();
    // An empty variable counts as unset.
    return env[lower] ? [`$${lower}`, env[lower]] : [`$${upper}`, env[upper] || undefined];
  };
  const [httpName, httpEnv] = read('http_proxy');
  const [httpsName, httpsEnv] = read('https_proxy');
  const [, noEnv] = read('no_proxy');
  // Checked here, so that a bad value names the variable it came from (--proxy's are checked by the library).
  if (flags.proxy === undefined) {
    proxySettings(httpName, httpEnv);
    proxySettings(httpsName, httpsEnv);
  }
  const http = flags.proxy ?? httpEnv;
  const https = flags.proxy ?? httpsEnv;
  if (!http && !https) return undefined;
  return { http: http || false, https: https || false, noProxy: flags.noproxy ?? noEnv ?? '' };
}

/** `IMGDL_DEBUG` (any non-empty value) shows plugins' `ctx.log.debug` lines. */
export function envDebug(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env['IMGDL_DEBUG']);
}

/** First Ctrl-C / SIGTERM stops gracefully; a second one exits at once (the state stays consistent either way). */
export function onSignals(stop: AbortController, resume: () => string): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      note(`\nimgdl: stopped at once. Resume with: ${resume()}`);
      process.exit(130);
    }
    note(`\nimgdl: ${signal}: stopping (again to quit at once)…`);
    stop.abort(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** Exit status when the run stopped because the disk was full (sysexits' EX_TEMPFAIL: try again later). */
export const EXIT_DISK_FULL = 75;

/**
 * The last line (when the run did not end normally) and the exit status: 75 and one line saying what could not be
 * written when the disk filled up, 130 when interrupted, 1 when some image or page failed or an image is still
 * pending, else 0.
 */
export function exitStatus(summary: Summary, resume: string): number {
  if (summary.stopped) {
    const unread = summary.stopped.unread ? ' (and the rest of the list not yet read)' : '';
    note(`imgdl: stopped: ${summary.stopped.message}; ${summary.pending} images pending${unread}. Make room, then run again: ${resume}`);
    return EXIT_DISK_FULL;
  }
  if (summary.interrupted) {
    note(`Resume with: ${resume}`);
    return 130;
  }
  return summary.failed > 0 || (summary.pagesFailed ?? 0) > 0 || summary.pending > 0 ? 1 : 0;
}

/** `imgdl ARGS…` as a shell command to show, with every URL's password as `***` (imgdl never shows or keeps one). */
export function commandLine(argv: string[]): string {
  return `imgdl ${redactArgs(argv).map(shellQuote).join(' ')}`;
}

export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
