/**
 * imgdl as a library: the same engine as the CLI, for single-file scripts on Node, Bun and Deno.
 *
 * - `get` / `download`: into a folder, with durable resume state (run it again to continue).
 * - `fetchImages` / `streamImages` / `Downloader`: into memory, one result per URL, never throwing for one URL.
 * - `withImages`: into a temporary folder that is removed after your callback, even if it throws.
 * - `definePlugin` / `runPlugin` / `loadPlugin`: site plugins.
 * - `get({ queue })` / `startWorker` / `listQueueRuns`: one run over many machines, through BullMQ on Redis.
 *
 * @example
 * ```ts
 * import { get } from 'imgdl';
 * const summary = await get({ inputs: ['cats.txt'], concurrency: 32 });
 * console.log(`${summary.downloaded} saved, ${summary.failed} failed`);
 * ```
 */
export { get, download, type GetOptions, type FolderResult } from './get.ts';
export {
  Downloader,
  fetchImages,
  streamImages,
  withImages,
  type DownloaderOptions,
  type CallOptions,
  type BatchProgress,
  type UrlInput,
  type ImageOk,
  type ImageFailed,
  type ImageResult,
  type SavedImage,
  type SavedResult,
  type DownloaderEvents,
} from './api/memory.ts';
export { resolveOptions, type DownloadOptions } from './options.ts';
export { startWorker, type WorkerOptions, type QueueWorker, type ShardEvent } from './queue/worker.ts';
export type { QueueProgress, QueueSummary } from './queue/coordinator.ts';
export type { ShardResult } from './queue/redis.ts';
export { listQueueRuns, type QueueRunListing, type WorkerListing } from './queue/runs.ts';
export { DEFAULTS, type Summary, type Progress, type ItemInput, type EngineEvents, type RunHandle, type FailureEvent } from './core/types.ts';
export type { ImageRecord } from './core/download.ts';
export type { FailureRecord } from './storage/state.ts';
export { DownloadError, UsageError, REASON_CODES, type ReasonCode } from './errors.ts';
export {
  definePlugin,
  runPlugin,
  planPluginRun,
  loadPlugin,
  listPlugins,
  type RunPluginOptions,
  type AnyPlugin,
  type Plugin,
  type Handler,
  type HandlerContext,
  type HandlerResult,
  type ImageRequest,
  type PageRequest,
  type StartRequest,
  type OptionSpecs,
  type OptionValues,
  type PluginLog,
} from './plugin/index.ts';
