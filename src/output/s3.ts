// `--out s3://bucket/prefix`: images uploaded to an S3-compatible store as objects, each under the name the folder
// layout would give it; the run's state, records and temporary files stay in a local folder (in the run's state
// folder), and its run files (metadata.jsonl, failures.jsonl, stats.json, report.html) are uploaded from there at
// checkpoints and at the end. Loaded (with the AWS SDK: @aws-sdk/client-s3, @aws-sdk/lib-storage) only for an
// s3:// output.
//
// What an object store gives and what is built on it:
// - an object appears whole or not at all: a PutObject is atomic, a multipart upload is invisible until completed.
//   So an image's name is claimed in the store ("saving"), then uploaded; a crash in between leaves nothing under the
//   name, and the next run checks (HEAD) and fetches the image again (MetadataLog.reconcile, step 3);
// - never replacing an object: conditional writes (If-None-Match: *, on PutObject and CompleteMultipartUpload: AWS S3,
//   R2, MinIO, Ceph…) answer 412 when the name is taken, and the image takes the next stable name, as in a folder.
//   A store that ignores the condition (found out once per run by a probe) gets a HEAD before each upload instead:
//   a narrow race with another writer remains there, which the README states;
// - the same bytes already there under the name (a run whose local state was lost) are this image's: adopted,
//   nothing uploaded twice (objects carry their sha256 as x-amz-meta-sha256).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import type { S3Client } from '@aws-sdk/client-s3';
import { DownloadError, isNetworkCode, UsageError } from '../errors.ts';
import { save, type DownloadContext, type Fetched, type ImageRecord, type Placer } from '../core/download.ts';
import { disambiguate } from '../core/naming.ts';
import type { Processed } from '../process/image.ts';
import type { SavedCheck } from '../storage/metadata.ts';
import { META_METADATA_BYTES, type Item, type RunStore } from '../storage/state.ts';
import type { OutputSink } from './dataset.ts';
import { s3Key, s3Url, type S3Target } from './s3-target.ts';

type ClientS3 = typeof import('@aws-sdk/client-s3');
type LibStorage = typeof import('@aws-sdk/lib-storage');

let loading: Promise<{ sdk: ClientS3; storage: LibStorage }> | undefined;

/** The AWS SDK's S3 client and lib-storage; a UsageError (one line) when they are not installed. */
export function loadS3Sdk(): Promise<{ sdk: ClientS3; storage: LibStorage }> {
  loading ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(
    ([sdk, storage]) => ({ sdk, storage }),
    (error: unknown) => {
      loading = undefined;
      throw new UsageError(`An s3:// output needs the AWS SDK: npm install @aws-sdk/client-s3 @aws-sdk/lib-storage (${(error as Error).message.split('\n')[0]})`);
    },
  );
  return loading;
}

/** Bodies up to this size go up in one PutObject; larger ones in parts of this size (lib-storage's Upload). */
export const PART_SIZE = 8 * 1024 * 1024;

/** How uploads are retried and bounded (the run's --retries, --retry-delay, --timeout and --stall-timeout). */
export interface UploadSettings {
  retries: number;
  retryDelayMs: number;
  timeoutMs: number;
  stallTimeoutMs: number;
  connectTimeoutMs: number;
}

/** What is known of an object: its size, and the sha256 imgdl stored with it (none for an object it did not write). */
export interface ObjectInfo {
  bytes: number;
  sha256?: string;
}

/** The HTTP status of an SDK error, if the store answered. */
function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function nameOf(error: unknown): string {
  return (error as { name?: string; Code?: string } | undefined)?.Code ?? (error as { name?: string } | undefined)?.name ?? 'Error';
}

/** What a failed request says, in one line: `NoSuchBucket: The specified bucket does not exist (HTTP 404)`. */
export function describeS3Error(error: unknown): string {
  const status = statusOf(error);
  const message = ((error as Error)?.message ?? String(error)).split('\n')[0]!;
  const name = nameOf(error);
  const code = (error as { code?: unknown })?.code;
  const text = message === '' || message === 'UnknownError' ? name : message.startsWith(name) ? message : `${name}: ${message}`;
  return `${text}${typeof code === 'string' && !text.includes(code) ? ` (${code})` : ''}${status !== undefined ? ` (HTTP ${status})` : ''}`;
}

