/**
 * Failed logins per client address (an IPv6 client by its /64), in fixed windows: after `limit` failures within `windowSeconds`, that
 * client's credentials are not even checked (no bcrypt spent on it) until the window ends. Each serving process
 * counts its own (in a cluster, a client's budget is at most limit × workers).
 */
import { isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';

/** The key a client is counted under: its address, or for IPv6 its /64 (one host usually holds a whole /64). */
export function clientKey(address: string): string {
  if (!isIPv6(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  // A dotted IPv4 tail is two groups.
  const hex = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_all, a, b, c, d) =>
    [((Number(a) << 8) | Number(b)).toString(16), ((Number(c) << 8) | Number(d)).toString(16)].join(':'),
  );
  const [head = '', tail = ''] = hex.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = hex.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = hex.includes('::')
    ? [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts]
    : headParts;
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

interface Window {
  start: number;
  failures: number;
}

export class FailedLogins {
  private readonly windows = new LRUCache<string, Window>({ max: 100_000 });

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private current(address: string): Window | undefined {
    const client = clientKey(address);
    const window = this.windows.get(client);
    if (window && this.now() - window.start >= this.windowMs) {
      this.windows.delete(client);
      return undefined;
    }
    return window;
  }

  /** Seconds until `client` may try again, or 0 when it may now. */
  retryAfter(client: string): number {
    const window = this.current(client);
    if (!window || window.failures < this.limit) return 0;
    return Math.max(1, Math.ceil((window.start + this.windowMs - this.now()) / 1000));
  }

  fail(address: string): void {
    const window = this.current(address);
    if (window) window.failures++;
    else this.windows.set(clientKey(address), { start: this.now(), failures: 1 });
  }
}
