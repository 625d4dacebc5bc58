/**
 * imgdl as a library: the same engine as the CLI.
 *
 * @example
 * ```ts
 * import { get } from 'imgdl';
 * const summary = await get({ inputs: ['cats.txt'], concurrency: 32 });
 * console.log(`${summary.downloaded} saved, ${summary.failed} failed`);
 * ```
 */
export { get, type GetOptions } from './get.ts';
export { resolveOptions, type DownloadOptions } from './options.ts';
export { Engine, DEFAULTS, type Summary, type Progress, type ItemInput, type EngineEvents } from './core/engine.ts';
export type { ImageRecord } from './core/download.ts';
export { DownloadError, UsageError, REASON_CODES, type ReasonCode } from './errors.ts';
