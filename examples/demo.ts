// Offline demo: starts a local origin on 127.0.0.1 with good and misbehaving images, writes demo.txt,
// runs `imgdl get demo.txt`, then stops the origin. `npm run demo`
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startOrigin } from '../test/helpers/origin.ts';

const origin = await startOrigin({ latencyMs: 20 });
const urls = [
  ...Array.from({ length: 200 }, (_, i) => `/img/photo-${i}.png?w=64&h=48&pad=12000`),
  '/img/a.jpg', '/img/b.gif', '/img/c.webp', '/img/d.svg', '/noext/no-extension',
  '/download?filePath=/positionimages/202401/20240112102706-1.jpg',
  '/cd/x?name=%E5%9B%BD%E6%97%97.png&star=1',
  '/flaky/retried.png?fails=2', '/ratelimit/slow-down.png?fails=1&retryAfter=1',
  '/status/404', '/html-as-png/login.png', '/truncated/cut.png',
].map((p) => origin.url(p));
fs.writeFileSync('demo.txt', `# written by examples/demo.ts\n${urls.join('\n')}\nnot a url\n`);
const bin = fileURLToPath(new URL('../bin/imgdl.js', import.meta.url));
const child = spawn(process.execPath, [bin, 'get', 'demo.txt', '--retry-delay', '100', ...process.argv.slice(2)], { stdio: 'inherit' });
const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
await origin.close();
console.error(`\nimgdl exited with ${code}; images in ./demo/, failures in ./demo/failures.jsonl`);
process.exitCode = code === 1 ? 0 : (code ?? 1);
