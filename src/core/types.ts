// What a run is given and what it gives back: the engine's types, apart from its parts so that each part can import
// them without importing the engine.
import type { ReasonCode } from '../errors.ts';
import type { HttpClient, HttpClientKind } from '../http/client.ts';
import type { ProxySettings } from '../http/proxy.ts';
import type { KeyedLimiter } from '../http/limits.ts';
import type { DiskStop } from '../storage/disk.ts';
import type { DownloadSettings, ImageRecord, Page } from './download.ts';
import type { Item } from '../storage/state.ts';
import { OPT_OUT_DIRECTIVES } from './robots.ts';
import type { ProcessSpec } from '../process/image.ts';
import type { S3Target } from '../output/s3-target.ts';

export interface EngineOptions extends DownloadSettings {
  /** Downloads in flight at once. */
  concurrency: number;
  /** Downloads in flight at once to one host: the ceiling of each host's adaptive limit. */
  perHost: number;
  /** Most requests per second to one host (evenly spaced); undefined: no cap. */
  rate?: number;
  connectTimeoutMs: number;
  stallTimeoutMs: number;
  /** Plugin runs: fetch pages whatever the sites' robots.txt says. */
  ignoreRobots: boolean;
  /** Proxies for http and https URLs, and the hosts that bypass them; undefined: none. */
  proxy?: ProxySettings;
  /** What is done to each image before it is saved (--resize…; needs sharp); none: saved as fetched. */
  processing?: ProcessSpec;
  /** `files`: one file per image; `webdataset`: tar shards (src/output/webdataset.ts). */
  layout: 'files' | 'webdataset';
  /** Samples per shard (webdataset). */
  shardSize: number;
  /** Save each distinct image (sha256 of its bytes) once; later copies' records point to the first. */
  dedupe: boolean;
}

export const DEFAULTS: EngineOptions = {
  concurrency: 64,
  perHost: 64,
  retries: 4,
  retryDelayMs: 500,
  maxRetryAfterMs: 120_000,
  timeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  stallTimeoutMs: 20_000,
  maxBytes: 100 * 1024 * 1024,
  maxRedirects: 10,
  userAgent: 'imgdl/0.1 (+https://www.npmjs.com/package/imgdl)',
  blockPrivateNetwork: false,
  ignoreOptOut: false,
  optOutDirectives: OPT_OUT_DIRECTIVES,
  headers: {},
  locationTrusted: false,
  ignoreRobots: false,
  layout: 'files',
  shardSize: 10_000,
  dedupe: false,
};

export const METADATA_FILE = 'metadata.jsonl';
export const FAILURES_FILE = 'failures.jsonl';
/** The run's statistics (counts, failures by code and host, throughput over time), rewritten at the end of each run. */
export const STATS_FILE = 'stats.json';
/** The run's report page (thumbnails, failures, throughput chart), opened offline; see src/report/html.ts. */
export const REPORT_FILE = 'report.html';
/** The output folder's lock: one run at a time writes into a folder. */
export const FOLDER_LOCK = '.imgdl-lock';
/** An s3:// run's local folder, in its state folder: its records, failure report, run files, lock and temporary files. */
export const S3_LOCAL_DIR = 'output';
/** Where bodies are written before they are put under their names (in the output folder: same file system). */
export const TMP_DIR = '.imgdl-tmp';

/** One image to add to a run. */
export interface ItemInput {
  url: string;
  /** The file name to use (made safe by the core); default: from the response and URL. */
  name?: string;
  /** Metadata stored with the image's record. */
  metadata?: unknown;
  /** Headers to fetch it with (names in lower case, checked), on top of the run's. */
  headers?: Record<string, string>;
  /**
   * A stable key, in its record and failure as `key`: an input table's row number, zero-padded (`000000042`), or the
   * site's own id of the image a plugin gives (`flickr:12345`): --archive, and `known()` for --update.
   */
  key?: string;
  /** Its caption (an input table's --caption-col), in its record and failure as `caption`. */
  caption?: string;
  /** Where a plugin found it: for a --name template (kept only when the run has one). */
  found?: FoundOn;
  /** Its key is in the --archive: recorded as already saved (skipped), never fetched. */
  archived?: boolean;
}

/** An image read from an input: an ItemInput (internal), or a row that could not be used (recorded as failed, with its key). */
export interface InputItem extends ItemInput {
  /** Where it came from, for messages (`data.csv row 42, line 44`). */
  where?: string;
  /** A row that cannot be fetched: recorded failed with this code, never fetched. */
  bad?: { code: ReasonCode; message: string };
}

/** Where a plugin found an image: the page (its final URL and title), the page's label, and its position there. */
export interface FoundOn {
  page: { url: string; title: string | null };
  label: string;
  /** 1 for the first image the page's handler returned. */
  index: number;
}

