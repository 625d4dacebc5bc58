import { setImmediate as nextTurn } from 'node:timers/promises';
import { redact, type Secrets } from '../http/credentials.ts';
import { DownloadError, toDownloadError, type ReasonCode } from '../errors.ts';
import { META_INGESTED, type AddStats, type NewItem, type RunStore } from '../storage/state.ts';
import { normalizeUrl } from './urls.ts';
import type { Tally } from './tally.ts';
import type { FailureEvent, InputItem } from './types.ts';

/** Inputs read and added per transaction. */
const BATCH = 2000;

/** Meta key set once a run's store holds a URL whose password was redacted (`user:***@`). */
const CREDENTIALS_META = 'credentials';

/**
 * True when the run's store holds URLs that had a password: their passwords were never stored, so a resume must
 * read the lists (and URLs) again, which gives them back (kept in memory by `Ingest.add`), before those images can
 * be fetched; otherwise they fail with `credentials_missing`.
 */
export function hasCredentialedUrls(store: Pick<RunStore, 'getMeta'>): boolean {
  return store.getMeta(CREDENTIALS_META) === '1';
}

/**
 * Puts images into the run: URLs are normalised (one form per image, see urls.ts), passwords kept in memory only,
 * malformed ones recorded as failures; each batch goes in with its shards in one transaction.
 */
export class Ingest {
  /** Every input was read and added (or had been, by an earlier run). */
  complete = false;

  constructor(
    private readonly store: RunStore,
    private readonly secrets: Secrets,
    private readonly tally: Tally,
    /** Queues shards for new image ids (called inside the batch's transaction); `first`: at the queue's head. */
    private readonly addShards: (from: number, to: number, first: boolean) => void,
  ) {}

  /**
   * Adds images; the batch and its shard requests are written in one transaction, and with `ingested` (the inputs'
   * key, on the last batch) so is the mark that every input was read. `first` queues them before the pages waiting
   * (images a page found start at once).
   */
  add(inputs: InputItem[], ingested?: string, first = false): void {
    let credentialed = false;
    const rows = inputs.map((input): NewItem => {
      const fields = input.key === undefined && input.caption === undefined ? null : { key: input.key, caption: input.caption };
      try {
        if (input.bad) throw new DownloadError(input.bad.code, input.bad.message);
        const parsed = normalizeUrl(input.url);
        // Stored and deduped with the password as `***`; the password itself stays in memory (secrets).
        if (parsed.password !== '') credentialed = true;
        const url = this.secrets.add(parsed);
        const row: NewItem = { url, name: input.name ?? null, info: input.metadata === undefined ? null : JSON.stringify(input.metadata) };
        if (input.headers !== undefined && Object.keys(input.headers).length > 0) row.headers = JSON.stringify(input.headers);
        if (fields) row.fields = JSON.stringify(fields);
        if (input.key !== undefined) row.key = input.key;
        if (input.found !== undefined) row.found = JSON.stringify(input.found);
        if (input.archived) row.archived = true;
        return row;
      } catch (error) {
        const e = toDownloadError(error);
        const shown = redact(String(input.url));
        if (input.key === undefined) return { url: shown, failure: { code: e.code, message: e.message } };
        // A table row that cannot be fetched is one failure per row (two rows with the same bad text are two), and
        // never fetched: it is stored under its key (a line break cannot start a URL of a list), with its text.
        const message = input.bad || !input.where ? e.message : `${input.where}: ${e.message}`;
        return { url: `\n${input.key}`, fields: JSON.stringify({ input: shown, ...fields }), failure: { code: e.code, message } };
      }
    });
    const stats: AddStats = { added: 0, failed: 0, revived: 0 };
    this.store.transaction(() => {
      if (credentialed && !hasCredentialedUrls(this.store)) this.store.setMeta(CREDENTIALS_META, '1');
      const added = this.store.addItems(rows, stats);
      if (added) this.addShards(added.from, added.to, first);
      if (ingested !== undefined) this.store.setMeta(META_INGESTED, ingested);
    });
    const failures: FailureEvent[] = [];
    for (const row of rows) {
      if (!row.failure) continue;
      const url = row.fields ? (JSON.parse(row.fields) as { input?: string }).input ?? row.url : row.url;
      failures.push({ url, status: null, code: row.failure.code, message: row.failure.message });
    }
    this.tally.added(stats, failures);
  }

  /** Records an image that cannot be fetched at all (a plugin asked for a name that is a path). */
  fail(url: string, code: ReasonCode, message: string): void {
    const stats: AddStats = { added: 0, failed: 0, revived: 0 };
    const stored = redact(url);
    this.store.addItems([{ url: stored, failure: { code, message } }], stats);
    this.tally.added(stats, [{ url: stored, code, status: null, message }]);
  }

  /**
   * Reads `source` into the run, BATCH at a time, until it ends or `signal` aborts. With `key`, a run whose inputs
   * were all read by an earlier run under the same key reads nothing (unless some URLs had passwords, which only
   * reading again gives back).
   */
  async run(source: AsyncIterable<InputItem> | Iterable<InputItem>, key: string | undefined, signal: AbortSignal): Promise<void> {
    // The mark is committed with the last batch, so it never runs ahead of the state.
    if (key !== undefined && this.store.getMeta(META_INGESTED) === key && !hasCredentialedUrls(this.store)) {
      this.complete = true;
      return;
    }
    this.tally.ingesting = true;
    try {
      let batch: InputItem[] = [];
      for await (const input of source) {
        if (signal.aborted) return;
        batch.push(input);
        if (batch.length >= BATCH) {
          this.add(batch);
          batch = [];
          // A source that yields without I/O (a Parquet slice in memory, a plugin's generator) would otherwise
          // keep the downloads waiting until it ends: they get their turn after every batch.
          await nextTurn();
        }
      }
      if (signal.aborted) return;
      this.add(batch, key);
      this.complete = true;
    } finally {
      this.tally.ingesting = false;
    }
  }
}
