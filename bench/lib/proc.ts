/**
 * Spawning measured child processes: wall time, peak RSS of the process tree, timeouts,
 * and a registry so that nothing started here outlives the harness.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';

const POLL_MS = 50;
const TAIL_CHARS = 64 * 1024;
const GNU_TIME = '/usr/bin/time';

const live = new Set<ChildProcess>();
let measuredCount = 0;

/** Kills the whole process group of a child started by `startMeasured` or `startService`. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Kills every child still running; safe to call from an 'exit' handler (synchronous). */
export function killAll(): void {
  for (const child of live) killGroup(child);
  live.clear();
}

/**
 * Removes `tmp` and kills every child on any way out of the process, including Ctrl-C (`name` prefixes the note
 * printed on a signal).
 */
export function cleanUpOnExit(tmp: string, name: string): void {
  process.on('exit', () => {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${name}: ${signal}, cleaning up\n`);
      process.exit(130);
    });
  }
}

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** Reads one field in kB from /proc/<pid>/status; 0 when the process is gone. */
function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'latin1');
    const match = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim();
      if (text) for (const child of text.split(' ')) out.push(Number(child));
    }
  } catch {
    // gone between reads
  }
  return out;
}

function descendants(root: number): number[] {
  const found: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    for (const child of childrenOf(pid)) {
      found.push(child);
      stack.push(child);
    }
  }
  return found;
}

/** Polls a process tree's memory; `peakKb` is the highest of (sum of VmRSS) and any one VmHWM. */
class RssMonitor {
  peakKb = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly root: number,
    private readonly includeRoot: boolean,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), POLL_MS);
  }

  sample(): void {
    const pids = descendants(this.root);
    if (this.includeRoot) pids.push(this.root);
    let sum = 0;
    for (const pid of pids) {
      sum += statusKb(pid, 'VmRSS');
      this.peakKb = Math.max(this.peakKb, statusKb(pid, 'VmHWM'));
    }
    this.peakKb = Math.max(this.peakKb, sum);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface Command {
  cmd: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  seconds: number;
  peakRssMb: number;
  /** User + system CPU seconds of the process and its children (GNU time), or null without GNU time. */
  cpuSeconds: number | null;
  stdout: string;
  stderr: string;
}

/** A measured process in flight: the handle W4 needs to signal it and watch it. */
export interface Measured {
  child: ChildProcess;
  startedAt: number;
  done: Promise<RunResult>;
}

function appendTail(current: string, chunk: Buffer): string {
  const next = current + chunk.toString('utf8');
  return next.length > TAIL_CHARS ? next.slice(-TAIL_CHARS) : next;
}

/**
 * Starts `command` in its own process group, wrapped in GNU time when present (for an exact
 * max RSS, written to a file in `scratchDir`), polling /proc for the tree's memory, and killing
 * it after `timeoutMs`.
 */
export function startMeasured(command: Command, timeoutMs: number, scratchDir: string): Measured {
  const wrap = existsSync(GNU_TIME);
  const timeFile = join(scratchDir, `maxrss-${++measuredCount}`);
  const cmd = wrap ? GNU_TIME : command.cmd;
  const args = wrap ? ['-q', '-f', '%M %U %S', '-o', timeFile, command.cmd, ...command.args] : command.args;

  const startedAt = performance.now();
  const child = spawn(cmd, args, {
    cwd: command.cwd,
    env: command.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const monitor = child.pid === undefined ? undefined : new RssMonitor(child.pid, !wrap);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout = appendTail(stdout, chunk)));
  child.stderr?.on('data', (chunk: Buffer) => (stderr = appendTail(stderr, chunk)));

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child);
  }, timeoutMs);

  const done = new Promise<RunResult>((resolve) => {
    child.once('error', (error) => (stderr += `\n${error.message}`));
    child.once('close', (exitCode, signal) => {
      const seconds = (performance.now() - startedAt) / 1000;
      clearTimeout(timer);
      monitor?.stop();
      void finish(exitCode, signal, seconds).then(resolve);
    });
  });

  async function finish(exitCode: number | null, signal: NodeJS.Signals | null, seconds: number): Promise<RunResult> {
    let peakKb = monitor?.peakKb ?? 0;
    let cpuSeconds: number | null = null;
    if (wrap) {
      const [rssKb, user, system] = ((await readFile(timeFile, 'utf8').catch(() => '')).trim().split('\n').pop() ?? '').split(' ').map(Number);
      if (Number.isFinite(rssKb)) peakKb = Math.max(peakKb, rssKb!);
      if (Number.isFinite(user) && Number.isFinite(system)) cpuSeconds = user! + system!;
      rmSync(timeFile, { force: true });
      // GNU time reports the child's own exit status; a signal shows as "Command terminated by signal".
    }
    return { exitCode, signal, timedOut, seconds, peakRssMb: peakKb / 1024, cpuSeconds, stdout, stderr };
  }

  return { child, startedAt, done };
}

/** Runs a command to completion under measurement. */
export function runMeasured(command: Command, timeoutMs: number, scratchDir: string): Promise<RunResult> {
  return startMeasured(command, timeoutMs, scratchDir).done;
}

/**
 * Starts a long-lived helper (the origin) in its own group, with a stdin pipe whose closing
 * tells it to exit, and resolves with the first line it prints on stdout.
 */
export function startService(command: Command, readyTimeoutMs: number): Promise<{ child: ChildProcess; firstLine: string }> {
  const child = spawn(command.cmd, command.args, {
    cwd: command.cwd,
    env: command.env ?? process.env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  track(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`service did not start within ${readyTimeoutMs} ms: ${err.trim()}`));
    }, readyTimeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => (err = appendTail(err, chunk)));
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const newline = out.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      resolve({ child, firstLine: out.slice(0, newline) });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited (${code}) before it was ready: ${err.trim()}`));
    });
  });
}

/** Waits for a child to exit, up to `ms`; true if it did. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A TCP port free on 127.0.0.1 right now (for a service the bench starts itself: redis-server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
