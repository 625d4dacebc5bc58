// A real redis-server (Debian's package) for the tests of distributed runs: started on a free 127.0.0.1 port with its
// own temporary folder and append-only persistence, stopped (and restartable) by the test. Never a mock. Also the
// child imgdl processes (coordinators, workers) those tests start, bounded in time.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, tmpDir } from './cli.ts';

/** Why redis-server cannot be used here, or undefined when it can. */
export function redisMissing(): string | undefined {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return probe.error || probe.status !== 0 ? 'redis-server is not installed (apt-get install -y redis-server)' : undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops it (SIGTERM: the append-only file is flushed), waiting until it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port and folder (its data comes back from the append-only file). */
  start(): Promise<void>;
}

/** Starts redis-server on a free port; stopped when the test file ends (the caller should stop it too). */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = tmpDir('imgdl-redis-');
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'no'], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (await answers(port)) return;
      await sleep(50);
    }
    throw new Error(`redis-server did not answer on port ${port} within 10 s`);
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  process.once('exit', () => child?.kill('SIGKILL'));
  await start();
  return { port, url: `redis://127.0.0.1:${port}/0`, stop, start };
}

/** True when something on the port answers PING with PONG. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** A child imgdl process, bounded in time, whose output is kept and which can be killed. */
export interface Proc {
  child: ChildProcess;
  /** When its stderr first matched `pattern`, if it has. */
  at: (pattern: RegExp) => number | undefined;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<number | null>;
}

/** Starts `imgdl ARGS` in `cwd` (killed after `timeoutMs`), without the storage variables of the test's environment. */
export function imgdl(args: string[], cwd: string, timeoutMs = 180_000): Proc {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['IMGDL_STORAGE'];
  delete env['CRAWLEE_STORAGE_DIR'];
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const seen: Array<[number, string]> = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    seen.push([Date.now(), err]);
  });
  const at = (pattern: RegExp) => seen.find(([, text]) => pattern.test(text))?.[0];
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => {
    clearTimeout(timer);
    resolve(code);
  }));
  return { child, at, stderr: () => err, stdout: () => out, exit };
}

/** Requests of each path (starting with `prefix`) at the origin beyond the first: what was fetched again. */
export function refetches(o: { log: ReadonlyArray<{ path: string }> }, prefix: string, from = 0): number {
  const counts = new Map<string, number>();
  for (const e of o.log.slice(from)) if (e.path.startsWith(prefix)) counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
  return [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
}

export async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Waits until a run in the Redis at `url` (not yet merged) passes `ready` (given its hash), while `coordinator`
 * runs: e.g. all its shards are in the queue (`enqueued`), so that workers started with --exit-when-idle stay.
 */
export async function runIn(url: string, coordinator: Proc, what: string, ready: (meta: Record<string, string>) => boolean, ms = 60_000): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { lazyConnect: true });
  await client.connect();
  try {
    const deadline = Date.now() + ms;
    for (;;) {
      const runs = await client.zrange('imgdl:runs', '0', '-1');
      const metas = await Promise.all(runs.map((r) => client.hgetall(`imgdl:run:${r}`)));
      if (metas.some((m) => m['merged'] !== '1' && ready(m))) return;
      if (Date.now() > deadline || coordinator.child.exitCode !== null) throw new Error(`${what}: not so: ${coordinator.stderr()}`);
      await sleep(50);
    }
  } finally {
    client.disconnect();
  }
}

/** Waits until a run's shards are all in the queue (workers with --exit-when-idle started before would leave). */
export const enqueuedIn = (url: string, coordinator: Proc): Promise<void> => runIn(url, coordinator, 'the run was enqueued', (m) => m['enqueued'] === '1');
