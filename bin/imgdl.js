#!/usr/bin/env node
// Runs the TypeScript sources directly: on Node through tsx, on Bun and Deno natively. No build step.
//   node bin/imgdl.js …            (or `npx imgdl …`)
//   bun bin/imgdl.js …
//   deno run -A bin/imgdl.js …     (or --allow-read --allow-write --allow-net --allow-env --allow-sys)
const { Bun, Deno } = /** @type {{ Bun?: unknown, Deno?: { permissions: { querySync(d: { name: string }): { state: string } } } }} */ (globalThis);
if (Deno && !['read', 'write', 'net', 'env', 'sys'].some((name) => Deno.permissions.querySync({ name }).state === 'granted')) {
  // No permission at all: rather than dozens of prompts (or a stack trace without a terminal), say what works.
  console.error('imgdl: on Deno, run it with permissions: deno run -A bin/imgdl.js … ' +
    '(or --allow-read --allow-write --allow-net --allow-env --allow-sys)');
  process.exit(2);
}
if (!Bun && !Deno) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
