// A fake S3 for the tests of s3:// outputs: s3rver (npm), the only S3-compatible server installable here, started
// in this process on a free 127.0.0.1 port with its own temporary folder and stopped by the test file. Plus a
// fault-injecting HTTP proxy in front of it (refuses chosen requests with a status, forwards the others), and the
// environment a child imgdl needs to sign its requests (s3rver's fixed keys; no profile files, no instance metadata).
import http from 'node:http';
import { createHash } from 'node:crypto';
import { S3Client, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { tmpDir } from './cli.ts';
import { freePort } from './redis.ts';

/** Credentials s3rver checks signatures with, and an environment without any other source of AWS settings. */
export const S3_ENV: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_CONFIG_FILE: '/nonexistent/imgdl-test-aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/imgdl-test-aws-credentials',
};

export interface FakeS3 {
  endpoint: string;
  client: S3Client;
  /** Every object under `prefix` of `bucket`: key → bytes. */
  objects(bucket: string, prefix: string): Promise<Map<string, Buffer>>;
  get(bucket: string, key: string): Promise<Buffer | undefined>;
  head(bucket: string, key: string): Promise<{ bytes: number; contentType?: string; sha256?: string } | undefined>;
  put(bucket: string, key: string, body: Buffer): Promise<void>;
  stop(): Promise<void>;
}

export const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** s3rver on a free port, with `buckets` made. */
export async function startS3(buckets: string[]): Promise<FakeS3> {
  const port = await freePort();
  const server = new S3rver({ port, address: '127.0.0.1', directory: tmpDir('imgdl-s3rver-'), silent: true, configureBuckets: buckets.map((name) => ({ name, configs: [] })) });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const get = async (bucket: string, key: string): Promise<Buffer | undefined> => {
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw error;
    }
  };
  return {
    endpoint,
    client,
    get,
    async head(bucket, key) {
      try {
        const r = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return { bytes: r.ContentLength ?? 0, ...(r.ContentType ? { contentType: r.ContentType } : {}), ...(r.Metadata?.['sha256'] ? { sha256: r.Metadata['sha256'] } : {}) };
      } catch (error) {
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
        throw error;
      }
    },
    async objects(bucket, prefix) {
      const out = new Map<string, Buffer>();
      let token: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of page.Contents ?? []) out.set(o.Key!, (await get(bucket, o.Key!))!);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
        if (!token) break;
      }
      return out;
    },
    async put(bucket, key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async stop() {
      client.destroy();
      await server.close();
    },
  };
}

export interface FaultProxy {
  endpoint: string;
  /** Requests seen: method and path. */
  log: Array<{ method: string; path: string; status: number }>;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of `target` (an endpoint URL): `fault(method, path)` returns a status to answer with instead
 * of forwarding (an S3 error body), or undefined to forward. Every request is logged.
 */
export async function startFaultProxy(target: string, fault: (method: string, path: string) => number | undefined): Promise<FaultProxy> {
  const upstream = new URL(target);
  const log: FaultProxy['log'] = [];
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const status = fault(method, path);
    if (status !== undefined) {
      log.push({ method, path, status });
      req.resume();
      req.on('end', () => {
        const code = status === 503 ? 'SlowDown' : status === 500 ? 'InternalError' : status === 403 ? 'AccessDenied' : 'Error';
        res.writeHead(status, { 'content-type': 'application/xml', connection: 'close' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test</Message></Error>`);
      });
      return;
    }
    const forward = http.request({ host: upstream.hostname, port: upstream.port, method, path, headers: req.headers }, (up) => {
      log.push({ method, path, status: up.statusCode ?? 0 });
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A proxy in front of s3rver that honours `If-None-Match: *` on PutObject and CompleteMultipartUpload as AWS S3, R2
 * and MinIO do (a 412 PreconditionFailed when the key holds an object), which s3rver itself ignores: so the tests
 * can take imgdl's conditional-write path too. An emulation (a HEAD, then the forward: not atomic), good for one
 * writer at a time. Logs every request with whether it carried the condition.
 */
export async function startConditionalProxy(s3: FakeS3): Promise<FaultProxy & { conditional: () => number; refused: () => number }> {
  const upstream = new URL(s3.endpoint);
  const log: FaultProxy['log'] = [];
  let conditional = 0;
  let refused = 0;
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', s3.endpoint);
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const writes = (method === 'PUT' && !url.searchParams.has('partNumber')) || (method === 'POST' && url.searchParams.has('uploadId'));
    const forward = () => {
      const f = http.request({ host: upstream.hostname, port: upstream.port, method, path: req.url, headers: req.headers }, (up) => {
        log.push({ method, path: url.pathname, status: up.statusCode ?? 0 });
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      f.on('error', () => res.destroy());
      req.pipe(f);
    };
    if (!writes || req.headers['if-none-match'] !== '*' || !bucket || !key) return forward();
    conditional++;
    void s3.head(bucket, key).then(
      (there) => {
        if (!there) return forward();
        refused++;
        log.push({ method, path: url.pathname, status: 412 });
        req.resume();
        req.on('end', () => res.writeHead(412, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>'));
      },
      () => res.destroy(),
    );
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    conditional: () => conditional,
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
