/**
 * The benchmark's image origin: serves one precomputed PNG from memory at /img/<i>.png.
 *
 *   node --import tsx bench/origin.ts --bytes 12288 [--latency 50] [--ports 50]
 *
 * Prints {"ports":[...]} on one stdout line once every port listens, then serves until it is
 * killed or its stdin closes (so it never outlives the harness that started it).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { makePng } from './lib/png.ts';

interface OriginOptions {
  bytes: number;
  latencyMs: number;
  ports: number;
}

const IMAGE_PATH = /^\/img\/\d+\.png$/;

function readOptions(): OriginOptions {
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: String(12 * 1024) },
      latency: { type: 'string', default: '0' },
      ports: { type: 'string', default: '1' },
    },
  });
  return { bytes: Number(values.bytes), latencyMs: Number(values.latency), ports: Number(values.ports) };
}

function handler(image: Buffer, latencyMs: number) {
  const headers = { 'content-type': 'image/png', 'content-length': String(image.length) };
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (!IMAGE_PATH.test(req.url ?? '')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const send = (): void => {
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : image);
    };
    if (latencyMs > 0) setTimeout(send, latencyMs);
    else send();
  };
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
  const onRequest = handler(makePng(options.bytes), options.latencyMs);
  const servers: Server[] = [];
  for (let i = 0; i < options.ports; i++) {
    const server = createServer({ keepAlive: true }, onRequest);
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