/** True when trying again may help: no answer (the network), a timeout, 408, 429, 5xx, a conditional-write conflict. */
export function retryableS3Error(error: unknown): boolean {
  const status = statusOf(error);
  const name = nameOf(error);
  if (name === 'CredentialsProviderError' || /Region is missing/i.test((error as Error)?.message ?? '')) return false;
  if (status === undefined || status === 0) {
    const code = (error as { code?: unknown })?.code;
    if (typeof code === 'string' && isNetworkCode(code)) return true;
    return ['TimeoutError', 'AbortError', 'RequestTimeout', 'NetworkingError', 'ECONNRESET'].includes(name) || !(error instanceof TypeError || error instanceof RangeError);
  }
  return status >= 500 || status === 429 || status === 408 || status === 409 || name === 'RequestTimeout' || name === 'SlowDown';
}

function taken(error: unknown): boolean {
  return statusOf(error) === 412 || nameOf(error) === 'PreconditionFailed';
}

/** An s3:// output's client, with retries and bounded requests: opened (and probed) once per process and target. */
export class S3Output {
  private static readonly opened = new Map<string, Promise<S3Output>>();

  private constructor(
    readonly target: S3Target,
    readonly client: S3Client,
    private readonly sdk: ClientS3,
    private readonly storage: LibStorage,
    private readonly settings: UploadSettings,
    /** The store honours If-None-Match: * (a 412 when the key exists); else a HEAD goes before each upload. */
    public conditional: boolean,
    /** Bodies over this go up in parts (tests lower it to see lib-storage's multipart path). */
    readonly partSize: number,
  ) {}

  /**
   * The client for `target`, once the store was seen to take a write under the prefix (a probe object, written twice
   * with If-None-Match: * to learn whether the store honours it, then deleted). A UsageError (one line) when it cannot:
   * no credentials, no such bucket, access denied, the endpoint unreachable. Shared by the runs of one process.
   */
  static open(target: S3Target, run: UploadSettings, options: { partSize?: number } = {}): Promise<S3Output> {
    // Only these of the run's options (it may pass all of them).
    const settings: UploadSettings = { retries: run.retries, retryDelayMs: run.retryDelayMs, timeoutMs: run.timeoutMs, stallTimeoutMs: run.stallTimeoutMs, connectTimeoutMs: run.connectTimeoutMs };
    const key = JSON.stringify([target, settings, options]);
    let opening = S3Output.opened.get(key);
    if (!opening) {
      opening = S3Output.connect(target, settings, options.partSize ?? PART_SIZE);
      S3Output.opened.set(key, opening);
      opening.catch(() => S3Output.opened.delete(key));
    }
    return opening;
  }

  private static async connect(target: S3Target, settings: UploadSettings, partSize: number): Promise<S3Output> {
    const { sdk, storage } = await loadS3Sdk();
    const make = (region?: string) =>
      new sdk.S3Client({
        ...(target.endpoint !== undefined ? { endpoint: target.endpoint } : {}),
        ...(region !== undefined ? { region } : {}),
        forcePathStyle: target.addressing === 'path',
        // Retries are imgdl's (withRetries below): counted against --retries, with its backoff, and bounded in time.
        maxAttempts: 1,
        // Checksums only where an operation requires one: S3-compatible stores (and s3rver) refuse the streaming
        // trailer checksums the SDK sends by default since 3.729. Single uploads carry their sha256 (checked by the store).
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // Sockets for every upload a run has in flight (S3Sink bounds them to --concurrency; the SDK's default is 50).
        requestHandler: {
          connectionTimeout: settings.connectTimeoutMs,
          requestTimeout: settings.stallTimeoutMs,
          httpAgent: { keepAlive: true, maxSockets: 256 },
          httpsAgent: { keepAlive: true, maxSockets: 256 },
        },
      });
    let client = make(target.region);
    try {
      await client.config.region();
    } catch {
      // No region anywhere (AWS_REGION, the profile): an S3-compatible store takes any; AWS needs the bucket's.
      if (target.endpoint === undefined) {
        client.destroy();
        throw new UsageError(`No AWS region for ${s3Url(target)}: set AWS_REGION (or the profile's region), or give --s3-region`);
      }
      client.destroy();
      client = make('us-east-1');
    }
    const out = new S3Output(target, client, sdk, storage, settings, true, partSize);
    try {
      await out.probe();
    } catch (error) {
      client.destroy();
      throw error;
    }
    return out;
  }

