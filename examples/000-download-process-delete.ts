// Seed 000: download images into a temporary folder, process each file (here we read its dimensions, standing
// in for OCR), and delete the folder afterwards. `withImages` removes it whether processing returns or throws
// (try `--fail`, which throws after the first image).
//
//   npx tsx examples/000-download-process-delete.ts [--base-url URL] [--fail] [URL...]
//   bun examples/000-download-process-delete.ts [--base-url URL] [--fail] [URL...]
//   deno run -A examples/000-download-process-delete.ts [--base-url URL] [--fail] [URL...]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { imageSizeFromFile } from 'image-size/fromFile';
import { withImages } from '../src/index.ts';

const { values, positionals } = parseArgs({ options: { 'base-url': { type: 'string' }, fail: { type: 'boolean' } }, allowPositionals: true });
const base = values['base-url'] ?? process.env.IMGDL_BASE_URL ?? 'http://flupy.org/data/flags';
const urls = positionals.length > 0 ? positionals : ['cn', 'br', 'jp'].map((cc) => `${base}/${cc}/${cc}.gif`);

let folder = '';
try {
  await withImages(urls, async (images, dir) => {
    folder = dir;
    for (const image of images) {
      if (!image.ok) {
        console.log(`${image.url}: failed, ${image.code} ${image.message}`);
        process.exitCode = 1;
        continue;
      }
      const { type, width, height } = await imageSizeFromFile(image.path); // your OCR goes here
      console.log(`${image.file}: ${type} ${width}x${height}, ${image.bytes} bytes`);
      if (values.fail) throw new Error(`processing ${image.file} failed`);
    }
  });
} finally {
  console.log(`temporary folder ${folder} ${fs.existsSync(folder) ? 'still exists' : 'is gone'}`);
}
