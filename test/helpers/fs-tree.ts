/** The file-system layout of a tree, for tests that look at or damage its files directly. */
import { FsBackend } from '../../src/store/fs-backend.ts';
import type { TreeLayout } from '../../src/store/layout.ts';
import type { Tree } from '../../src/store/tree.ts';

export function fsLayout(tree: Tree): TreeLayout {
  if (!(tree.backend instanceof FsBackend)) throw new Error('this test needs a tree on a file system');
  return tree.backend.layout;
}
