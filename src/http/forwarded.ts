/**
 * Who a request comes from when derrick sits behind proxies it trusts (`trustedProxies`): the client address for
 * the failed-login limit and the access log, and the scheme and host for the default token realm. Headers are
 * believed only from a trusted peer, and X-Forwarded-For is read from the right (what the nearest proxy appended)
 * leftwards while each hop is trusted, so a client cannot choose its own address by sending the header itself.
 */
import { BlockList, isIP } from 'node:net';
import { parseAddressRange } from '../config/address-range.ts';

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  /** `ranges` were checked by the configuration schema; one that is not a range here is a programming error. */
  constructor(ranges: readonly string[]) {
    for (const text of ranges) {
      const range = parseAddressRange(text);
      if (typeof range === 'string') throw new Error(`trustedProxies: ${range}`);
      this.list.addSubnet(range.address, range.prefix, range.family);
    }
    this.empty = ranges.length === 0;
  }

  /** Whether `address` (as a socket or X-Forwarded-For gives it) is a trusted proxy. */
  trusts(address: string | undefined): boolean {
    if (this.empty || address === undefined) return false;
    const version = isIP(address);
    return version !== 0 && this.list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client's address: the peer's, or, while the peer and then each hop of X-Forwarded-For (right to left) is a
   * trusted proxy, the hop before it. A malformed hop ends the walk at the last trusted one's report of it.
   */
  client(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    let client = peer ?? 'unknown';
    if (forwardedFor === undefined || !this.trusts(client)) return unmapped(client);
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
    for (let i = hops.length - 1; i >= 0 && this.trusts(client); i--) {
      const hop = hopAddress(hops[i] ?? '');
      if (hop === undefined) break;
      client = hop;
    }
    return unmapped(client);
  }

  /**
   * A header the nearest proxy set (X-Forwarded-Proto, X-Forwarded-Host): its last value, when the peer is trusted
   * and that value is well formed; otherwise undefined.
   */
  forwarded(
    peer: string | undefined,
    value: string | string[] | undefined,
    valid: RegExp,
  ): string | undefined {
    if (value === undefined || !this.trusts(peer)) return undefined;
    const joined = Array.isArray(value) ? value.join(',') : value;
    const last = joined.slice(joined.lastIndexOf(',') + 1).trim();
    return valid.test(last) ? last : undefined;
  }
}

/**
 * One X-Forwarded-For hop's address: `10.0.0.1`, `2001:db8::1`, or with the port some load balancers add
 * (`10.0.0.1:4711`, `[2001:db8::1]:4711`), which would otherwise make every connection a new client.
 */
function hopAddress(text: string): string | undefined {
  const hop = text.trim();
  if (isIP(hop) !== 0) return hop;
  const withPort = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3}))(?::\d{1,5})?$/.exec(hop);
  const address = withPort?.[1] ?? withPort?.[2];
  return address !== undefined && isIP(address) !== 0 ? address : undefined;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`, so one client has one key however the socket reports it. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
