/**
 * Another derrick tree (a directory, or `s3://bucket/prefix`) as a sync upstream: the disconnected workflow's far
 * end — `derrick sync` where the internet is, carry the tree (or `copy-tree` it), `derrick sync` from it where it
 * is not. Its repositories are its records (`walkNames`), its tags theirs; an image is published from it through
 * source-tree.ts, every byte checked against its digest by the publisher. A repository of the upstream offers only
 * what its record lists.
 */
import { digestLike } from '../../oci/digest.ts';
import { contentKey } from '../../store/keys.ts';
import type { Tree } from '../../store/tree.ts';
import { openTreeSource } from '../source-tree.ts';
import { UpstreamError, type Upstream } from './upstream.ts';

export function treeUpstream(tree: Tree): Upstream {
  const description = tree.location;
  const record = async (name: string) => {
    const found = await tree.readRecord(name);
    if (!found.found) return undefined;
    if (found.repository.format !== 'derrick')
      throw new UpstreamError(
        `${tree.describeRecord(name)} is a Pulp 2 record; its content is not in the tree`,
      );
    return found.repository;
  };
  const content = async (name: string, digest: string, what: string): Promise<Buffer> => {
    const repository = await record(name);
    if (!repository?.manifests.has(digest) && !repository?.blobs.has(digest))
      throw new UpstreamError(`${description}: ${name} lists no ${what} ${digest}`);
    const read = await tree.backend.read(contentKey(digest));
    if (read.status !== 'found')
      throw new UpstreamError(
        `${tree.backend.describe(contentKey(digest))}: the ${what} is missing from the tree`,
      );
    const actual = digestLike(digest, read.bytes);
    if (actual !== digest)
      throw new UpstreamError(
        `${tree.backend.describe(contentKey(digest))} hashes to ${actual}, not ${digest}; the tree is corrupt (derrick verify)`,
      );
    return read.bytes;
  };
  return {
    description,
    async repositories() {
      const names: string[] = [];
      for await (const name of tree.walkNames()) names.push(name);
      return names;
    },
    async tags(name) {
      const repository = await record(name);
      return repository ? [...repository.tags.keys()] : undefined;
    },
    async digestOf(name, tag) {
      return (await record(name))?.tags.get(tag);
    },
    manifest: (name, digest) => content(name, digest, 'manifest'),
    smallBlob: (name, digest) => content(name, digest, 'blob'),
    open(name, digest) {
      return Promise.resolve(openTreeSource(tree, name, { digest }));
    },
    close: () => Promise.resolve(),
  };
}