  /** Writes a probe object twice with If-None-Match: * (the second must be refused), then deletes it. */
  private async probe(): Promise<void> {
    const name = `.imgdl-probe-${randomUUID()}`;
    const body = Buffer.from('imgdl probe\n');
    const where = s3Url(this.target);
    const put = (conditional: boolean) =>
      this.client.send(new this.sdk.PutObjectCommand({ Bucket: this.target.bucket, Key: this.key(name), Body: body, ...(conditional ? { IfNoneMatch: '*' } : {}) }), {
        abortSignal: AbortSignal.timeout(this.settings.timeoutMs),
      });
    try {
      try {
        await put(true);
      } catch (error) {
        // A store that does not implement the condition may refuse the header (400, 501): a plain write tells.
        const status = statusOf(error);
        if (status === undefined || status === 403 || status === 404) throw error;
        await put(false);
        this.conditional = false;
      }
      if (this.conditional) {
        try {
          await put(true);
          // Written twice: the store ignores the condition.
          this.conditional = false;
        } catch (error) {
          if (!taken(error)) {
            if (statusOf(error) === undefined) throw error;
            this.conditional = false;
          }
        }
      }
    } catch (error) {
      throw new UsageError(probeMessage(error, where, this.target));
    }
    await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.target.bucket, Key: this.key(name) }), { abortSignal: AbortSignal.timeout(this.settings.timeoutMs) }).catch(() => {});
  }

  key(name: string): string {
    return s3Key(this.target, name);
  }

  /**
   * Runs `attempt` with the run's retries: retryable failures (see retryableS3Error) again after a backoff doubling
   * from --retry-delay (at most 30 s, with jitter), each attempt bounded by `timeoutMs` (so a store that stops
   * answering never holds the run). Throws the last error; stops at once when `signal` is aborted.
   */
  async withRetries<T>(attempt: (signal: AbortSignal) => Promise<T>, signal: AbortSignal | undefined, timeoutMs: number): Promise<T> {
    const { retries, retryDelayMs } = this.settings;
    for (let n = 0; ; n++) {
      const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
      try {
        return await attempt(AbortSignal.any(signals));
      } catch (error) {
        if (signal?.aborted) throw error;
        if (n >= retries || !retryableS3Error(error)) throw error;
      }
      const delay = Math.min(30_000, retryDelayMs * 2 ** n) * (0.5 + Math.random());
      await sleep(delay, undefined, signal ? { signal } : {}).catch(() => {});
      if (signal?.aborted) throw new Error('stopped');
    }
  }

  /** An upload's time limit: --timeout, plus a second per MB past the first 10. */
  private timeoutFor(bytes: number): number {
    return Math.round(this.settings.timeoutMs + Math.max(0, bytes - 10 * 1024 * 1024) / 1000);
  }

  /** Size and stored sha256 of an object; undefined when there is none. Throws the SDK's error for other failures. */
  async head(name: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    return this.withRetries(async (s) => {
      try {
        const r = await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.target.bucket, Key: this.key(name) }), { abortSignal: s });
        const sha256 = r.Metadata?.['sha256'];
        return { bytes: r.ContentLength ?? 0, ...(sha256 !== undefined ? { sha256 } : {}) };
      } catch (error) {
        if (statusOf(error) === 404 || nameOf(error) === 'NotFound' || nameOf(error) === 'NoSuchKey') return undefined;
        throw error;
      }
    }, signal, this.settings.timeoutMs);
  }

  /**
   * Uploads `file` under `name`, never replacing an object there: `taken` when the name holds one (412 from a
   * conditional write, or a HEAD first where the store ignores the condition), `put` once the whole object is there.
   * One PutObject up to partSize (with its sha256 for the store to check), else a multipart upload (invisible until
   * completed; aborted on failure). Throws the SDK's error after the retries.
   */
  async putFile(name: string, file: string | Buffer, info: { bytes: number; sha256: string; contentType?: string }, signal?: AbortSignal): Promise<'put' | 'taken'> {
    const { bucket } = this.target;
    const Key = this.key(name);
    const common = { Bucket: bucket, Key, Metadata: { sha256: info.sha256 }, ...(info.contentType ? { ContentType: info.contentType } : {}) };
    return this.withRetries(async (s) => {
      if (!this.conditional && (await this.headOnce(name, s)) !== undefined) return 'taken';
      const condition = this.conditional ? { IfNoneMatch: '*' } : {};
      try {
        if (info.bytes <= this.partSize) {
          const Body = typeof file === 'string' ? await fs.promises.readFile(file) : file;
          await this.client.send(
            new this.sdk.PutObjectCommand({ ...common, ...condition, Body, ChecksumSHA256: Buffer.from(info.sha256, 'hex').toString('base64') }),
            { abortSignal: s },
          );
        } else {
          const abortController = new AbortController();
          const onAbort = () => abortController.abort();
          s.addEventListener('abort', onAbort, { once: true });
          const Body = typeof file === 'string' ? fs.createReadStream(file) : file;
          try {
            const upload = new this.storage.Upload({ client: this.client, params: { ...common, ...condition, Body }, partSize: this.partSize, queueSize: 4, leavePartsOnError: false, abortController });
            await upload.done();
          } finally {
            s.removeEventListener('abort', onAbort);
            if (!Buffer.isBuffer(Body)) Body.destroy();
          }
        }
        return 'put';
      } catch (error) {
        if (taken(error)) return 'taken';
        throw error;
      }
    }, signal, this.timeoutFor(info.bytes));
  }

  private async headOnce(name: string, signal: AbortSignal): Promise<ObjectInfo | undefined> {
    try {
      const r = await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.target.bucket, Key: this.key(name) }), { abortSignal: signal });
      return { bytes: r.ContentLength ?? 0, ...(r.Metadata?.['sha256'] !== undefined ? { sha256: r.Metadata['sha256'] } : {}) };
    } catch (error) {
      if (statusOf(error) === 404 || nameOf(error) === 'NotFound' || nameOf(error) === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  /** Writes (replacing) one of the run's own files, e.g. metadata.jsonl, from a local file. */
  async putRunFile(name: string, file: string, signal?: AbortSignal): Promise<void> {
    const body = await fs.promises.readFile(file);
    const contentType = name.endsWith('.html') ? 'text/html; charset=utf-8' : name.endsWith('.json') ? 'application/json' : 'application/x-ndjson';
    await this.withRetries(async (s) => {
      if (body.length <= this.partSize) {
        await this.client.send(new this.sdk.PutObjectCommand({ Bucket: this.target.bucket, Key: this.key(name), Body: body, ContentType: contentType }), { abortSignal: s });
        return;
      }
      const abortController = new AbortController();
      s.addEventListener('abort', () => abortController.abort(), { once: true });
      await new this.storage.Upload({ client: this.client, params: { Bucket: this.target.bucket, Key: this.key(name), Body: body, ContentType: contentType }, partSize: this.partSize, leavePartsOnError: false, abortController }).done();
    }, signal, this.timeoutFor(body.length));
  }

  /** Downloads an object into `file` (through a temporary name); false when there is no such object. */
  async download(name: string, file: string, signal?: AbortSignal): Promise<boolean> {
    return this.withRetries(async (s) => {
      let body: Uint8Array;
      try {
        const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.target.bucket, Key: this.key(name) }), { abortSignal: s });
        body = await r.Body!.transformToByteArray();
      } catch (error) {
        if (statusOf(error) === 404 || nameOf(error) === 'NoSuchKey' || nameOf(error) === 'NotFound') return false;
        throw error;
      }
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(`${file}.${process.pid}.tmp`, body);
      await fs.promises.rename(`${file}.${process.pid}.tmp`, file);
      return true;
    }, signal, this.settings.timeoutMs * 4);
  }

  /** Every object under `under` (a path relative to the prefix, '' for all), as names relative to the prefix. */
  async *list(under = '', signal?: AbortSignal): AsyncGenerator<{ name: string; bytes: number }> {
    const base = this.target.prefix === '' ? '' : `${this.target.prefix}/`;
    let token: string | undefined;
    do {
      const page = await this.withRetries(
        (s) => this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.target.bucket, Prefix: base + under, ...(token ? { ContinuationToken: token } : {}) }), { abortSignal: s }),
        signal,
        this.settings.timeoutMs,
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) yield { name: o.Key.slice(base.length), bytes: o.Size ?? 0 };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Deletes objects (names relative to the prefix), 1000 per request. */
  async delete(names: readonly string[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < names.length; i += 1000) {
      const chunk = names.slice(i, i + 1000);
      await this.withRetries(
        (s) => this.client.send(new this.sdk.DeleteObjectsCommand({ Bucket: this.target.bucket, Delete: { Objects: chunk.map((n) => ({ Key: this.key(n) })), Quiet: true } }), { abortSignal: s }),
        signal,
        this.settings.timeoutMs,
      );
    }
  }

  /** Deletes one object (names relative to the prefix). */
  async deleteOne(name: string, signal?: AbortSignal): Promise<void> {
    await this.withRetries((s) => this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.target.bucket, Key: this.key(name) }), { abortSignal: s }), signal, this.settings.timeoutMs);
  }
}

