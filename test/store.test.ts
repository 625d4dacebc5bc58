// RunStore: the durable state of a run (images and their outcome, claimed names, Crawlee's request queue).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { RunStore, Status } from '../src/storage/state.ts';
import { tmpDir } from './helpers/cli.ts';

/** A store in a fresh folder, closed after `fn` (even when it throws). */
async function withStore<T>(fn: (store: RunStore, dir: string) => T | Promise<T>): Promise<T> {
  const dir = path.join(tmpDir('imgdl-store-'), 'run');
  const store = await RunStore.open(dir);
  try {
    return await fn(store, dir);
  } finally {
    store.close();
  }
}

const urls = (n: number, prefix = 'http://h.test/'): Array<{ url: string }> =>
  Array.from({ length: n }, (_, i) => ({ url: `${prefix}${i + 1}.png` }));

/** Queue order as lockHead gives it (ids), locking for a moment. */
function head(store: RunStore, limit = 100): string[] {
  return store.lockHead(limit, 1).map((r) => r.id);
}

function insert(store: RunStore, id: string, forefront = false, handled = false): void {
  store.insertRequest(id, `key-${id}`, JSON.stringify({ id, uniqueKey: `key-${id}`, url: `http://h.test/${id}` }), handled, forefront);
}

// ------------------------------------------------------------------ images

test('addItems returns the id range of new images and ignores URLs already in the run', async () => {
  await withStore((store) => {
    assert.deepEqual(store.addItems(urls(3)), { from: 1, to: 3 });
    assert.equal(store.addItems(urls(3)), undefined, 'all known: nothing new');
    assert.deepEqual(store.addItems([{ url: 'http://h.test/2.png' }, { url: 'http://h.test/new.png' }]), { from: 4, to: 4 });
    assert.deepEqual(store.counts(), { pending: 4, saving: 0, done: 0, failed: 0, total: 4 });
    assert.deepEqual(store.pendingIds(), [1, 2, 3, 4]);
  });
});

test('an image added with a failure is counted as failed and listed in failures()', async () => {
  await withStore((store) => {
    store.addItems([{ url: 'not a url', failure: { code: 'invalid_url', message: 'Not a valid absolute URL' } }, { url: 'http://h.test/ok.png' }]);
    assert.deepEqual(store.counts(), { pending: 1, saving: 0, done: 0, failed: 1, total: 2 });
    assert.deepEqual(store.failures(), [{ url: 'not a url', code: 'invalid_url', status: null, message: 'Not a valid absolute URL' }]);
  });
});

test('pendingInRange gives the pending images of a range in id order, with name and info', async () => {
  await withStore((store) => {
    store.addItems([{ url: 'http://h.test/a.png', name: 'mine.png', info: '{"k":1}' }, ...urls(3)]);
    store.markFailed(2, { code: 'http_status', status: 404, message: 'HTTP 404' });
    assert.deepEqual(store.pendingInRange(1, 3), [
      { id: 1, url: 'http://h.test/a.png', name: 'mine.png', info: '{"k":1}' },
      { id: 3, url: 'http://h.test/2.png', name: null, info: null },
    ]);
  });
});

test('a claimed name is refused to another image, case-insensitively', async () => {
  await withStore((store) => {
    store.addItems(urls(3));
    assert.equal(store.claim(1, 'Same.png', '{"file":"Same.png"}'), true);
    assert.equal(store.claim(2, 'sAME.PNG', '{}'), false);
    assert.equal(store.claim(2, 'same.png', '{}'), false);
    assert.equal(store.fileTaken('SAME.png'), true);
    assert.equal(store.fileTaken('other.png'), false);
    assert.equal(store.claim(2, 'other.png', '{}'), true);
  });
});

