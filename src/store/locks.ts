/**
 * Locks between derrick processes on one machine, held by binding a Linux abstract-namespace Unix socket.
 * The kernel releases such a socket the instant its process dies — `kill -9` included — so there is no stale
 * lock file to detect, steal or race over. (Publishers on several hosts over one NFS tree are not serialised by
 * this; the object-storage back end will use conditional writes instead.)
 *
 * Two uses:
 * - one lock per repository, held by a publisher only while it reads, merges and renames that record, so
 *   publishers of different repositories never wait for each other;
 * - gc exclusion: every publisher registers in `v2/.inflight/` (a file naming its own socket); gc takes the gc
 *   lock, then waits until no registered publisher is alive. A publisher registers *before* it checks the gc
 *   lock, and gc locks *before* it reads the registrations, so at least one of them sees the other.
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as wait } from 'node:timers/promises';
import { ensureDir } from './atomic.ts';
import type { TreeLayout } from './layout.ts';

/** Resolves after `ms`, or rejects with the reason of `signal` as soon as it aborts. */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  wait(ms, undefined, signal ? { signal } : {});

export interface Lock {
  release(): Promise<void>;
}

/**
 * The tree's identity for lock names: the device and inode of the data directory, so that every spelling of one
 * tree (a symlink, a bind mount, a relative path) shares its locks. Creates the data directory if need be.
 */
const identities = new WeakMap<TreeLayout, Promise<string>>();
function treeIdentity(layout: TreeLayout): Promise<string> {
  let identity = identities.get(layout);
  if (!identity) {
    identity = ensureDir(layout.root)
      .then(() => fs.stat(layout.root))
      .then((stat) => `${stat.dev}:${stat.ino}`);
    identities.set(layout, identity);
  }
  return identity;
}

async function socketName(layout: TreeLayout, key: string): Promise<string> {
  const identity = await treeIdentity(layout);
  const hash = createHash('sha256').update(identity).update('\0').update(key).digest('hex').slice(0, 40);
  return `\0derrick-${hash}`;
}

/** Tries to bind the abstract socket; resolves to the lock, or undefined when another process holds it. */
function tryBind(name: string): Promise<Lock | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve(undefined);
      else reject(error);
    });
    server.listen({ path: name, exclusive: true }, () => {
      server.unref();
      resolve({ release: () => new Promise<void>((done) => server.close(() => done())) });
    });
  });
}

/** True when some live process holds the abstract socket. */
function isHeld(name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: name });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class LockTimeoutError extends Error {}

/** Takes the named lock, waiting (with backoff) up to `timeoutMs`. */
export async function acquireLock(
  layout: TreeLayout,
  key: string,
  timeoutMs: number,
  onWait?: () => void,
): Promise<Lock> {
  const name = await socketName(layout, key);
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  let warned = false;
  for (;;) {
    const lock = await tryBind(name);
    if (lock) return lock;
    if (Date.now() >= deadline)
      throw new LockTimeoutError(`timed out after ${timeoutMs} ms waiting for ${key}`);
    if (!warned) onWait?.();
    warned = true;
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 200);
  }
}

export function repositoryLockKey(name: string): string {
  return `repo:${name}`;
}
const GC_KEY = 'gc';

/**
 * Registers a running publisher so gc waits for it; waits while a gc runs. An abort of `signal` ends the wait (with
 * the signal's reason), leaving no registration behind.
 */
export async function registerPublisher(
  layout: TreeLayout,
  timeoutMs: number,
  onWait?: () => void,
  signal?: AbortSignal,
): Promise<Lock> {
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  for (;;) {
    signal?.throwIfAborted();
    const id = randomUUID();
    const own = await tryBind(await socketName(layout, `publisher:${id}`));
    if (!own) continue;
    await ensureDir(layout.inflightDir);
    const file = path.join(layout.inflightDir, id);
    await fs.writeFile(file, `${process.pid}\n`);
    const release = async (): Promise<void> => {
      await fs.rm(file, { force: true });
      await own.release();
    };
    if (!(await isHeld(await socketName(layout, GC_KEY)))) return { release };
    await release();
    if (Date.now() >= deadline)
      throw new LockTimeoutError(`timed out after ${timeoutMs} ms waiting for a running gc`);
    if (!warned) onWait?.();
    warned = true;
    await sleep(250, signal);
  }
}

/** Takes the gc lock (failing at once if another gc holds it), then waits for running publishers to finish. */
export async function acquireGcLock(
  layout: TreeLayout,
  timeoutMs: number,
  onWait?: () => void,
): Promise<Lock> {
  const lock = await tryBind(await socketName(layout, GC_KEY));
  if (!lock) throw new LockTimeoutError('another derrick gc is running on this tree');
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  try {
    for (;;) {
      let live = 0;
      const entries = await fs.readdir(layout.inflightDir).catch(() => [] as string[]);
      for (const id of entries) {
        if (await isHeld(await socketName(layout, `publisher:${id}`))) live++;
        else await fs.rm(path.join(layout.inflightDir, id), { force: true });
      }
      if (live === 0) return lock;
      if (Date.now() >= deadline) {
        throw new LockTimeoutError(
          `timed out after ${timeoutMs} ms waiting for ${live} running publisher(s)`,
        );
      }
      if (!warned) onWait?.();
      warned = true;
      await sleep(200);
    }
  } catch (error) {
    await lock.release();
    throw error;
  }
}