/** A page to visit. */
export interface PageInput {
  url: string;
  label: string;
  userData?: Record<string, unknown>;
  uniqueKey?: string;
  /** Headers to fetch it with (names in lower case, checked), on top of the run's; kept in its userData (HEADERS_KEY). */
  headers?: Record<string, string>;
  /** With `update`: fetch it again if an earlier session did (once per session). */
  refresh?: boolean;
  /** POST this body instead of a GET; kept in its userData (BODY_KEY). */
  body?: string;
}

export interface Summary {
  run: string;
  downloaded: number;
  skipped: number;
  /** Images that failed (pages that failed are `pagesFailed`). */
  failed: number;
  pending: number;
  bytes: number;
  seconds: number;
  imagesPerSecond: number;
  interrupted: boolean;
  outDir: string;
  metadataFile: string;
  failuresFile: string;
  /** stats.json in the output folder (absent when it could not be written: the disk was full). */
  statsFile?: string;
  /** report.html in the output folder (absent with `report: false`, or when it could not be written). */
  reportFile?: string;
  /** Every line of the failure report (images and pages), by reason code. */
  failuresByCode: Partial<Record<ReasonCode, number>>;
  /** With --retry-failed: the earlier failures that were tried again, by reason code. */
  retried?: Partial<Record<ReasonCode, number>>;
  /**
   * Set when the run stopped because nothing more could be written (disk full, quota, read-only): the images not
   * written stay pending, and running the same command again once there is room continues.
   */
  stopped?: DiskStop;
  /** Plugin runs: pages that could not be fetched or handled (in the failure report with `"page": true`). */
  pagesFailed?: number;
  /** Plugin runs: pages found but not visited, past --max-pages or --max-depth. */
  pagesNotVisited?: number;
  /**
   * Hosts whose limit was lowered in the run (429, 503, timeouts, broken connections), most backoffs first, at most
   * 10; absent when none was.
   */
  hosts?: HostSummary[];
}

/** A host that backed off during a run. */
export interface HostSummary {
  host: string;
  /** Images saved from it. */
  images: number;
  /** Images from it that failed. */
  failed: number;
  /** Its limit at the end (the ceiling is --per-host). */
  limit: number;
  /** The lowest its limit went. */
  lowest: number;
  /** Times its limit was lowered. */
  backoffs: number;
}

export interface Progress {
  total: number;
  done: number;
  /** Images that failed. */
  failed: number;
  skipped: number;
  downloaded: number;
  bytes: number;
  retries: number;
  /** Plugin pages that failed. */
  pagesFailed: number;
  elapsedMs: number;
  ingesting: boolean;
  /** Hosts backing off now (limit below --per-host, or paused by Retry-After): how many, and the first few. */
  backingOff?: { count: number; hosts: Array<{ host: string; limit: number; pausedMs: number }> };
}

/** A failure as events report it (an image's, or with `page: true` a plugin page's). */
export interface FailureEvent {
  url: string;
  code: ReasonCode;
  status: number | null;
  message: string;
  page?: boolean;
}

export interface EngineEvents {
  saved: [record: ImageRecord];
  failed: [failure: FailureEvent];
  retry: [info: { url: string; attempt: number; code: ReasonCode; status: number | undefined }];
}

/**
 * A running download, as `onStart` hands it to a caller: its events (`saved`, `failed`, `retry`), its counts, and a
 * way to stop it (the state is kept; running the same call again continues).
 */
export interface RunHandle {
  on<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): unknown;
  off<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): unknown;
  progress(): Progress;
  /** Calls `listener` with the run's counts after each image is saved or fails, and after each page that fails. */
  onProgress(listener: (progress: Progress) => void): void;
  /** No new downloads start; those in flight are abandoned; state is kept. */
  abort(reason?: string): void;
  readonly signal: AbortSignal;
}

/** The userData key holding a page's depth: 0 for a start page, one more for each link followed from there. */
export const DEPTH_KEY = '__depth';
/** The userData key holding a page's own headers (a plugin's PageRequest `headers`). */
export const HEADERS_KEY = '__headers';
/** The userData key holding the body of a page fetched with POST (a plugin's PageRequest `body` or `json`). */
export const BODY_KEY = '__body';

/** A queued page as its handler gets it. */
export interface PageRequest {
  url: string;
  /** The page's key in the queue (`label:url` unless a plugin gave another). */
  uniqueKey: string;
  label: string;
  userData: Record<string, unknown>;
  /** 0 for a start page, one more for each link followed from there. */
  depth: number;
}

