// Image processing for dataset runs (--resize, --format, --min-size, --max-aspect…), on sharp (libvips). sharp is an
// optional peer dependency, imported only when a run asks for processing: nothing here is loaded otherwise.
import { createHash } from 'node:crypto';
import { DownloadError, UsageError } from '../errors.ts';

export const RESIZE_MODES = ['no', 'keep-ratio', 'keep-ratio-largest', 'center-crop', 'border'] as const;
export type ResizeMode = (typeof RESIZE_MODES)[number];
export const OUTPUT_FORMATS = ['jpeg', 'webp', 'avif', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** sharp's own default limit (16383 × 16383): a header declaring more is a pixel bomb, `too_large`. */
export const DEFAULT_MAX_PIXELS = 0x3fff * 0x3fff;

/** What a run does to each image once it is fetched and validated (see resolveOptions: --resize…). */
export interface ProcessSpec {
  /** Target size in pixels (the meaning depends on `mode`); none: no resizing. */
  resize?: number;
  mode: ResizeMode;
  /** Output format; none: the original bytes are kept (only decoded and checked). */
  format?: OutputFormat;
  /** Encoder quality 1-100; none: sharp's default for the format. */
  quality?: number;
  minWidth: number;
  minHeight: number;
  /** Largest ratio of the longer side to the shorter; none: any. */
  maxAspect?: number;
  /** Keep the original beside the processed image. */
  keepOriginal: boolean;
  /** Images declaring more pixels fail with `too_large` before they are decoded. */
  maxPixels: number;
}

/** True when images are re-encoded (resized or converted), not only decoded and checked. */
export function reencodes(spec: ProcessSpec): boolean {
  return spec.format !== undefined;
}

/** The processed image, in memory (what is saved instead of the original when the spec re-encodes). */
export interface Processed {
  /** The original's dimensions, upright (EXIF orientation applied). */
  original: { width: number; height: number };
  /** The re-encoded image; none when the spec only checks (the original bytes are saved). */
  output?: { data: Buffer; ext: string; mime: string; width: number; height: number; sha256: string };
}

export type Sharp = (typeof import('sharp'))['default'];
let loading: Promise<Sharp> | undefined;

/**
 * sharp, imported on first use. Throws a UsageError (exit 2, one line) when it is not installed: processing is
 * asked for before any network work, so the run stops before it starts.
 */
export function loadSharp(): Promise<Sharp> {
  loading ??= import('sharp').then(
    (m) => m.default,
    (error: unknown) => {
      loading = undefined;
      throw new UsageError(`Image processing (--resize, --format, --min-size, --max-aspect) needs sharp: npm install sharp (${(error as Error).message.split('\n')[0]})`);
    },
  );
  return loading;
}

const MIME: Record<OutputFormat, string> = { jpeg: 'image/jpeg', webp: 'image/webp', avif: 'image/avif', png: 'image/png' };
const EXT: Record<OutputFormat, string> = { jpeg: 'jpg', webp: 'webp', avif: 'avif', png: 'png' };
const WHITE = { r: 255, g: 255, b: 255, alpha: 1 };

/**
 * Decodes the image in `input` (a file path or its bytes) and processes it as `spec` says. Runs on libuv's thread
 * pool (sharp's work never blocks the event loop). Throws DownloadError: `too_large` (more pixels than
 * spec.maxPixels), `decode_failed` (not decodable: a broken body, an unsupported format), `too_small`, `aspect_ratio`.
 */
export async function processImage(sharp: Sharp, input: string | Buffer, spec: ProcessSpec): Promise<Processed> {
  // failOn 'warning' (sharp's default): a JPEG with corrupt entropy-coded data fails instead of decoding to grey.
  const options = { limitInputPixels: spec.maxPixels, failOn: 'warning' as const };
  let width: number;
  let height: number;
  try {
    const meta = await sharp(input, options).metadata();
    width = meta.autoOrient?.width ?? meta.width ?? 0;
    height = meta.autoOrient?.height ?? meta.height ?? 0;
    if (!width || !height) throw new Error('no dimensions');
  } catch (error) {
    throw decodeError(error, spec.maxPixels);
  }
  if (width < spec.minWidth || height < spec.minHeight) {
    throw new DownloadError('too_small', `${width}x${height} is smaller than --min-size ${spec.minWidth}x${spec.minHeight}`);
  }
  const aspect = Math.max(width / height, height / width);
  if (spec.maxAspect !== undefined && aspect > spec.maxAspect) {
    throw new DownloadError('aspect_ratio', `${width}x${height} has an aspect ratio of ${aspect.toFixed(2)}, over --max-aspect ${spec.maxAspect}`);
  }
  const original = { width, height };
  try {
    if (!reencodes(spec)) {
      // Decoding every pixel (stats reads them all, tile by tile) is what tells a whole image from a broken body.
      await sharp(input, options).stats();
      return { original };
    }
    const format = spec.format!;
    let pipeline = sharp(input, options).rotate();
    const size = spec.resize;
    if (size !== undefined && spec.mode !== 'no') {
      if (spec.mode === 'keep-ratio' || spec.mode === 'keep-ratio-largest') {
        // keep-ratio: the shorter side becomes `size`; keep-ratio-largest: the longer one. Both sides computed here
        // (fit 'fill') so the result is exactly what these rules say, whatever sharp's rounding.
        const scale = size / (spec.mode === 'keep-ratio' ? Math.min(width, height) : Math.max(width, height));
        pipeline = pipeline.resize(Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)), { fit: 'fill' });
      } else if (spec.mode === 'center-crop') {
        pipeline = pipeline.resize(size, size, { fit: 'cover', position: 'centre' });
      } else {
        // border: fitted inside size × size, then padded to it (white, as img2dataset pads).
        pipeline = pipeline.resize(size, size, { fit: 'contain', background: WHITE });
      }
    }
    const quality = spec.quality === undefined ? {} : { quality: spec.quality };
    if (format === 'jpeg') pipeline = pipeline.flatten({ background: WHITE }).jpeg(quality);
    else if (format === 'webp') pipeline = pipeline.webp(quality);
    else if (format === 'avif') pipeline = pipeline.avif(quality);
    else pipeline = pipeline.png();
    const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
    const sha256 = createHash('sha256').update(data).digest('hex');
    return { original, output: { data, ext: EXT[format], mime: MIME[format], width: info.width, height: info.height, sha256 } };
  } catch (error) {
    throw decodeError(error, spec.maxPixels);
  }
}

function decodeError(error: unknown, maxPixels: number): DownloadError {
  if (error instanceof DownloadError) return error;
  const message = (error as Error)?.message ?? String(error);
  if (/pixel limit/i.test(message)) return new DownloadError('too_large', `The image declares more pixels than the limit of ${maxPixels}: ${message}`);
  return new DownloadError('decode_failed', `The image could not be decoded: ${message.split('\n')[0]}`, { cause: error });
}