test(
  'a claimed name is refused to another image that differs only in the case of non-ASCII letters',
  { todo: 'bug: the items_file index uses COLLATE NOCASE, which folds ASCII only: Ärger.png and ärger.png are both claimed, and one overwrites the other on a case-insensitive filesystem' },
  async () => {
    await withStore((store) => {
      store.addItems(urls(4));
      assert.equal(store.claim(1, 'Ärger.png', '{}'), true);
      assert.equal(store.claim(2, 'ärger.png', '{}'), false);
      assert.equal(store.claim(3, 'Фото.png', '{}'), true);
      assert.equal(store.claim(4, 'фото.png', '{}'), false);
    });
  },
);

test('an image can claim a name only while pending, and only once', async () => {
  await withStore((store) => {
    store.addItems(urls(2));
    assert.equal(store.claim(1, 'a.png', '{}'), true);
    assert.equal(store.claim(1, 'b.png', '{}'), false, 'already saving');
    store.markFailed(2, { code: 'timeout', status: null, message: 'slow' });
    assert.equal(store.claim(2, 'c.png', '{}'), false, 'failed');
  });
});

test('unclaim frees the name and puts the image back to pending', async () => {
  await withStore((store) => {
    store.addItems(urls(2));
    assert.equal(store.claim(1, 'x.png', '{}'), true);
    store.unclaim(1);
    assert.equal(store.fileTaken('x.png'), false);
    assert.deepEqual(store.pendingIds(), [1, 2]);
    assert.equal(store.claim(2, 'x.png', '{}'), true);
  });
});

test('counts: saving images are pending until marked done; done and failed are counted apart', async () => {
  await withStore((store) => {
    store.addItems(urls(5));
    store.claim(1, 'one.png', '{"file":"one.png"}');
    store.claim(2, 'two.png', '{"file":"two.png"}');
    assert.deepEqual(store.counts(), { pending: 5, saving: 2, done: 0, failed: 0, total: 5 });
    assert.deepEqual(store.saving().map((s) => [s.id, s.file, s.record]), [[1, 'one.png', '{"file":"one.png"}'], [2, 'two.png', '{"file":"two.png"}']]);
    store.markDone([1, 2]);
    store.markFailed(3, { code: 'http_status', status: 404, message: 'HTTP 404' });
    assert.deepEqual(store.counts(), { pending: 2, saving: 0, done: 2, failed: 1, total: 5 });
    assert.deepEqual(store.saving(), []);
    assert.deepEqual(store.pendingIds(), [4, 5]);
    assert.equal(store.fileTaken('one.png'), true, 'a done image keeps its name');
  });
});

test('resetPending puts an image that was being saved back in the queue, without its name', async () => {
  await withStore((store) => {
    store.addItems(urls(1));
    store.claim(1, 'x.png', '{}');
    store.resetPending(1);
    assert.deepEqual(store.saving(), []);
    assert.deepEqual(store.pendingIds(), [1]);
    assert.equal(store.fileTaken('x.png'), false);
  });
});

test('failures keep code, status and message; retryFailed puts them all back to pending', async () => {
  await withStore((store) => {
    store.addItems(urls(3));
    store.markFailed(1, { code: 'http_status', status: 503, message: 'HTTP 503' });
    store.markFailed(3, { code: 'truncated', status: null, message: 'x'.repeat(5000) });
    const failures = store.failures();
    assert.deepEqual(failures.map((f) => [f.url, f.code, f.status]), [['http://h.test/1.png', 'http_status', 503], ['http://h.test/3.png', 'truncated', null]]);
    assert.ok(failures[1]!.message.length <= 2000, 'long messages are cut');
    assert.equal(store.retryFailed(), 2);
    assert.deepEqual(store.failures(), []);
    assert.deepEqual(store.counts(), { pending: 3, saving: 0, done: 0, failed: 0, total: 3 });
  });
});

