// The private-network guard (--block-private, `blockPrivateNetwork`): which addresses a run may connect to.
import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { DownloadError, PRIVATE_ADDRESS_ERRNO } from '../errors.ts';

/**
 * The range of a non-public address (`loopback`, `private`, `linkLocal`, `uniqueLocal`, `carrierGradeNat`,
 * `unspecified`, `multicast`, …, by ipaddr.js, IPv4-mapped IPv6 taken as the IPv4 address), or undefined for a
 * public (global unicast) one. Text that is not an IP address is refused too (`invalid`).
 */
export function nonPublicRange(address: string): string | undefined {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  // A zone index (fe80::1%eth0) is link-local whatever follows it.
  if (bare.includes('%')) return 'linkLocal';
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.process(bare);
  } catch {
    return 'invalid';
  }
  const range = parsed.range();
  return range === 'unicast' ? undefined : range;
}

/** The error for a refused address: DownloadError `private_address`, never retried. */
export function privateAddressError(host: string, address: string, range: string): DownloadError {
  return new DownloadError('private_address', refusal(host, address, range));
}

function refusal(host: string, address: string, range: string): string {
  const where = host === address ? address : `${host} (${address})`;
  return `${where} is a ${range} address, not a public one, and --block-private is on`;
}

/**
 * Refuses a URL whose host is a literal non-public IP address (names are checked when they are resolved:
 * `guardedLookup`). Throws DownloadError `private_address`.
 */
export function checkLiteralHost(url: URL): void {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (net.isIP(host) === 0) return;
  const range = nonPublicRange(host);
  if (range !== undefined) throw privateAddressError(host, host, range);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * dns.lookup for net/tls `connect({ lookup })`: resolves as usual, then drops non-public addresses, and errors
 * (code ERR_IMGDL_PRIVATE_ADDRESS, mapped to `private_address`) when none is left. The addresses checked are the
 * ones connected to, so a DNS answer cannot change between the check and the connection.
 */
export function guardedLookup(hostname: string, options: dns.LookupOptions | number | LookupCallback, callback?: LookupCallback): void {
  const cb = (typeof options === 'function' ? options : callback)!;
  const opts: dns.LookupOptions = typeof options === 'function' ? {} : typeof options === 'number' ? { family: options } : options;
  dns.lookup(hostname, { ...opts, all: true }, (error, addresses) => {
    if (error) return cb(error, opts.all ? [] : '');
    const allowed = addresses.filter((a) => nonPublicRange(a.address) === undefined);
    if (allowed.length === 0) {
      const first = addresses[0];
      // A plain error with a code (what net expects of a lookup), mapped to `private_address` by toDownloadError.
      const refused: NodeJS.ErrnoException = new Error(refusal(hostname, first?.address ?? hostname, first ? nonPublicRange(first.address)! : 'unresolved'));
      refused.code = PRIVATE_ADDRESS_ERRNO;
      return cb(refused, opts.all ? [] : '');
    }
    if (opts.all) return cb(null, allowed);
    cb(null, allowed[0]!.address, allowed[0]!.family);
  });
}

/**
 * Resolves `url`'s host and refuses it when any address is non-public; for requests whose connection imgdl cannot
 * hook: the fetch client's, and those through a proxy (the proxy connects). A name that does not resolve is let
 * through (the request fails with the runtime's own DNS error), unless `strict`: then it is refused too, since a
 * proxy may resolve it where imgdl cannot (an internal name). Throws DownloadError `private_address`.
 */
export async function checkResolvedHost(url: URL, { strict = false }: { strict?: boolean } = {}): Promise<void> {
  checkLiteralHost(url);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (net.isIP(host) !== 0) return;
  let addresses: dns.LookupAddress[];
  try {
    addresses = await dns.promises.lookup(host, { all: true });
  } catch (error) {
    if (!strict) return;
    const code = (error as NodeJS.ErrnoException).code ?? 'unresolved';
    throw new DownloadError('private_address', `${host} does not resolve here (${code}), so it cannot be checked before the proxy connects to it, and --block-private is on`);
  }
  const refused = addresses.find((a) => nonPublicRange(a.address) !== undefined);
  if (refused) throw privateAddressError(host, refused.address, nonPublicRange(refused.address)!);
}
