import { fileTypeFromBuffer } from 'file-type';

/** What the bytes of a body really are. */
export interface Sniffed {
  ext: string;
  mime: string;
}

/** How many leading bytes the sniffers need (file-type reads up to 4100 for most formats). */
export const SNIFF_BYTES = 4100;

// file-type does not detect SVG (it is text); is-svg parses the whole document, which we do not have
// while streaming, so a small check of the head is ours to write.
const SVG_HEAD =
  /^\s*(?:<\?xml[^>]*>\s*)?(?:<!--[\s\S]*?-->\s*)*(?:<!DOCTYPE\s+svg[^>]*>\s*)?(?:<!--[\s\S]*?-->\s*)*<svg[\s>/]/i;

/** The image type of a body from its first bytes, or undefined when it is not an image. */
export async function sniffImage(head: Uint8Array): Promise<Sniffed | undefined> {
  const type = await fileTypeFromBuffer(head);
  if (type) return type.mime.startsWith('image/') ? { ext: type.ext, mime: type.mime } : undefined;
  let text = new TextDecoder('utf-8', { fatal: false }).decode(head.subarray(0, SNIFF_BYTES));
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return SVG_HEAD.test(text) ? { ext: 'svg', mime: 'image/svg+xml' } : undefined;
}

const ALIASES: Record<string, string[]> = {
  jpg: ['jpg', 'jpeg', 'jpe', 'jfif'],
  tif: ['tif', 'tiff'],
  ico: ['ico'],
  svg: ['svg'],
  heic: ['heic', 'heif'],
};

/** True when a file extension (without the dot) is a fair name for the sniffed type. */
export function extensionMatches(ext: string, sniffed: Sniffed): boolean {
  const e = ext.toLowerCase();
  return (ALIASES[sniffed.ext] ?? [sniffed.ext]).includes(e);
}