test('addDoneItems records images an earlier run saved: done, their names taken, URLs not added again', async () => {
  await withStore((store) => {
    assert.equal(store.addDoneItems([{ url: 'http://h.test/1.png', file: 'one.png', record: '{}' }]), 1);
    assert.equal(store.addItems(urls(2))?.from, 2, 'only the new URL is added');
    assert.deepEqual(store.counts(), { pending: 1, saving: 0, done: 1, failed: 0, total: 2 });
    assert.equal(store.fileTaken('ONE.png'), true);
  });
});

test('the state survives closing and reopening the store', async () => {
  const dir = path.join(tmpDir('imgdl-store-'), 'run');
  const first = await RunStore.open(dir);
  first.addItems(urls(3));
  first.claim(1, 'one.png', '{}');
  first.markDone([1]);
  first.markFailed(2, { code: 'timeout', status: null, message: 'slow' });
  first.setMeta('k', 'v');
  first.close();
  const second = await RunStore.open(dir);
  try {
    assert.deepEqual(second.counts(), { pending: 1, saving: 0, done: 1, failed: 1, total: 3 });
    assert.equal(second.getMeta('k'), 'v');
    assert.equal(second.getMeta('missing'), undefined);
    assert.equal(second.fileTaken('one.png'), true);
  } finally {
    second.close();
  }
});

test('Status values are stable (they are stored on disk)', () => {
  assert.deepEqual(Status, { Pending: 0, Saving: 1, Done: 2, Failed: 3 });
});

test('opening a missing run read-only fails instead of creating it', async () => {
  const dir = path.join(tmpDir('imgdl-store-'), 'nothing');
  await assert.rejects(RunStore.open(dir, { readonly: true }), /No run state/);
});

// ------------------------------------------------------------------ request queue

test('lockHead gives pending requests in insertion order and locks them', async () => {
  await withStore((store) => {
    for (const id of ['a', 'b', 'c', 'd']) insert(store, id);
    assert.deepEqual(store.lockHead(2, 60_000).map((r) => r.id), ['a', 'b']);
    assert.deepEqual(store.lockHead(10, 60_000).map((r) => r.id), ['c', 'd'], 'locked ones are skipped');
    assert.deepEqual(store.lockHead(10, 60_000), []);
    assert.equal(store.hasLockedRequests(), true);
  });
});

test('lockHead rows carry the unique key and JSON of the request', async () => {
  await withStore((store) => {
    insert(store, 'a');
    const [row] = store.lockHead(1, 1000);
    assert.equal(row?.uniqueKey, 'key-a');
    assert.equal((JSON.parse(row!.json) as { url: string }).url, 'http://h.test/a');
  });
});

test('a lock expires: the request is listed again after lockMs', async () => {
  await withStore(async (store) => {
    insert(store, 'a');
    assert.deepEqual(store.lockHead(1, 30).map((r) => r.id), ['a']);
    assert.deepEqual(store.lockHead(1, 30), []);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.deepEqual(store.lockHead(1, 30).map((r) => r.id), ['a']);
  });
});

test('forefront requests go before the others, the latest first', async () => {
  await withStore((store) => {
    insert(store, 'a');
    insert(store, 'b');
    insert(store, 'front1', true);
    insert(store, 'front2', true);
    insert(store, 'c');
    assert.deepEqual(head(store), ['front2', 'front1', 'a', 'b', 'c']);
  });
});

test('unlock with forefront moves a request to the front; without, it keeps its place', async () => {
  await withStore((store) => {
    for (const id of ['a', 'b', 'c']) insert(store, id);
    store.lockHead(3, 60_000);
    store.unlock('c', true);
    store.unlock('a', false);
    assert.deepEqual(head(store), ['c', 'a']);
  });
});

test('a handled request leaves the head; updateRequest with forefront moves one to the front and unlocks it', async () => {
  await withStore((store) => {
    for (const id of ['a', 'b', 'c']) insert(store, id);
    store.lockHead(3, 60_000);
    store.updateRequest('a', JSON.stringify({ id: 'a', handledAt: new Date().toISOString() }), true, false);
    store.updateRequest('c', JSON.stringify({ id: 'c', retryCount: 1 }), false, true);
    assert.deepEqual(head(store), ['c'], 'b is still locked, a is handled');
    assert.deepEqual(store.requestCounts(), { total: 3, handled: 1 });
    assert.equal(store.requestById('a')?.handled, true);
    assert.equal((JSON.parse(store.requestById('c')!.json) as { retryCount: number }).retryCount, 1);
  });
});

