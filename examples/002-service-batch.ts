// Seed 002: a web service that fetches a base image and its detection images into memory for each request,
// with one Downloader (one connection pool, shared limits) created once for the whole service. The answer
// lists every URL in input order, with its size and type or its error code: one bad URL never fails the batch.
// This script starts the service on a free port, calls it once (one URL is a 404), prints the answer and stops.
//
//   npx tsx examples/002-service-batch.ts [--base-url URL]
//   bun examples/002-service-batch.ts [--base-url URL]
//   deno run -A examples/002-service-batch.ts [--base-url URL]
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { parseArgs } from 'node:util';
import { Downloader } from '../src/index.ts';

const { values } = parseArgs({ options: { 'base-url': { type: 'string' } } });
const base = values['base-url'] ?? process.env.IMGDL_BASE_URL ?? 'http://flupy.org/data/flags';

const downloader = new Downloader({ concurrency: 32, perHost: 8, timeout: 10, retries: 2 });

// POST {"base": URL, "detections": [URL, ...]}
const server = http.createServer(async (req, res) => {
  try {
    const batch = JSON.parse(await text(req)) as { base: string; detections: string[] };
    const results = await downloader.fetch([batch.base, ...batch.detections]);
    // r.data holds each image's bytes: hand them to your model here.
    const images = results.map((r) =>
      r.ok ? { url: r.url, bytes: r.bytes, type: r.contentType, width: r.width, height: r.height } : { url: r.url, error: r.code, status: r.status },
    );
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ base: images[0], detections: images.slice(1) }));
  } catch (error) {
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(error) }));
  }
});

server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
try {
  const batch = { base: `${base}/cn/cn.gif`, detections: ['us', 'xx', 'jp'].map((cc) => `${base}/${cc}/${cc}.gif`) };
  const response = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: JSON.stringify(batch) });
  console.log(`HTTP ${response.status}`, JSON.stringify(await response.json(), null, 2));
  if (!response.ok) process.exitCode = 1;
} finally {
  server.close();
  await downloader.close();
}
