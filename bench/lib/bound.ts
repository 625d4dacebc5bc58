/**
 * The concurrency bound of a plugin run on the slow origin: the best time a client with `slots` requests in flight
 * could reach, given the delays the origin actually served and the order the site imposes (a flag after its
 * country's metadata, a gallery image after its page, a page after the page before it).
 *
 * - `lowerBound`: max(total delay / slots, longest chain of dependent requests). No client can beat it.
 * - `simulated`: a schedule that is achievable: `slots` slots, each request taking exactly its delay, started as
 *   soon as its parent is answered and a slot is free, the ready request with the longest chain below it first
 *   (critical path first, knowing every delay in advance). Zero client overhead, zero transfer time. The best
 *   schedule lies between the two; when they are equal, it is exact. The ratio target uses `simulated`.
 */
import { parentOf } from './sites.ts';

export interface Bound {
  /** Distinct site requests the bound is computed over. */
  requests: number;
  /** Sum of their delays, seconds. */
  totalDelaySeconds: number;
  /** Longest chain of dependent requests, seconds. */
  longestChainSeconds: number;
  /** max(total / slots, longest chain), seconds. */
  lowerBoundSeconds: number;
  /** The simulated schedule's end, seconds. */
  simulatedSeconds: number;
  /** The earliest an image can be answered: the shortest chain from a start request to an image, seconds. */
  firstImageSeconds: number | null;
  slots: number;
}

interface Node {
  delay: number;
  image: boolean;
  /** Its delay plus those of the requests above it. */
  head: number;
  children: Node[];
  /** Delay of this request plus the longest chain below it. */
  tail: number;
}

/** A binary heap of ready nodes, longest tail first. */
class Ready {
  private readonly items: Node[] = [];

  get size(): number {
    return this.items.length;
  }

  push(node: Node): void {
    const a = this.items;
    a.push(node);
    let i = a.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (a[up]!.tail >= a[i]!.tail) break;
      [a[up], a[i]] = [a[i]!, a[up]!];
      i = up;
    }
  }

  pop(): Node | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let big = i;
        if (l < a.length && a[l]!.tail > a[big]!.tail) big = l;
        if (r < a.length && a[r]!.tail > a[big]!.tail) big = r;
        if (big === i) break;
        [a[big], a[i]] = [a[i]!, a[big]!];
        i = big;
      }
    }
    return top;
  }
}

/**
 * `delays`: each site path the origin served and its delay in ms (one per path: the delay is a function of the
 * path). A path whose parent was not requested is treated as a start request.
 */
export function concurrencyBound(delays: Map<string, number>, slots: number, isImage: (path: string) => boolean): Bound | null {
  if (delays.size === 0) return null;
  const nodes = new Map<string, Node>();
  for (const [path, delay] of delays) nodes.set(path, { delay: delay / 1000, image: isImage(path), head: 0, children: [], tail: 0 });
  const roots: Node[] = [];
  for (const [path, node] of nodes) {
    const parent = parentOf(path);
    const up = parent ? nodes.get(parent) : undefined;
    if (up) up.children.push(node);
    else roots.push(node);
  }
  // Tails, children before parents (iterative: the gallery's chain is short, but a list of pages need not be).
  const order: Node[] = [];
  const stack = [...roots];
  for (const root of roots) root.head = root.delay;
  let firstImage: number | null = null;
  while (stack.length > 0) {
    const node = stack.pop()!;
    order.push(node);
    if (node.image) firstImage = Math.min(firstImage ?? Infinity, node.head);
    for (const child of node.children) child.head = node.head + child.delay;
    stack.push(...node.children);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i]!;
    node.tail = node.delay + Math.max(0, ...node.children.map((c) => c.tail));
  }
  const total = order.reduce((sum, n) => sum + n.delay, 0);
  const chain = Math.max(...roots.map((r) => r.tail));

  // Event simulation: `running` holds the end times of the requests in flight.
  const ready = new Ready();
  for (const root of roots) ready.push(root);
  const running: { end: number; node: Node }[] = [];
  let t = 0;
  let end = 0;
  while (ready.size > 0 || running.length > 0) {
    while (running.length < slots && ready.size > 0) {
      const node = ready.pop()!;
      running.push({ end: t + node.delay, node });
    }
    // the next request to finish (a linear scan: at most `slots` in flight)
    let next = 0;
    for (let i = 1; i < running.length; i++) if (running[i]!.end < running[next]!.end) next = i;
    const [done] = running.splice(next, 1);
    t = done!.end;
    end = Math.max(end, t);
    for (const child of done!.node.children) ready.push(child);
  }
  return {
    requests: order.length,
    totalDelaySeconds: total,
    longestChainSeconds: chain,
    lowerBoundSeconds: Math.max(total / slots, chain),
    simulatedSeconds: end,
    firstImageSeconds: firstImage,
    slots,
  };
}
