/**
 * What a `--data-dir` must be before a command touches it. Every command but `publish` and `migrate` works on a
 * published tree — a directory with `v2/` inside — and must never create one by accident; `publish` and `migrate`
 * may start a tree, but only in a new or empty directory, never among somebody else's files. The check reads and
 * creates nothing: it runs before any lock, registration or staging directory is made.
 */
import { readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { TreeLayout } from './layout.ts';

/** `existing`: the directory must already be a tree; `new-or-existing`: new, empty, or a tree. */
export type DataDirUse = 'existing' | 'new-or-existing';

/** A `--data-dir` that is not what the command needs; the message says what it is and what to do. */
export class DataDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirError';
  }
}

function statOrCode(file: string): Stats | string {
  try {
    return statSync(file);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? 'EIO';
  }
}

function notReadable(root: string, code: string): DataDirError {
  switch (code) {
    case 'ENOTDIR':
      return new DataDirError(
        `--data-dir ${root}: a component of the path is a file, not a directory; pass --data-dir a directory`,
      );
    case 'EACCES':
    case 'EPERM':
      return new DataDirError(
        `cannot read --data-dir ${root}: permission denied; check the owner and mode of the directory`,
      );
    default:
      return new DataDirError(`cannot read --data-dir ${root}: ${code}`);
  }
}

/** Throws a DataDirError unless the data directory of `layout` is fit for `use`. */
export function checkDataDir(layout: TreeLayout, use: DataDirUse): void {
  const { root } = layout;
  const fix =
    use === 'existing'
      ? 'pass --data-dir the directory of a published tree'
      : 'pass --data-dir a new or empty directory, or a published tree';
  const rootStat = statOrCode(root);
  if (rootStat === 'ENOENT') {
    if (use === 'new-or-existing') return;
    throw new DataDirError(
      `no published tree at ${root} (the directory does not exist): publish into it first, or pass --data-dir`,
    );
  }
  if (typeof rootStat === 'string') throw notReadable(root, rootStat);
  if (!rootStat.isDirectory())
    throw new DataDirError(`--data-dir ${root} is a file, not a directory: ${fix}`);

  const v2 = path.join(root, 'v2');
  const v2Stat = statOrCode(v2);
  if (typeof v2Stat !== 'string') {
    if (v2Stat.isDirectory()) return;
    throw new DataDirError(`${v2} is a file, so ${root} is not a published tree: ${fix}`);
  }
  if (v2Stat !== 'ENOENT') throw notReadable(v2, v2Stat);
  if (use === 'existing')
    throw new DataDirError(
      `no published tree at ${root} (no v2/ inside): publish into it first, or pass --data-dir`,
    );
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (error) {
    throw notReadable(root, (error as NodeJS.ErrnoException).code ?? 'EIO');
  }
  // What appeared since the first look may be v2/ itself: another publisher starting this tree at the same time.
  const v2Now = statOrCode(v2);
  if (entries.length > 0 && !(typeof v2Now !== 'string' && v2Now.isDirectory()))
    throw new DataDirError(
      `${root} is not empty and holds no published tree (no v2/ inside): publish into a new or empty directory, or pass --data-dir the directory of a published tree`,
    );
}
