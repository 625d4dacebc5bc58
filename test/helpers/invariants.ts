// What must hold in an output folder after any run, however it was interrupted or disturbed: checked from the
// files themselves, never from what the CLI printed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readJsonl, sha256File } from './cli.ts';

export interface SavedRecord {
  url: string;
  file: string;
  bytes: number;
  sha256: string;
}

/** Files in the folder that are not images: imgdl's own files. */
const OWN_FILES = new Set(['metadata.jsonl', 'failures.jsonl', 'stats.json', 'report.html']);

/**
 * The folder holds exactly one record per URL of `saved` (and no other), each record's file has the record's size
 * and sha256, every image file in the folder belongs to exactly one record (no orphan, no second copy) except the
 * `foreign` ones, and nothing temporary is left (no `.imgdl-tmp` content, no lock, no probe). Returns the records.
 */
export async function assertFolder(out: string, saved: readonly string[], opts: { foreign?: readonly string[] } = {}): Promise<SavedRecord[]> {
  const records = readJsonl<SavedRecord>(path.join(out, 'metadata.jsonl'));
  const urls = records.map((r) => r.url);
  const dupes = urls.filter((u, i) => urls.indexOf(u) !== i);
  assert.deepEqual(dupes.slice(0, 5), [], `one record per URL (${dupes.length} duplicate records)`);
  assert.deepEqual([...urls].sort(), [...saved].sort(), 'a record for every URL that must be saved, and for no other');
  const mismatched: string[] = [];
  for (const r of records) {
    const file = path.join(out, r.file);
    if (!fs.existsSync(file)) {
      mismatched.push(`${r.file}: missing`);
      continue;
    }
    const size = fs.statSync(file).size;
    if (size !== r.bytes) mismatched.push(`${r.file}: ${size} bytes, record says ${r.bytes}`);
    else if ((await sha256File(file)) !== r.sha256) mismatched.push(`${r.file}: sha256 differs from its record`);
  }
  assert.deepEqual(mismatched.slice(0, 5), [], `every record's file has its size and sha256 (${mismatched.length} do not)`);
  const files = fs.readdirSync(out).filter((f) => !f.startsWith('.') && !OWN_FILES.has(f) && fs.statSync(path.join(out, f)).isFile());
  const recorded = new Set(records.map((r) => r.file));
  assert.equal(recorded.size, records.length, 'no two records share a file');
  const foreign = new Set(opts.foreign ?? []);
  const orphans = files.filter((f) => !recorded.has(f) && !foreign.has(f));
  assert.deepEqual(orphans.slice(0, 5), [], `no file without a record: no orphan, no second copy (${orphans.length})`);
  const tmp = path.join(out, '.imgdl-tmp');
  assert.deepEqual(fs.existsSync(tmp) ? fs.readdirSync(tmp) : [], [], 'no temporary files left');
  const hidden = fs.readdirSync(out).filter((f) => f.startsWith('.') && f !== '.imgdl-tmp');
  assert.deepEqual(hidden, [], 'no lock or probe file left behind');
  return records;
}

/** The failure records of a folder, as url → code. */
export function failureCodes(out: string): Map<string, string> {
  return new Map(readJsonl<{ url: string; code: string }>(path.join(out, 'failures.jsonl')).map((f) => [f.url, f.code]));
}

/** True when this process may mount file systems (root with CAP_SYS_ADMIN): tmpfs-based disk tests need it. */
export function canMount(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const dir = fs.mkdtempSync('/tmp/imgdl-mount-probe-');
  try {
    return mount(dir, 'size=64k') && (umount(dir), true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Mounts a tmpfs with `options` (e.g. `size=3m`, `ro`) on `dir`; false if that failed. */
export function mount(dir: string, options: string): boolean {
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Changes a mounted tmpfs's options (e.g. `remount,size=50m`). */
export function remount(dir: string, options: string): void {
  const r = spawnSync('mount', ['-o', `remount,${options}`, dir], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `mount -o remount,${options} ${dir}: ${r.stderr}`);
}

export function umount(dir: string): void {
  spawnSync('umount', ['-l', dir], { stdio: 'ignore', timeout: 10_000 });
}
