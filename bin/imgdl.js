#!/usr/bin/env node
// Runs the TypeScript sources directly: on Node through tsx, on Bun and Deno natively. No build step.
const runtimeHasTypeScript = 'Bun' in globalThis || 'Deno' in globalThis;
if (!runtimeHasTypeScript) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
