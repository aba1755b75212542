/**
 * Failed logins per client address, in fixed windows: after `limit` failures within `windowSeconds`, that
 * client's credentials are not even checked (no bcrypt spent on it) until the window ends. Each serving process
 * counts its own (in a cluster, a client's budget is at most limit × workers).
 */
import { LRUCache } from 'lru-cache';

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

  private current(client: string): Window | undefined {
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

  fail(client: string): void {
    const window = this.current(client);
    if (window) window.failures++;
    else this.windows.set(client, { start: this.now(), failures: 1 });
  }
}
