/**
 * Failed logins per client address (an IPv6 client by its /64), in fixed windows: after `limit` failures within
 * `windowSeconds`, that client's credentials are not even checked (no bcrypt spent on it) until the window ends.
 * The processes of a cluster tell each other of every failure (`publish`, `failedElsewhere`), so the budget is
 * the limit, not limit × workers.
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

/** Tells the other processes serving the same address of a failed login seen here (its client key and time). */
export type PublishFailure = (key: string, at: number) => void;

/** How the processes of a cluster share failed logins (derrick serve relays them through the primary). */
export interface FailureRelay {
  publish: PublishFailure;
  /** Calls `listener` with each failed login another process saw. */
  subscribe(listener: (key: string, at: number) => void): void;
}

export class FailedLogins {
  // Bounded by maxSize (one a window), not max: lru-cache preallocates arrays for `max` entries (2.7 MB here).
  private readonly windows = new LRUCache<string, Window>({ maxSize: 100_000, sizeCalculation: () => 1 });

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly publish?: PublishFailure,
  ) {}

  /** The window of a client key, if one is open at `at`. */
  private open(key: string, at: number): Window | undefined {
    const window = this.windows.get(key);
    if (window && at - window.start >= this.windowMs) {
      this.windows.delete(key);
      return undefined;
    }
    return window;
  }

  private current(address: string): Window | undefined {
    return this.open(clientKey(address), this.now());
  }

  private count(key: string, at: number): void {
    const window = this.open(key, at);
    if (window) window.failures++;
    else this.windows.set(key, { start: at, failures: 1 });
  }

  /** Seconds until `client` may try again, or 0 when it may now. */
  retryAfter(client: string): number {
    const window = this.current(client);
    if (!window || window.failures < this.limit) return 0;
    return Math.max(1, Math.ceil((window.start + this.windowMs - this.now()) / 1000));
  }

  fail(address: string): void {
    const key = clientKey(address);
    const at = this.now();
    this.count(key, at);
    this.publish?.(key, at);
  }

  /** A failed login another process of the cluster saw (`key` as clientKey made it, at `at`). */
  failedElsewhere(key: string, at: number): void {
    const now = this.now();
    // Too old to count (a message delayed past its window), or from a clock far ahead: ignored.
    if (now - at >= this.windowMs || at - now > this.windowMs) return;
    this.count(key, at);
  }
}
