import type { Item } from '../storage/state.ts';

/**
 * An image's `key` and `caption`, the one place they are read from an item. An input table's row brings its own
 * (the row number, src/core/tables.ts); otherwise the key is stable from the input: the item's id in the run (its position among the run's distinct URLs, which a resume keeps), zero-padded to nine
 * digits so that sample names sort in input order. The caption is the `caption` string of the image's metadata
 * (a plugin's, or an input table's caption column), when there is one.
 */
export function sampleFields(item: Item): { key: string; caption?: string } {
  // An input table's row (src/core/tables.ts): its own key and caption, kept with the item.
  if (item.fields) {
    try {
      const row = JSON.parse(item.fields) as { key?: unknown; caption?: unknown } | null;
      if (typeof row?.key === 'string') return typeof row.caption === 'string' ? { key: row.key, caption: row.caption } : { key: row.key };
    } catch {
      // Not a row's fields: the item's own key below.
    }
  }
  const key = String(item.id).padStart(9, '0');
  if (item.info === null || !item.info.includes('"caption"')) return { key };
  try {
    const caption = (JSON.parse(item.info) as { caption?: unknown } | null)?.caption;
    return typeof caption === 'string' ? { key, caption } : { key };
  } catch {
    return { key };
  }
}
