// Which JavaScript runtime imgdl runs on, for the few choices that cannot be made by probing a feature (the SQLite
// driver to try first). Prefer feature detection wherever a feature can be probed (see src/http/client.ts).

export type RuntimeName = 'node' | 'bun' | 'deno';

interface RuntimeGlobals {
  Bun?: { version?: string };
  Deno?: { version?: { deno?: string } };
}

const globals = globalThis as typeof globalThis & RuntimeGlobals;

/** `bun`, `deno` or `node` (Bun and Deno also define `process.versions.node`, so they are tested first). */
export const runtime: RuntimeName = globals.Bun !== undefined ? 'bun' : globals.Deno !== undefined ? 'deno' : 'node';

/** The runtime's own version, e.g. `1.2.3` (Node's without the leading `v`). */
export const runtimeVersion: string =
  runtime === 'bun' ? String(globals.Bun?.version ?? '') : runtime === 'deno' ? String(globals.Deno?.version?.deno ?? '') : process.versions.node;

