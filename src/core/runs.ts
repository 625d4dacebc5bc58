import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sanitize from 'sanitize-filename';
import { redactArgs } from '../http/credentials.ts';

/**
 * Where run state lives: the `storage` option, else ./storage. No environment variable is read here: the CLI
 * passes --storage, else $IMGDL_STORAGE, else $CRAWLEE_STORAGE_DIR (Crawlee's own variable) as `explicit`.
 */
export function storageDir(explicit?: string): string {
  return path.resolve(explicit ?? 'storage');
}

export function runsDir(storage: string): string {
  return path.join(storage, 'runs');
}

/** A run's name from what defines it (the command, its inputs and its output folder), stable across invocations. */
export function deriveRunName(kind: string, label: string, identity: unknown): string {
  const hash = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 8);
  return `${kind}-${safeRunName(label) || 'run'}-${hash}`;
}

export function safeRunName(name: string): string {
  return sanitize(name, { replacement: '_' }).replace(/^[.\s]+/, '').replace(/\s+/g, '_').slice(0, 80);
}

/** What a run was started with, kept beside its state so `imgdl runs` can show it and resume it. */
export interface RunInfo {
  name: string;
  kind: string;
  /** The argv (after `imgdl`) that continues this run. */
  command: string[];
  cwd: string;
  outDir: string;
  createdAt: string;
  updatedAt: string;
  /** True once a run ended with nothing pending. */
  finished?: boolean;
}

export function readRunInfo(dir: string): RunInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')) as RunInfo;
  } catch {
    return undefined;
  }
}

export function writeRunInfo(dir: string, info: RunInfo): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'run.json');
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(info, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

/** Records that a run is starting (keeping its creation time); returns what was recorded before, if anything. */
export function markRunStarted(dir: string, run: { name: string; kind: string; command: string[]; outDir: string }): RunInfo | undefined {
  const before = readRunInfo(dir);
  const now = new Date().toISOString();
  // Never a password on disk: a URL in the command keeps its user name, its password becomes `***`.
  const command = redactArgs(run.command);
  writeRunInfo(dir, { ...run, command, cwd: process.cwd(), createdAt: before?.createdAt ?? now, updatedAt: now, finished: false });
  return before;
}

/** Records how a run ended: finished when nothing is pending and it was not interrupted. */
export function markRunEnded(dir: string, summary: { pending: number; interrupted: boolean }): void {
  const info = readRunInfo(dir);
  if (info) writeRunInfo(dir, { ...info, updatedAt: new Date().toISOString(), finished: summary.pending === 0 && !summary.interrupted });
}
