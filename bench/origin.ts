/**
 * The benchmark's image origin: serves one precomputed PNG from memory at /img/<i>.png, and the plugin
 * workloads' sites (`lib/sites.ts`: the flags at /data/flags/<cc>/..., the gallery at /gallery/...).
 *
 *   node --import tsx bench/origin.ts --bytes 12288 [--latency 50] [--ports 50] [--delay 500-5000 --seed 12]
 *                                     [--capacity 4 [--retry-after 1]]
 *
 * `--capacity N` makes a limiting host (W9): at most N image requests in flight (arrived, not yet answered in full);
 * one beyond is answered 429 at once, with `Retry-After: S` when `--retry-after S` is given. `rejected` in the stats
 * counts those 429s.
 *
 * `--delay MIN-MAX` (ms) delays every answer by a uniformly random time, drawn from `--seed` and the path alone
 * (so every tool meets the same delay for the same request); it replaces --latency.
 *
 * (Below the bare 64x64 image, about 10.6 KB, the image is an 8x8 one padded to --bytes.)
 *
 * Prints {"ports":[...]} on one stdout line once every port listens, then serves until it is
 * killed or its stdin closes (so it never outlives the harness that started it).
 *
 * It counts what it is asked for; `GET /__stats` (any port) answers with the counts as JSON:
 *   {"requests","images","imagesDone","maxInFlight","untracked","firstImageAt","lastImageDoneAt","firstImageAfterMark"},
 *   and with `?paths=1` also
 *   {"distinct","twice","maxPerPath","twiceSample"} (a scan of the per-path counts: ask only at the end).
 * `images` counts requests for /img/<i>.png (at arrival), `distinct` the paths asked for at least once,
 * `twice` those asked for more than once (`twiceSample`: the first few of their <i>). `?mark=1` starts a wait:
 * `firstImageAfterMark` is then the wall-clock time (epoch ms, fractional) at which the next image request
 * arrived, null until one does. `firstImageAt` is the wall-clock time (epoch ms, fractional) at which the first
 * image request since the last reset arrived, `lastImageDoneAt` the time at which the last image response
 * since then finished being written (handed to the kernel), and `imagesDone` how many did: together they give
 * a tool's in-run rate without its process start-up and exit (null until an image arrives / is done).
 * `maxInFlight` is the most image requests there were at once between arrival and that point (the
 * concurrency a tool actually reached; with --latency, responses wait in the origin).
 * `?reset=1` zeroes every count (after answering with the old ones); a response to a request that arrived
 * before the reset is not counted as done after it. The stats requests themselves are not counted.
 * Also, for every request but the stats: `requestsInFlight`-style `maxRequestsInFlight` (pages and images alike),
 * `connections` (accepted since the reset) and `maxOpenConnections`, `firstImageDoneAt`; with `?log=1` also `log`
 * (one entry per request but those for /img/<i>.png: `[path, arrivedAt, delayMs, doneAt|null, status]`, epoch ms) and
 * `timeline` (`[msSinceReset, openConnections, requestsInFlight]` every 250 ms since the reset).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { makePng } from './lib/png.ts';
import { delayFor, Sites } from './lib/sites.ts';

interface OriginOptions {
  bytes: number;
  latencyMs: number;
  ports: number;
  /** Uniformly random delay per path, ms; null: none (then --latency applies). */
  delay: { minMs: number; maxMs: number; seed: number } | null;
  /** Most image requests in flight; one beyond is answered 429. 0: no limit. */
  capacity: number;
  /** Retry-After (seconds) sent with those 429s; null: none. */
  retryAfter: string | null;
}

/** One request (not /img/<i>.png): path, arrival (epoch ms), delay (ms), response written (epoch ms) or null, status. */
type LogEntry = [string, number, number, number | null, number];
const MAX_LOG = 200_000;
const TIMELINE_MS = 250;
const MAX_TIMELINE = 4 * 60 * 30;

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Every request but the stats: in flight, connections over time, and a log of the sites' requests. */
class Activity {
  inFlight = 0;
  maxInFlight = 0;
  openConnections = 0;
  maxOpenConnections = 0;
  connections = 0;
  generation = 0;
  log: LogEntry[] = [];
  private timeline: [number, number, number][] = [];
  private since = now();

  constructor() {
    setInterval(() => {
      if (this.timeline.length < MAX_TIMELINE) {
        this.timeline.push([Math.round(now() - this.since), this.openConnections, this.inFlight]);
      }
    }, TIMELINE_MS).unref();
  }

  connected(): void {
    this.connections++;
    if (++this.openConnections > this.maxOpenConnections) this.maxOpenConnections = this.openConnections;
  }

