/**
 * Users from an htpasswd file of bcrypt hashes (`htpasswd -B`). The file is re-read when `stat` says it changed,
 * so adding or removing a user needs no restart; a file that no longer parses leaves the last good one in force
 * (and is logged). A verified user/password pair is remembered against the hash it matched, so bcrypt's cost
 * (~50 ms) is paid once per pair, not per request, and a changed hash invalidates it.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { statSignature } from '../store/stat-signature.ts';
import { AuthConfigError } from './errors.ts';

/** bcrypt with a cost bcrypt accepts: 04–31. */
const BCRYPT = /^\$2[aby]\$(?:0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** What a non-bcrypt hash is, for the message that refuses it. */
function weakKind(hash: string): string | undefined {
  if (hash.startsWith('$apr1$')) return 'an Apache MD5 ($apr1$) hash';
  if (hash.startsWith('$1$')) return 'an MD5-crypt ($1$) hash';
  if (hash.startsWith('{SHA}')) return 'an unsalted SHA-1 ({SHA}) hash';
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return 'a SHA-crypt ($5$/$6$) hash';
  if (/^[./A-Za-z0-9]{13}$/.test(hash)) return 'a DES crypt() hash';
  return undefined;
}

/** Parses htpasswd text into user → bcrypt hash; anything else is refused with its line. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file} line ${index + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`${where}: expected user:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (BCRYPT.test(hash)) {
      if (users.has(user)) throw new Error(`${where}: user "${user}" appears twice`);
      users.set(user, hash);
      return;
    }
    const weak = weakKind(hash);
    throw new Error(
      weak === undefined
        ? `${where}: user "${user}" has no bcrypt hash; make one with htpasswd -B`
        : `${where}: user "${user}" has ${weak}, which derrick refuses (only bcrypt is accepted); replace it with htpasswd -B`,
    );
  });
  return users;
}

type Bcrypt = typeof import('bcryptjs').default;

let bcryptModule: Promise<Bcrypt> | undefined;
// bcryptjs loads only when a password is first checked (start-up time is module loading).
const loadBcrypt = (): Promise<Bcrypt> =>
  (bcryptModule ??= import('bcryptjs').then((module) => module.default));

/** The cost most of the hashes use (their `$2y$<cost>$`), 10 when there are none. */
function typicalCost(users: ReadonlyMap<string, string>): number {
  const counts = new Map<number, number>();
  for (const hash of users.values()) {
    const cost = Number(hash.slice(4, 6));
    counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 10;
}

export interface HtpasswdLog {
  error(object: object, message: string): void;
  info(object: object, message: string): void;
}

export class Htpasswd {
  private users: Map<string, string>;
  private signature: string;
  private failedSignature = '';
  /** HMAC(user, password) → the hash that pair matched. The HMAC key never leaves this process. */
  private readonly verified = new LRUCache<string, string>({ max: 10_000 });
  private readonly cacheKey = randomBytes(32);
  /** bcrypt checks under way, by credentials and hash. */
  private readonly checking = new Map<string, Promise<boolean>>();
  /** Compared against for an unknown user, so that a wrong name takes as long as a wrong password. */
  private dummy: { cost: number; hash: Promise<string> } | undefined;

  /** Reads the file now; a missing or invalid file is an AuthConfigError naming `key`. */
  constructor(
    readonly file: string,
    private readonly log: HtpasswdLog,
    key = 'auth.htpasswd',
  ) {
    try {
      this.signature = statSignature(statSync(file));
      this.users = parseHtpasswd(readFileSync(file, 'utf8'), file);
    } catch (error) {
      throw new AuthConfigError(key, (error as Error).message);
    }
  }

  /** Re-reads the file if it changed since last time; keeps the old users if it cannot be read or parsed. */
  private refresh(): void {
    let signature: string;
    try {
      signature = statSignature(statSync(this.file));
    } catch (error) {
      this.reportOnce(`stat:${(error as Error).message}`, (error as Error).message);
      return;
    }
    if (signature === this.signature || signature === this.failedSignature) return;
    try {
      this.users = parseHtpasswd(readFileSync(this.file, 'utf8'), this.file);
    } catch (error) {
      this.reportOnce(signature, (error as Error).message);
      return;
    }
    this.signature = signature;
    this.failedSignature = '';
    this.log.info({ file: this.file, users: this.users.size }, 'htpasswd file reloaded');
  }

  private reportOnce(signature: string, message: string): void {
    if (this.failedSignature === signature) return;
    this.failedSignature = signature;
    this.log.error({ file: this.file, err: message }, 'htpasswd file not reloaded; the previous users stay');
  }

  /** Whether `password` is `user`'s. */
  async verify(user: string, password: string): Promise<boolean> {
    this.refresh();
    const bcrypt = await loadBcrypt();
    const hash = this.users.get(user);
    if (hash === undefined) {
      const cost = typicalCost(this.users);
      if (this.dummy?.cost !== cost)
        this.dummy = { cost, hash: bcrypt.hash(randomBytes(16).toString('hex'), cost) };
      await bcrypt.compare(password, await this.dummy.hash);
      return false;
    }
    const key = createHmac('sha256', this.cacheKey)
      .update(user)
      .update('\0')
      .update(password)
      .digest('base64');
    if (this.verified.get(key) === hash) return true;
    // A client that has just logged in sends its first requests in parallel: one bcrypt check serves them all.
    const pending = `${key}\0${hash}`;
    let check = this.checking.get(pending);
    if (!check) {
      check = bcrypt.compare(password, hash).finally(() => this.checking.delete(pending));
      this.checking.set(pending, check);
    }
    if (!(await check)) return false;
    this.verified.set(key, hash);
    return true;
  }

  get size(): number {
    return this.users.size;
  }
}