test('a request inserted as handled is never listed', async () => {
  await withStore((store) => {
    insert(store, 'done', false, true);
    insert(store, 'todo');
    assert.deepEqual(head(store), ['todo']);
    assert.deepEqual(store.requestCounts(), { total: 2, handled: 1 });
  });
});

test('a request is found by its unique key, and is gone once deleted', async () => {
  await withStore((store) => {
    insert(store, 'a');
    assert.deepEqual(store.requestByKey('key-a'), { id: 'a', handled: 0 });
    assert.equal(store.requestByKey('key-zzz'), undefined);
    store.deleteRequest('a');
    assert.equal(store.requestById('a'), undefined);
    assert.deepEqual(head(store), []);
  });
});

test('prolongLock keeps a request locked past its first lock', async () => {
  await withStore(async (store) => {
    insert(store, 'a');
    store.lockHead(1, 30);
    const until = store.prolongLock('a', 60_000);
    assert.ok(until > Date.now() + 50_000);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.deepEqual(store.lockHead(1, 30), []);
  });
});

test('reopening a run clears locks left by a crashed process, so its requests are listed at once', async () => {
  const dir = path.join(tmpDir('imgdl-store-'), 'run');
  const crashed = await RunStore.open(dir);
  for (const id of ['a', 'b']) insert(crashed, id);
  assert.deepEqual(crashed.lockHead(2, 3_600_000).map((r) => r.id), ['a', 'b']);
  crashed.close();
  const resumed = await RunStore.open(dir);
  try {
    assert.equal(resumed.hasLockedRequests(), false);
    assert.deepEqual(head(resumed), ['a', 'b']);
  } finally {
    resumed.close();
  }
});

test('a read-only open (as `imgdl runs` does) leaves the locks of a running process alone', async () => {
  const dir = path.join(tmpDir('imgdl-store-'), 'run');
  const running = await RunStore.open(dir);
  try {
    insert(running, 'a');
    running.lockHead(1, 3_600_000);
    const viewer = await RunStore.open(dir, { readonly: true });
    viewer.close();
    assert.equal(running.hasLockedRequests(), true);
    assert.deepEqual(running.lockHead(1, 1), []);
  } finally {
    running.close();
  }
});

test('queue order survives a reopen: forefront still goes first, the rest still goes last', async () => {
  const dir = path.join(tmpDir('imgdl-store-'), 'run');
  const first = await RunStore.open(dir);
  insert(first, 'a');
  insert(first, 'b', true);
  first.close();
  const second = await RunStore.open(dir);
  try {
    insert(second, 'c', true);
    insert(second, 'd');
    assert.deepEqual(head(second), ['c', 'b', 'a', 'd']);
  } finally {
    second.close();
  }
});

test('images known only from an earlier run in the same folder count nowhere until the inputs list them', async () => {
  await withStore((store) => {
    store.addDoneItems([
      { url: 'http://h.test/1.png', file: 'one.png', record: '{}' },
      { url: 'http://h.test/9.png', file: 'nine.png', record: '{}' },
    ]);
    assert.deepEqual(store.counts(), { pending: 0, saving: 0, done: 0, failed: 0, total: 0 });
    assert.equal(store.addItems(urls(2))?.from, 3, 'only the new URL is added');
    assert.deepEqual(store.counts(), { pending: 1, saving: 0, done: 1, failed: 0, total: 2 }, 'the listed one counts as done');
    assert.equal(store.fileTaken('nine.png'), true, 'the unlisted one keeps its name');
  });
});