/** The one line saying why the probe write failed: credentials, bucket, access, endpoint. */
function probeMessage(error: unknown, where: string, target: S3Target): string {
  const name = nameOf(error);
  const endpoint = target.endpoint ?? 'AWS S3';
  if (name === 'CredentialsProviderError' || /credential/i.test((error as Error)?.message ?? '') && statusOf(error) === undefined) {
    return `No AWS credentials to write to ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (the SDK's default chain: environment, shared files, SSO, instance roles)`;
  }
  if (name === 'NoSuchBucket') return `The bucket ${target.bucket} does not exist at ${endpoint}: create it first, or check --s3-endpoint and the bucket's name`;
  if (['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(name) || statusOf(error) === 403) {
    return `Not allowed to write to ${where} at ${endpoint}: ${describeS3Error(error)}`;
  }
  if (statusOf(error) === undefined) return `Cannot reach ${endpoint} to write to ${where}: ${describeS3Error(error)}`;
  return `Cannot write to ${where} at ${endpoint}: ${describeS3Error(error)}`;
}

/** The run files an s3:// run uploads, and where (a key prefix under the target's: '' or `.imgdl-shards/3/`). */
export interface RunFiles {
  prefix: string;
  names: readonly string[];
}

/** How often metadata.jsonl is uploaded during a run at most; never more than a tenth of the time goes to it. */
const CHECKPOINT_MS = 30_000;

/**
 * The output sink of an s3:// run: each validated image is uploaded under the name the folder layout would give it
 * (claimed in the store first, settled after a crash by a HEAD), and the run's files are uploaded at checkpoints
 * and at the end, from the local folder (authoritative: uploaded again by the next run after a crash).
 */
export class S3Sink implements OutputSink {
  /** Objects under the prefix (name → size), read once when a run must check its records against the store. */
  private listing: Map<string, number> | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> | undefined;
  private lastSize = -1;
  private interval: number;
  private readonly minInterval: number;
  private readonly signal: AbortSignal | undefined;
  private closed = false;
  readonly check: SavedCheck;
  readonly placer: Placer;
  /** See OutputSink.remote: -c bounds the images between their download's start and their upload's end. */
  readonly remote = true;
  private readonly uploads: LimitFunction;

  constructor(
    readonly s3: S3Output,
    private readonly store: RunStore,
    /** The local folder of the run: metadata.jsonl and the others, temporary files. */
    private readonly outDir: string,
    private readonly keepOriginal: boolean,
    private readonly runFiles: RunFiles,
    opts: { concurrency: number; signal?: AbortSignal; checkpointMs?: number },
  ) {
    this.uploads = pLimit(opts.concurrency);
    this.signal = opts.signal;
    this.minInterval = this.interval = opts.checkpointMs ?? CHECKPOINT_MS;
    this.check = {
      there: (file, bytes) => {
        const size = this.listing?.get(file);
        return size !== undefined && (bytes === undefined || size === bytes);
      },
      whole: async (file, record) => {
        let want: { bytes?: unknown; sha256?: unknown };
        try {
          want = JSON.parse(record) as typeof want;
        } catch {
          return false;
        }
        const info = await this.s3.head(file, this.signal).catch(() => undefined);
        if (!info || (typeof want.bytes === 'number' && info.bytes !== want.bytes)) return false;
        return info.sha256 === undefined || typeof want.sha256 !== 'string' || info.sha256 === want.sha256;
      },
    };
    this.placer = {
      // Names the listing holds are never claimed: one of them with exactly these bytes is this image's (as
      // sameFileInFolder does for a folder). Without a listing, an upload that finds its name taken checks (put).
      adoptable: async (ctx, base, url, fetched) => {
        if (!this.listing) return undefined;
        for (let i = -1; i < 2; i++) {
          const name = i < 0 ? base : disambiguate(base, url, i);
          if (this.listing.get(name) !== fetched.bytes) continue;
          const info = await this.s3.head(name, ctx.signal).catch(() => undefined);
          if (info?.sha256 === fetched.sha256 && info.bytes === fetched.bytes) return name;
        }
        return undefined;
      },
      put: (ctx, source, name, record) => this.upload(ctx, source, name, record),
      putOriginal: async (ctx, tmpPath, placed, name, fetched) => {
        if (placed === name) return name;
        await this.upload(ctx, tmpPath, name, { bytes: fetched.bytes, sha256: fetched.sha256, contentType: fetched.sniffed.mime }, true);
        if (placed !== undefined) await this.s3.deleteOne(placed, ctx.signal).catch(() => {});
        return name;
      },
    };
  }

  private async upload(ctx: DownloadContext, source: string, name: string, info: { bytes: number; sha256: string; contentType?: string }, original = false): Promise<void> {
    let outcome: 'put' | 'taken';
    try {
      // At most --concurrency uploads at once (Dataset's gate bounds images from download to upload already; an
      // original and its output are two): an upload's time limit starts when it starts, not while it waits for a socket.
      outcome = await this.uploads(() => this.s3.putFile(name, source, info, ctx.signal));
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      throw new DownloadError('upload_failed', `Could not upload ${s3Url(this.s3.target, name)}: ${describeS3Error(error)}`, { cause: error, ...(status !== undefined ? { status } : {}) });
    }
    if (outcome === 'put') return;
    // The name holds an object: this image's own bytes (an upload whose record was lost) are taken over; else never replaced.
    const there = await this.s3.head(name, ctx.signal).catch(() => undefined);
    if (there?.sha256 === info.sha256 && there.bytes === info.bytes) return;
    throw Object.assign(new Error(`${name} is there already${original ? ', with other bytes' : ''} (never replaced)`), { code: 'EEXIST', ...(original ? { original: true } : {}) });
  }

  async save(item: Item, url: URL, fetched: Fetched, tmpPath: string, processed: Processed | undefined, ctx: DownloadContext): Promise<ImageRecord> {
    // A body kept in memory (for processing) goes to its temporary file only when it is what is saved, or kept.
    if (fetched.body !== undefined && (!processed?.output || this.keepOriginal)) {
      try {
        await fs.promises.writeFile(tmpPath, fetched.body);
      } catch (error) {
        throw new DownloadError('write_failed', `Could not write the temporary file: ${(error as Error).message}`, { cause: error });
      }
    }
    return save(item, url, fetched, tmpPath, ctx, processed ? { processed, keepOriginal: this.keepOriginal } : undefined, this.placer);
  }

  /**
   * Before the metadata file is reconciled: without a local copy (a new machine, --fresh, another run into the same
   * prefix) the store's is fetched, so its records are known; and when records must be checked against the store
   * (after a crash, a copy fetched, a file longer or shorter than the state accounted for), the prefix is listed once.
   */
  async recover(unclean = false): Promise<void> {
    const file = path.join(this.outDir, 'metadata.jsonl');
    let fetched = false;
    if (!fs.existsSync(file)) fetched = await this.s3.download(this.runFiles.prefix + 'metadata.jsonl', file, this.signal);
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
    const accounted = Number(this.store.getMeta(META_METADATA_BYTES) ?? 0);
    if (unclean || fetched || size !== accounted) {
      this.listing = new Map();
      for await (const o of this.s3.list('', this.signal)) this.listing.set(o.name, o.bytes);
    }
    this.lastSize = fetched ? size : -1;
    this.scheduleCheckpoint();
  }

  /** Names under the prefix (lower-cased) known from a listing, never given to a new image; empty when not listed. */
  existingNames(): Set<string> {
    return new Set([...(this.listing?.keys() ?? [])].map((n) => n.toLowerCase()));
  }

  private scheduleCheckpoint(): void {
    if (this.closed || !this.runFiles.names.includes('metadata.jsonl')) return;
    this.checkpointTimer = setTimeout(() => {
      this.checkpointing = this.checkpoint().finally(() => {
        this.checkpointing = undefined;
        this.scheduleCheckpoint();
      });
    }, this.interval);
    this.checkpointTimer.unref();
  }

  /** metadata.jsonl uploaded when it grew (whole lines only), so a lost machine loses at most one interval. */
  private async checkpoint(): Promise<void> {
    const file = path.join(this.outDir, 'metadata.jsonl');
    try {
      const size = fs.statSync(file).size;
      if (size === this.lastSize) return;
      const started = Date.now();
      const text = await fs.promises.readFile(file);
      const whole = text.subarray(0, text.lastIndexOf(0x0a) + 1);
      const tmp = path.join(this.outDir, `.metadata.checkpoint.${process.pid}`);
      await fs.promises.writeFile(tmp, whole);
      try {
        await this.s3.putRunFile(this.runFiles.prefix + 'metadata.jsonl', tmp, this.signal);
      } finally {
        await fs.promises.rm(tmp, { force: true });
      }
      this.lastSize = size;
      this.interval = Math.max(this.minInterval, (Date.now() - started) * 10);
    } catch {
      // The next checkpoint, or the end of the run, uploads it.
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.checkpointTimer);
    await this.checkpointing;
  }

  /**
   * Uploads the run's files from the local folder (each replacing the last upload); one the run removed (no
   * failures.jsonl when nothing failed) is deleted from the store. Throws when the store keeps failing: the local
   * copies stay, and the next run uploads them.
   */
  async publish(): Promise<void> {
    for (const name of this.runFiles.names) {
      const file = path.join(this.outDir, name);
      try {
        if (fs.existsSync(file)) await this.s3.putRunFile(this.runFiles.prefix + name, file);
        else await this.s3.deleteOne(this.runFiles.prefix + name);
      } catch (error) {
        throw new Error(`Could not upload ${name} to ${s3Url(this.s3.target, this.runFiles.prefix + name)}: ${describeS3Error(error)}. It is kept in ${this.outDir}; the same command uploads it again.`, { cause: error });
      }
    }
  }
}
