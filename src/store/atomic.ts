/**
 * Durable, atomic file system writes: write into staging on the same file system, fsync, rename, fsync the
 * directory. A reader sees the old file or the new one, whole; a crash at any point leaves only staging debris.
 */
import { randomUUID } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';

/** fsyncs a directory, so a rename or link inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** mkdir -p that also fsyncs the parent of every directory it created. */
export async function ensureDir(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  // Everything from `first` down to `dir` is new: make each entry durable in its parent.
  let current = dir;
  for (;;) {
    await fsyncDir(path.dirname(current));
    if (current === first || path.dirname(current) === current) break;
    current = path.dirname(current);
  }
}

/**
 * Writes `bytes` to `target` atomically: a temp file in `stagingDir` (same file system), fsync, rename, fsync.
 * A failed rename is an error for the caller, never swallowed.
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array, stagingDir: string): Promise<void> {
  await ensureDir(stagingDir);
  const temp = path.join(stagingDir, `${randomUUID()}.tmp`);
  try {
    const handle = await fs.open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await ensureDir(path.dirname(target));
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(target));
}

/** Hard-links `source` to `target`, replacing whatever is there atomically (link to temp, rename). */
export async function linkAtomic(source: string, target: string, stagingDir: string): Promise<void> {
  await ensureDir(path.dirname(target));
  await ensureDir(stagingDir);
  const temp = path.join(stagingDir, `${randomUUID()}.link`);
  try {
    try {
      await fs.link(source, temp);
    } catch (error) {
      // ext4 allows 65,000 links to one inode: a base layer shared by more repositories than that gets a
      // relative symlink instead (still inside the tree, still one copy).
      if ((error as NodeJS.ErrnoException).code !== 'EMLINK') throw error;
      await fs.symlink(path.relative(path.dirname(target), source), temp);
    }
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}

/** True when `a` and `b` are the same file (same device and inode). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}
