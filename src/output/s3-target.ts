// `--out s3://bucket/prefix`: the output target, parsed and checked. No AWS SDK here: this module is imported by get()
// for every run, and the SDK (@aws-sdk/client-s3, @aws-sdk/lib-storage) is loaded by src/output/s3.ts only when an
// s3:// output is used.
import { UsageError } from '../errors.ts';

/** Where an s3:// run puts its images and run files. */
export interface S3Target {
  bucket: string;
  /** The key prefix, without a leading or trailing slash ('' for the bucket's root). */
  prefix: string;
  /** An S3-compatible store's endpoint (`http://127.0.0.1:9000`, `https://<account>.r2.cloudflarestorage.com`); none: AWS. */
  endpoint?: string;
  /** `path` (https://host/bucket/key: MinIO, Ceph, s3rver…) or `virtual` (https://bucket.host/key: AWS's default). */
  addressing: 'path' | 'virtual';
  /** The region to sign for; none: the SDK's (AWS_REGION, the profile), else us-east-1 with an endpoint. */
  region?: string;
}

/** The s3 options of get() (and what a distributed run hands its workers). */
export interface S3Options {
  /**
   * The endpoint of an S3-compatible store (MinIO, Ceph, R2, Garage…), e.g. `http://127.0.0.1:9000`. The CLI passes
   * --s3-endpoint, else $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL. @default AWS S3
   */
  s3Endpoint?: string;
  /** `path` or `virtual` bucket addressing. @default "path" with `s3Endpoint`, else "virtual" */
  s3Addressing?: string;
  /** The region requests are signed for. @default the SDK's (AWS_REGION, the profile), else us-east-1 with `s3Endpoint` */
  s3Region?: string;
}

export function isS3Url(value: unknown): value is string {
  return typeof value === 'string' && /^s3:\/\//i.test(value);
}

/** Bucket names as S3 allows them (3-63 characters: lower-case letters, digits, dots and hyphens). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `s3://bucket/prefix` (and the s3 options), checked; a UsageError naming what is wrong otherwise. */
export function parseS3Target(out: string, options: S3Options = {}): S3Target {
  const m = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(out);
  const usage = (why: string) => new UsageError(`Expected \`out\` to be a folder or s3://BUCKET/PREFIX, got ${JSON.stringify(out)}: ${why}`);
  if (!m) throw usage('not an s3:// URL');
  const [, bucket, rest] = m as unknown as [string, string, string];
  if (bucket === '') throw usage('no bucket');
  if (!BUCKET.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw usage(`${JSON.stringify(bucket)} is not a valid bucket name (3-63 lower-case letters, digits, dots and hyphens)`);
  }
  const prefix = rest.replace(/\/+$/, '');
  if (prefix !== '' && prefix.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw usage('the prefix has an empty, "." or ".." segment');
  }
  if ([...prefix].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) || prefix.includes('?') || prefix.includes('#')) throw usage('the prefix has a control character, ? or #');
  const target: S3Target = { bucket, prefix, addressing: 'virtual' };
  if (options.s3Endpoint !== undefined) {
    const e = options.s3Endpoint;
    if (typeof e !== 'string' || !URL.canParse(e) || !/^https?:$/.test(new URL(e).protocol)) {
      throw new UsageError(`Expected \`s3Endpoint\` to be an http(s) URL like http://127.0.0.1:9000, got ${JSON.stringify(e)}`);
    }
    const url = new URL(e);
    if (url.username || url.password) throw new UsageError('`s3Endpoint` must not carry credentials: they come from the AWS environment or profile');
    target.endpoint = url.href.replace(/\/$/, '');
    target.addressing = 'path';
  }
  if (options.s3Addressing !== undefined) {
    if (options.s3Addressing !== 'path' && options.s3Addressing !== 'virtual') {
      throw new UsageError(`Expected \`s3Addressing\` to be one of path, virtual, got ${JSON.stringify(options.s3Addressing)}`);
    }
    target.addressing = options.s3Addressing;
  }
  if (options.s3Region !== undefined) {
    if (typeof options.s3Region !== 'string' || !/^[a-z0-9-]{1,40}$/i.test(options.s3Region)) {
      throw new UsageError(`Expected \`s3Region\` to be a region like eu-west-1, got ${JSON.stringify(options.s3Region)}`);
    }
    target.region = options.s3Region;
  }
  return target;
}

/** Refuses s3 options given with a folder output (they would be silently ignored). */
export function checkNoS3Options(options: S3Options): void {
  for (const key of ['s3Endpoint', 's3Addressing', 's3Region'] as const) {
    if (options[key] !== undefined) throw new UsageError(`\`${key}\` is for an s3:// output (\`out\`: s3://BUCKET/PREFIX)`);
  }
}

/** The key of `name` (a path relative to the output) under the target's prefix. */
export function s3Key(target: S3Target, name: string): string {
  return target.prefix === '' ? name : `${target.prefix}/${name}`;
}

/** `s3://bucket/prefix[/name]`, as shown to users. */
export function s3Url(target: S3Target, name?: string): string {
  const key = name === undefined ? target.prefix : s3Key(target, name);
  return `s3://${target.bucket}${key === '' ? '' : `/${key}`}`;
}
