import { InvalidArgumentError } from 'commander';
/** Turns any error into the one line the user sees: what went wrong and what to do. */
import path from 'node:path';
import { DigestMismatchError } from '../store/content.ts';
import { DataDirError } from '../store/data-dir.ts';
import { StorageError } from '../store/storage-error.ts';
import { LockTimeoutError } from '../store/locks.ts';
import { RecordError } from '../store/record.ts';
import { PublishError } from '../publish/publisher.ts';
import { SourceError } from '../publish/source.ts';
import { ConfigError } from '../config/yaml-file.ts';

function insideDataDir(file: string, dataDir: string): boolean {
  const relative = path.relative(path.resolve(dataDir), path.resolve(file));
  return !relative.startsWith('..') && !path.isAbsolute(relative);
}

export function describeError(error: unknown, dataDir: string): string {
  if (
    error instanceof PublishError ||
    error instanceof SourceError ||
    error instanceof DigestMismatchError ||
    error instanceof RecordError ||
    error instanceof DataDirError ||
    error instanceof StorageError ||
    error instanceof InvalidArgumentError ||
    error instanceof ConfigError
  ) {
    return error.message;
  }
  if (error instanceof LockTimeoutError)
    return `${error.message}; try again when the other derrick command has finished`;
  const errno = error as NodeJS.ErrnoException;
  const where = errno.path ?? dataDir;
  switch (errno.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return `no space left on the device while writing ${where}; free some space (derrick gc frees unreferenced content) and publish again — the tree is unchanged`;
    case 'EROFS':
      return `cannot write to ${where}: the file system is read-only; publish into a writable --data-dir`;
    case 'EACCES':
    case 'EPERM':
      return insideDataDir(where, dataDir)
        ? `cannot write to ${where}: permission denied; check the owner and mode of --data-dir`
        : `cannot access ${where}: permission denied`;
    case 'ENOENT':
      return `${where} does not exist`;
    case 'ENOTDIR':
      return `${where}: a path component is not a directory`;
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files; raise the limit (ulimit -n) and try again';
    default:
      break;
  }
  return `unexpected error: ${error instanceof Error ? error.message : String(error)}`;
}