  /** A request arrived; returns the function to call once it is over (answered or aborted). */
  arrived(): () => void {
    const generation = this.generation;
    if (++this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    return () => {
      if (generation === this.generation) this.inFlight--;
    };
  }

  reset(): void {
    this.generation++;
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.connections = 0;
    this.maxOpenConnections = this.openConnections;
    this.log = [];
    this.timeline = [];
    this.since = now();
  }

  snapshot(withLog: boolean): Record<string, unknown> {
    const counts = { maxRequestsInFlight: this.maxInFlight, connections: this.connections, maxOpenConnections: this.maxOpenConnections };
    return withLog ? { ...counts, log: this.log, timeline: this.timeline } : counts;
  }
}

const IMAGE_PATH = /^\/img\/(\d+)\.png$/;
const STATS_PATH = '/__stats';
/** Per-path counts are kept for image numbers below this (16 MB of counters at most). */
const MAX_TRACKED = 1 << 24;
const TWICE_SAMPLE = 20;

/** Request counts, per image path in a byte array (saturating at 255) indexed by the image number. */
class Counter {
  requests = 0;
  images = 0;
  untracked = 0;
  imagesDone = 0;
  /** Image requests answered 429 (--capacity). */
  rejected = 0;
  /** Image requests of this generation arrived and not yet answered in full, and the most there were. */
  private inFlight = 0;
  private maxInFlight = 0;
  private perPath = new Uint8Array(1 << 16);
  private marked = false;
  private firstAfterMark: number | null = null;
  private firstImageAt: number | null = null;
  private firstImageDoneAt: number | null = null;
  private lastImageDoneAt: number | null = null;
  /** Bumped by every reset, so that a response finishing after one is not counted in the new period. */
  private generation = 0;

  /** Counts an image request (index: the <i> of /img/<i>.png, null for a site's); returns the generation for `imageDone`. */
  image(index: number | null): number {
    this.images++;
    if (++this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    if (this.firstImageAt === null || (this.marked && this.firstAfterMark === null)) {
      const now = performance.timeOrigin + performance.now();
      this.firstImageAt ??= now;
      if (this.marked) this.firstAfterMark ??= now;
    }
    if (index !== null) this.track(index);
    return this.generation;
  }

  /** An image response (of the given generation) has been written out in full. */
  imageDone(generation: number): void {
    if (generation !== this.generation) return;
    this.imagesDone++;
    this.inFlight--;
    this.lastImageDoneAt = performance.timeOrigin + performance.now();
    this.firstImageDoneAt ??= this.lastImageDoneAt;
  }

  private track(index: number): void {
    if (!Number.isSafeInteger(index) || index >= MAX_TRACKED) {
      this.untracked++;
      return;
    }
    if (index >= this.perPath.length) {
      let size = this.perPath.length;
      while (size <= index) size *= 2;
      const grown = new Uint8Array(Math.min(size, MAX_TRACKED));
      grown.set(this.perPath);
      this.perPath = grown;
    }
    if (this.perPath[index]! < 255) this.perPath[index]!++;
  }

  mark(): void {
    this.marked = true;
    this.firstAfterMark = null;
  }

  reset(): void {
    this.requests = 0;
    this.images = 0;
    this.untracked = 0;
    this.imagesDone = 0;
    this.rejected = 0;
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.perPath = new Uint8Array(1 << 16);
    this.marked = false;
    this.firstAfterMark = null;
    this.firstImageAt = null;
    this.firstImageDoneAt = null;
    this.lastImageDoneAt = null;
    this.generation++;
  }

  snapshot(paths: boolean): Record<string, unknown> {
    const counts = {
      requests: this.requests,
      images: this.images,
      imagesDone: this.imagesDone,
      maxInFlight: this.maxInFlight,
      untracked: this.untracked,
      rejected: this.rejected,
      firstImageAt: this.firstImageAt,
      lastImageDoneAt: this.lastImageDoneAt,
      firstImageDoneAt: this.firstImageDoneAt,
      firstImageAfterMark: this.firstAfterMark,
    };
    return paths ? { ...counts, ...this.scan() } : counts;
  }

  private scan(): Record<string, unknown> {
    let distinct = 0;
    let twice = 0;
    let maxPerPath = 0;
    const twiceSample: number[] = [];
    const perPath = this.perPath;
    for (let i = 0; i < perPath.length; i++) {
      const n = perPath[i]!;
      if (n === 0) continue;
      distinct++;
      if (n > maxPerPath) maxPerPath = n;
      if (n > 1) {
        twice++;
        if (twiceSample.length < TWICE_SAMPLE) twiceSample.push(i);
      }
    }
    return { distinct, twice, maxPerPath, twiceSample };
  }
}

function readOptions(): OriginOptions {
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: String(12 * 1024) },
      latency: { type: 'string', default: '0' },
      ports: { type: 'string', default: '1' },
      delay: { type: 'string' },
      seed: { type: 'string', default: '1' },
      capacity: { type: 'string', default: '0' },
      'retry-after': { type: 'string' },
    },
  });
  let delay: OriginOptions['delay'] = null;
  if (values.delay) {
    const [minMs, maxMs] = values.delay.split('-').map(Number);
    if (!Number.isFinite(minMs) || !Number.isFinite(maxMs) || minMs! < 0 || maxMs! < minMs!) {
      throw new Error(`--delay: expected MIN-MAX in ms, got ${values.delay}`);
    }
    delay = { minMs: minMs!, maxMs: maxMs!, seed: Number(values.seed) };
  }
  return {
    bytes: Number(values.bytes),
    latencyMs: Number(values.latency),
    ports: Number(values.ports),
    delay,
    capacity: Number(values.capacity),
    retryAfter: values['retry-after'] ?? null,
  };
}

