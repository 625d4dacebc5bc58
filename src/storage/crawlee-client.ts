import { createHash } from 'node:crypto';
import type {
  BatchAddRequestsResult,
  ListAndLockHeadResult,
  ProcessedRequest,
  QueueHead,
  RequestOptions,
  RequestQueueClient,
  RequestQueueCollectionClient,
  RequestQueueInfo,
  RequestSchema,
  StorageClient,
  UpdateRequestSchema,
} from '@crawlee/types';
import type { RunStore } from './state.ts';

/** Crawlee's request id for a unique key (same derivation as Crawlee's own, so its caches agree). */
export function requestIdFor(uniqueKey: string): string {
  return createHash('sha256').update(uniqueKey).digest('base64').replace(/[+/=]/g, '').slice(0, 15);
}

/**
 * A Crawlee request queue client over the run's SQLite store. Crawlee's default (one JSON file per request,
 * not written atomically, locks that outlive a crash, a head listing that scans every entry) is neither fast
 * nor crash-safe enough; this keeps Crawlee's RequestQueue API and moves its storage into one WAL database.
 */
export class SqliteRequestQueueClient implements RequestQueueClient {
  private readonly createdAt = new Date();

  constructor(
    private readonly store: RunStore,
    private readonly name: string,
  ) {}

  async get(): Promise<RequestQueueInfo> {
    const { total, handled } = this.store.requestCounts();
    const now = new Date();
    return {
      id: this.name,
      name: this.name,
      createdAt: this.createdAt,
      modifiedAt: now,
      accessedAt: now,
      totalRequestCount: total,
      handledRequestCount: handled,
      pendingRequestCount: total - handled,
    };
  }

  async update(newFields: { name?: string }): Promise<Partial<RequestQueueInfo>> {
    return { ...(await this.get()), ...newFields };
  }

  async delete(): Promise<void> {
    // The queue lives as long as its run; `imgdl runs --clean` removes both.
  }

  async listHead(options?: { limit?: number }): Promise<QueueHead> {
    const rows = this.store.listHead(options?.limit ?? 100);
    return { limit: options?.limit ?? 100, queueModifiedAt: new Date(), hadMultipleClients: false, items: rows.map(headItem) };
  }

  async listAndLockHead(options: { limit?: number; lockSecs: number }): Promise<ListAndLockHeadResult> {
    const limit = options.limit ?? 25;
    const rows = this.store.lockHead(limit, options.lockSecs * 1000);
    return {
      limit,
      lockSecs: options.lockSecs,
      queueModifiedAt: new Date(),
      hadMultipleClients: false,
      queueHasLockedRequests: rows.length === 0 ? this.store.hasLockedRequests() : true,
      items: rows.map(headItem),
    };
  }

  async addRequest(request: RequestSchema, options?: RequestOptions): Promise<ProcessedRequest> {
    return this.add(request, options?.forefront === true);
  }

  async batchAddRequests(requests: RequestSchema[], options?: RequestOptions): Promise<BatchAddRequestsResult> {
    return { processedRequests: this.addNow(requests, options?.forefront === true), unprocessedRequests: [] };
  }

  /** Adds requests synchronously, so that a caller can add them in the same transaction as other state. */
  addNow(requests: RequestSchema[], forefront = false): ProcessedRequest[] {
    return this.store.transaction(() => requests.map((request) => this.add(request, forefront)));
  }

  private add(request: RequestSchema, forefront: boolean): ProcessedRequest {
    const existing = this.store.requestByKey(request.uniqueKey);
    if (existing) {
      return { uniqueKey: request.uniqueKey, requestId: existing.id, wasAlreadyPresent: true, wasAlreadyHandled: existing.handled === 1 };
    }
    const id = request.id ?? requestIdFor(request.uniqueKey);
    const handled = Boolean(request.handledAt);
    this.store.insertRequest(id, request.uniqueKey, JSON.stringify({ ...request, id }), handled, forefront);
    return { uniqueKey: request.uniqueKey, requestId: id, wasAlreadyPresent: false, wasAlreadyHandled: false };
  }

  async getRequest(id: string): Promise<RequestOptions | undefined> {
    const row = this.store.requestById(id);
    return row ? (JSON.parse(row.json) as RequestOptions) : undefined;
  }

  async updateRequest(request: UpdateRequestSchema, options?: RequestOptions): Promise<ProcessedRequest> {
    const row = this.store.requestById(request.id);
    if (!row) return this.add(request, options?.forefront === true);
    const handled = Boolean(request.handledAt);
    this.store.updateRequest(request.id, JSON.stringify(request), handled, options?.forefront === true);
    return { uniqueKey: request.uniqueKey, requestId: request.id, wasAlreadyPresent: true, wasAlreadyHandled: row.handled };
  }

  async deleteRequest(id: string): Promise<void> {
    this.store.deleteRequest(id);
  }

  async prolongRequestLock(id: string, options: { lockSecs: number }): Promise<{ lockExpiresAt: Date }> {
    return { lockExpiresAt: new Date(this.store.prolongLock(id, options.lockSecs * 1000)) };
  }

  async deleteRequestLock(id: string, options?: { forefront?: boolean }): Promise<void> {
    this.store.unlock(id, options?.forefront === true);
  }
}

function headItem(row: { id: string; uniqueKey: string; json: string }) {
  const request = JSON.parse(row.json) as RequestSchema;
  return { id: row.id, uniqueKey: row.uniqueKey, url: request.url, method: request.method ?? 'GET', retryCount: request.retryCount ?? 0 };
}

/**
 * A Crawlee StorageClient whose request queues live in the run store; it has no datasets or key-value stores (a
 * RequestQueue opens none, and a run's records are in its run store).
 */
export function createStorageClient(store: RunStore, queues = new Map<string, SqliteRequestQueueClient>()): StorageClient {
  // Crawlee's MemoryStorage is not even loaded (~40 ms of a start-up).
  const none = (): never => {
    throw new Error("imgdl's Crawlee storage holds request queues only (a run's records are in its run store)");
  };
  const collection: RequestQueueCollectionClient = {
    async list() {
      const items = await Promise.all([...queues.values()].map((q) => q.get()));
      return { items, total: items.length, count: items.length, offset: 0, limit: items.length, desc: false };
    },
    async getOrCreate(name: string) {
      const key = name || 'default';
      if (!queues.has(key)) queues.set(key, new SqliteRequestQueueClient(store, key));
      return queues.get(key)!.get();
    },
  };
  return {
    datasets: none,
    dataset: none,
    keyValueStores: none,
    keyValueStore: none,
    requestQueues: () => collection,
    requestQueue: (id) => {
      const key = id || 'default';
      if (!queues.has(key)) queues.set(key, new SqliteRequestQueueClient(store, key));
      return queues.get(key)!;
    },
  };
}
