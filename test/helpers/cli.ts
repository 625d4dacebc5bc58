// Runs the real CLI (bin/imgdl.js) in a child process, always bounded by a timeout, and makes temp folders.
import { after } from 'node:test';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/helpers/cli.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO_ROOT, 'bin', 'imgdl.js');

export interface CliResult {
  /** Exit code; null when the process was killed (see `timedOut`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Peak resident set size (VmHWM from /proc/<pid>/status) in KiB; undefined where /proc is missing. */
  peakRssKb?: number;
  /** Wall-clock time from spawn to exit. */
  ms: number;
  /** True when the run hit `timeoutMs` and was killed. */
  timedOut: boolean;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string>;
  /** Kill the CLI (SIGKILL) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Another copy of bin/imgdl.js to run. Default: this repository's. */
  bin?: string;
}

/** Runs `imgdl ...args` with the current Node; never rejects, never outlives `timeoutMs`. */
export function runCli(args: string[], opts: CliOptions): Promise<CliResult> {
  // Run state must never land in the repo's ./storage, whatever the caller's environment says.
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['IMGDL_STORAGE'];
  delete env['CRAWLEE_STORAGE_DIR'];
  Object.assign(env, opts.env);
  return runProcess(process.execPath, [opts.bin ?? BIN, ...args], { cwd: opts.cwd, env, timeoutMs: opts.timeoutMs });
}

/**
 * Runs `command ...args` with exactly `env`, capturing its output and peak RSS; never rejects, never outlives
 * `timeoutMs` (default 60 s: then it is killed with SIGKILL and `timedOut` is set).
 */
export function runProcess(
  command: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CliResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const started = Date.now();
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));

  let peakRssKb: number | undefined;
  const sample = (): void => {
    if (child.pid === undefined) return;
    try {
      const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakRssKb = Math.max(peakRssKb ?? 0, Number(m[1]));
    } catch {
      // Not Linux, or the process is already gone.
    }
  };
  const sampler = setInterval(sample, 20);
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);

  return new Promise((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearInterval(sampler);
      clearTimeout(killer);
      if (timedOut) stderr += `\n[killed after ${timeoutMs} ms]`;
      resolve({ code, signal, stdout, stderr, peakRssKb, ms: Date.now() - started, timedOut });
    };
    child.once('error', (error) => {
      stderr += `\n[spawn failed: ${error.message}]`;
      done(null, null);
    });
    // 'close' (not 'exit'): both pipes are drained by then, so stdout and stderr are complete.
    child.once('close', (code, signal) => done(code, signal));
  });
}

const made = new Set<string>();
after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  made.clear();
});

/** A fresh folder under os.tmpdir(), removed when the test file is done. */
export function tmpDir(prefix = 'imgdl-test-'): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  made.add(dir);
  return dir;
}

/** Lines of a JSONL file, parsed; [] when the file does not exist. */
export function readJsonl<T = Record<string, unknown>>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

/** Every file under `dir`, as paths relative to it (posix separators), sorted. */
export function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk('');
  return out.sort();
}

/** sha256 of a file, hex, read as a stream. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Memoises an async setup shared by several tests: it runs once, on first use. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= fn());
}
