// Helpers for plugins that read images off HTML pages.

export interface SrcsetCandidate {
  url: string;
  /** The `w` descriptor (width in pixels), if given. */
  width?: number;
  /** The `x` descriptor (pixel density); 1 when no descriptor is given. */
  density?: number;
}

/**
 * Parses a `srcset` attribute as the HTML standard does: a URL, then descriptors up to the next comma
 * (so commas inside URLs, as in `image.jpg?crop=1,2`, are kept).
 */
export function parseSrcset(srcset: string): SrcsetCandidate[] {
  const out: SrcsetCandidate[] = [];
  let i = 0;
  const n = srcset.length;
  while (i < n) {
    while (i < n && /[\s,]/.test(srcset[i]!)) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && !/\s/.test(srcset[i]!)) i++;
    let url = srcset.slice(start, i);
    let descriptors = '';
    if (url.endsWith(',')) {
      url = url.replace(/,+$/, '');
    } else {
      const from = i;
      let depth = 0;
      while (i < n && (srcset[i] !== ',' || depth > 0)) {
        if (srcset[i] === '(') depth++;
        else if (srcset[i] === ')') depth = Math.max(0, depth - 1);
        i++;
      }
      descriptors = srcset.slice(from, i).trim();
    }
    if (!url) continue;
    const candidate: SrcsetCandidate = { url };
    for (const d of descriptors.split(/\s+/).filter(Boolean)) {
      const m = /^(\d+(?:\.\d+)?)([wx])$/i.exec(d);
      if (m?.[2]?.toLowerCase() === 'w') candidate.width = Number(m[1]);
      else if (m?.[2]?.toLowerCase() === 'x') candidate.density = Number(m[1]);
    }
    if (candidate.width === undefined && candidate.density === undefined) candidate.density = 1;
    out.push(candidate);
  }
  return out;
}

/** The largest candidate of a `srcset`: by width when any has a `w` descriptor, else by density. First wins ties. */
export function largestCandidate(candidates: SrcsetCandidate[]): SrcsetCandidate | undefined {
  const byWidth = candidates.filter((c) => c.width !== undefined);
  const pool = byWidth.length > 0 ? byWidth : candidates;
  const size = (c: SrcsetCandidate) => (byWidth.length > 0 ? c.width! : (c.density ?? 1));
  let best: SrcsetCandidate | undefined;
  for (const c of pool) if (!best || size(c) > size(best)) best = c;
  return best;
}

/** Extensions of image files, for links that point at images (`<a href="big.jpg">`). */
export const IMAGE_EXTENSIONS: readonly string[] = ['jpg', 'jpeg', 'jpe', 'jfif', 'png', 'apng', 'gif', 'webp', 'avif', 'bmp', 'tif', 'tiff', 'svg', 'ico', 'heic', 'heif', 'jxl'];

const IMAGE_PATH = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');

/** True when a URL's path ends in an image extension. */
export function looksLikeImage(url: string | URL): boolean {
  try {
    return IMAGE_PATH.test(new URL(url).pathname);
  } catch {
    return false;
  }
}
