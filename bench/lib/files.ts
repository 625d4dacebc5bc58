/** Looking at what a tool left on disk: image counts, byte totals, and new images as they land. */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** A finished image: an image extension, not hidden, not a `.part`/`.tmp` leftover. */
const IMAGE_NAME = /^[^.].*\.(png|jpe?g|gif|webp|avif|bmp|tiff?)$/i;

export function isImageName(name: string): boolean {
  return IMAGE_NAME.test(name);
}

export interface DirTally {
  images: number;
  imageBytes: number;
  allBytes: number;
}

/** Walks `dir` recursively; a missing directory tallies as empty. */
export async function tally(dir: string): Promise<DirTally> {
  const total: DirTally = { images: 0, imageBytes: 0, allBytes: 0 };
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return total;
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const { size } = await stat(join(entry.parentPath ?? entry.path, entry.name)).catch(() => ({ size: 0 }));
    total.allBytes += size;
    if (isImageName(entry.name)) {
      total.images += 1;
      total.imageBytes += size;
    }
  }
  return total;
}

/** Relative paths of the images under `dir`. */
export async function listImages(dir: string): Promise<Set<string>> {
  const found = new Set<string>();
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    for (const entry of entries) {
      if (entry.isFile() && isImageName(entry.name)) {
        found.add(relative(dir, join(entry.parentPath ?? entry.path, entry.name)));
      }
    }
  } catch {
    // missing directory: nothing yet
  }
  return found;
}

async function subdirectories(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries.filter((e) => e.isDirectory()).map((e) => join(e.parentPath ?? e.path, e.name));
  } catch {
    return [];
  }
}

/**
 * Resolves with the time (performance.now()) at which an image not in `known` first appears
 * under `dir`. Uses one inotify watch per directory (Node 20's recursive watch polls every file,
 * which would cost more than the tool being measured). `dir` must exist.
 */
export class NewImageWatch {
  readonly seen: Promise<number>;
  private readonly watchers = new Map<string, FSWatcher>();
  private resolveSeen: (at: number) => void = () => {};
  private settled = false;

  constructor(
    private readonly dir: string,
    private readonly known: Set<string>,
  ) {
    this.seen = new Promise((resolve) => (this.resolveSeen = resolve));
  }

  async start(): Promise<void> {
    this.add(this.dir);
    for (const sub of await subdirectories(this.dir)) this.add(sub);
    // a file may have landed between the listing and the watches
    for (const name of await listImages(this.dir)) {
      if (!this.known.has(name)) this.hit();
    }
  }

  close(): void {
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private hit(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveSeen(performance.now());
  }

  private add(dir: string): void {
    if (this.watchers.has(dir)) return;
    try {
      const watcher = watch(dir, (_event, name) => this.onEvent(dir, name));
      watcher.on('error', () => watcher.close());
      this.watchers.set(dir, watcher);
    } catch {
      // vanished
    }
  }

  private onEvent(dir: string, name: string | Buffer | null): void {
    if (this.settled || name === null) return;
    const text = name.toString();
    const path = join(dir, text);
    if (isImageName(text) && !this.known.has(relative(this.dir, path))) {
      void stat(path).then(
        (info) => info.isFile() && this.hit(),
        () => {},
      );
      return;
    }
    void stat(path).then(
      (info) => {
        if (!info.isDirectory()) return;
        this.add(path);
        void listImages(path).then((names) => {
          for (const inner of names) if (!this.known.has(relative(this.dir, join(path, inner)))) this.hit();
        });
      },
      () => {},
    );
  }
}