function stats(counter: Counter, activity: Activity, url: string, res: ServerResponse): void {
  const query = new URLSearchParams(url.slice(STATS_PATH.length).replace(/^\?/, ''));
  const body = JSON.stringify({ ...counter.snapshot(query.get('paths') === '1'), ...activity.snapshot(query.get('log') === '1') });
  if (query.get('reset') === '1') {
    counter.reset();
    activity.reset();
  }
  if (query.get('mark') === '1') counter.mark();
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${body}\n`);
}

function handler(image: Buffer, options: OriginOptions, counter: Counter, activity: Activity) {
  const headers = { 'content-type': 'image/png', 'content-length': String(image.length) };
  const sites = new Sites();
  // --capacity: image requests arrived and not yet over (answered in full or aborted).
  let imagesInFlight = 0;
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '';
    if (req.method === 'GET' && (url === STATS_PATH || url.startsWith(`${STATS_PATH}?`))) {
      stats(counter, activity, url, res);
      return;
    }
    counter.requests++;
    res.once('close', activity.arrived());
    const path = url.split('?')[0] ?? url;
    const waitMs = options.delay ? delayFor(path, options.delay.seed, options.delay.minMs, options.delay.maxMs) : options.latencyMs;
    const later = (send: () => void, always = true): void => {
      // Without --delay, an error answers at once (as it always did); with it, every answer waits.
      if (waitMs > 0 && (always || options.delay)) setTimeout(send, waitMs);
      else send();
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      later(() => res.writeHead(405).end(), false);
      return;
    }
    const match = IMAGE_PATH.exec(path);
    if (match && options.capacity > 0) {
      if (imagesInFlight >= options.capacity) {
        counter.rejected++;
        res.writeHead(429, { 'content-type': 'text/plain', ...(options.retryAfter === null ? {} : { 'retry-after': options.retryAfter }) }).end('slow down\n');
        return;
      }
      imagesInFlight++;
      res.once('close', () => imagesInFlight--);
    }
    const site = match ? null : sites.answer(path);
    if (!match && !site) {
      logged(activity, path, waitMs, res, 404);
      later(() => res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'), false);
      return;
    }
    const generation = match || site?.kind === 'image' ? counter.image(match ? Number(match[1]) : null) : null;
    const done = (): void => {
      if (generation !== null) counter.imageDone(generation);
    };
    if (site) logged(activity, path, waitMs, res, 200);
    const body = site ? site.body : image;
    const send = (): void => {
      res.writeHead(200, site ? { 'content-type': site.contentType, 'content-length': String(site.body.length) } : headers);
      res.end(req.method === 'HEAD' ? undefined : body, done);
    };
    later(send);
  };
}

/** Logs a request (a site's, robots.txt, any 404 but /img), its response's end filled in when it has been written. */
function logged(activity: Activity, path: string, delayMs: number, res: ServerResponse, status: number): void {
  if (activity.log.length >= MAX_LOG) return;
  const entry: LogEntry = [path, now(), Math.round(delayMs), null, status];
  const log = activity.log;
  activity.log.push(entry);
  res.once('finish', () => {
    if (log === activity.log) entry[3] = now();
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function main(): Promise<void> {
  const options = readOptions();
  // Below the size of the 64x64 image, an 8x8 one padded to the size asked for.
  let image = makePng(options.bytes);
  if (image.length > options.bytes) image = makePng(options.bytes, 8, 8);
  const activity = new Activity();
  const onRequest = handler(image, options, new Counter(), activity);
  const servers: Server[] = [];
  for (let i = 0; i < options.ports; i++) {
    const server = createServer({ keepAlive: true }, onRequest);
    server.on('connection', (socket) => {
      activity.connected();
      socket.once('close', () => activity.openConnections--);
    });
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 65_000;
    server.requestTimeout = 0;
    servers.push(server);
  }
  const ports = await Promise.all(servers.map(listen));
  process.stdout.write(`${JSON.stringify({ ports })}\n`);

  const stop = (): never => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

await main();
