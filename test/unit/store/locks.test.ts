import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { TreeLayout } from '../../../src/store/layout.ts';
import { acquireLock, LockTimeoutError, repositoryLockKey } from '../../../src/store/locks.ts';
import { tempDir } from '../../helpers/cli.ts';

describe('repository locks', () => {
  const temp = tempDir();
  const layout = new TreeLayout(temp.dir);
  after(() => temp.cleanup());

  test('a held lock makes a second taker wait, then time out', async () => {
    const lock = await acquireLock(layout, repositoryLockKey('a'), 100);
    await assert.rejects(acquireLock(layout, repositoryLockKey('a'), 150), LockTimeoutError);
    await lock.release();
    const again = await acquireLock(layout, repositoryLockKey('a'), 100);
    await again.release();
  });

  test('locks of different repositories, or of one name in different trees, are independent', async () => {
    const a = await acquireLock(layout, repositoryLockKey('a'), 100);
    const b = await acquireLock(layout, repositoryLockKey('b'), 100);
    const other = await acquireLock(new TreeLayout(`${temp.dir}/other`), repositoryLockKey('a'), 100);
    await Promise.all([a.release(), b.release(), other.release()]);
  });

  test('two spellings of one tree (a symlink) share its locks', async () => {
    mkdirSync(`${temp.dir}/real`);
    symlinkSync(`${temp.dir}/real`, `${temp.dir}/link`);
    const lock = await acquireLock(new TreeLayout(`${temp.dir}/real`), repositoryLockKey('a'), 100);
    await assert.rejects(
      acquireLock(new TreeLayout(`${temp.dir}/link`), repositoryLockKey('a'), 150),
      LockTimeoutError,
    );
    await lock.release();
  });

  test('a lock held by a process killed with SIGKILL is free at once', async () => {
    const script = `
      import { TreeLayout } from './src/store/layout.ts';
      import { acquireLock, repositoryLockKey } from './src/store/locks.ts';
      const lock = await acquireLock(new TreeLayout(${JSON.stringify(temp.dir)}), repositoryLockKey('killed'), 1000);
      process.stdout.write('held\\n');
      setInterval(() => undefined, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await assert.rejects(acquireLock(layout, repositoryLockKey('killed'), 100), LockTimeoutError);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const lock = await acquireLock(layout, repositoryLockKey('killed'), 100);
    await lock.release();
  });
});