/** What a page's label handler may do: no more than this (it never sees the engine). */
export interface PageContext {
  /** Aborted when the run stops. */
  readonly signal: AbortSignal;
  /** Fetches the page (HTML, JSON) with the run's HTTP settings, redirects and retries. Throws DownloadError. */
  fetchPage(url: string, headers?: Readonly<Record<string, string>>, body?: string): Promise<Page>;
  /** Queues pages found on this page (one level deeper), within --max-pages and --max-depth. */
  enqueue(pages: PageInput[]): void;
  /** Adds images found on this page. */
  addItems(images: ItemInput[]): void;
  /** Records an image that cannot be fetched at all (a name that is a path): it fails with `code`. */
  failImage(url: string, code: ReasonCode, message: string): void;
  /** Records this page as failed (bad entries in its handler's result), and goes on. */
  failPage(code: ReasonCode, message: string): void;
  /** True when an image with this key is in the run's state (and has not failed). */
  known(key: string): boolean;
}

/** A handler for pages with a given label (site plugins add theirs). */
export type LabelHandler = (request: PageRequest, ctx: PageContext) => Promise<void>;

export interface RunSpec {
  /** Folder holding the run's state (storage/runs/NAME). */
  stateDir: string;
  /** The run's folder: its metadata.jsonl, failures.jsonl, lock and temporary files (and its images unless `filesDir`). */
  outDir: string;
  /**
   * Where the images go when apart from `outDir` (on the same file system): a shard of a distributed run keeps its
   * records in its own folder and saves into the run's, beside other shards' images (never over them).
   */
  filesDir?: string;
  options: EngineOptions;
  /** Images to add (read lazily; a big list streams in while downloads run). */
  items?: AsyncIterable<InputItem> | Iterable<InputItem>;
  /** Pages to start with (plugins' start pages). */
  requests?: PageInput[];
  handlers?: Record<string, LabelHandler>;
  /** Put the images and pages that failed in an earlier run of this state back in the queue. */
  retryFailed?: boolean;
  /** Forget the run's state and start over (done once the run's lock is held, never under a live run). */
  fresh?: boolean;
  /**
   * What identifies `items` (e.g. the lists' sizes and times): once all items were read, it is committed with the
   * last batch, and a later run with the same key does not read them again. Without it, items are always read
   * (re-adding known URLs changes nothing).
   */
  ingestKey?: string;
  /** The run's name, shown to another process that finds the output folder in use. */
  name?: string;
  /** Most pages visited in the run (start pages included); pages found beyond it are not visited. */
  maxPages?: number;
  /** Most links followed from a start page (0: start pages only); deeper pages are not visited. */
  maxDepth?: number;
  /**
   * Look again for new items: start pages, and pages added with `refresh`, are fetched again even if an earlier
   * session handled them (each at most once per session).
   */
  update?: boolean;
  /** Non-2xx statuses a plugin takes as pages (handed to its handler) rather than failures. */
  acceptStatus?: readonly number[];
  signal?: AbortSignal;
  /** The HTTP client kind (default: undici where its Agent is usable, else the runtime's fetch). */
  httpKind?: HttpClientKind;
  /** Write report.html at the end (stats.json is always written). @default true */
  report?: boolean;
  /**
   * Per-host limits to use instead of the run's own (a distributed run's, shared with other workers through Redis);
   * the caller closes it.
   */
  hosts?: KeyedLimiter;
  /** An HTTP client to use instead (tests); the run closes it at the end. */
  http?: HttpClient;
  /**
   * A distributed run's coordinator (`run <plugin> --queue`, src/queue/plugin.ts): each shard of images is handed to
   * this instead of being downloaded here (the shard counts as handled once it resolves; its images stay pending in
   * this store, the workers save them). `pending(from, to)` reads the pending images of any id range.
   */
  forward?: (range: { from: number; to: number }, pending: (from: number, to: number) => Item[]) => Promise<void>;
  /**
   * A job of a distributed run with `layout: webdataset`: its samples go into the one tar shard of this number, in
   * `filesDir` beside the other jobs' shards.
   */
  tarShard?: number;
  /**
   * Images go to an S3 bucket (src/output/s3.ts) instead of a folder: `outDir` is then a local folder for the run's
   * records, temporary files and lock, whose run files are uploaded at checkpoints and at the end.
   */
  s3?: S3Spec;
}

/** An s3:// output, as a run is given it. */
export interface S3Spec {
  target: S3Target;
  /** Which run files to upload and under what key prefix; default: all four, under the target's prefix. */
  runFiles?: { prefix: string; names: readonly string[] };
  /** Bodies over this go up as multipart uploads (tests); default src/output/s3.ts PART_SIZE. */
  partSize?: number;
  /** Least time between two uploads of metadata.jsonl during the run (tests); default 30 s. */
  checkpointMs?: number;
}
