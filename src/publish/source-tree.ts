/**
 * Another derrick tree as an image source — a directory or a bucket, whatever back end it has — for mirroring one
 * tree into another (`derrick sync` from a tree; a disconnected site fed from a carried copy). The repository's
 * record says everything: the root is the manifest its tag (or a digest it lists) names, manifests and blobs are
 * read from the tree's content store, and the candidate referrers are the record's manifests that have a
 * `subject` (collect.ts keeps those whose subject is published, to a fixed point). Only what the record lists is
 * offered, so a digest another repository of the tree holds is not taken from here unseen. The publisher checks
 * every byte against its digest, so a corrupt object in this tree never lands in the other.
 *
 * What to mirror is found with the Tree's own API: `tree.walkNames()` for the repositories, the record's `tags`
 * (`tree.readRecord(name)`) for their tags; each image is then `openTreeSource(tree, name, { tag })`.
 *
 * A Pulp 2 record is refused: its content is not in the tree but behind its `url`.
 */
import type { Readable } from 'node:stream';
import { contentKey } from '../store/keys.ts';
import { RecordError, type Repository } from '../store/record.ts';
import type { Tree } from '../store/tree.ts';
import { SourceError, type BlobBytes, type ImageSource, type SourceManifest } from './source.ts';

export type TreeReference = { tag: string } | { digest: string };

export function openTreeSource(tree: Tree, name: string, ref: TreeReference): ImageSource {
  const wanted = 'tag' in ref ? `${name}:${ref.tag}` : `${name}@${ref.digest}`;
  const description = `${tree.location} ${wanted}`;
  /** How messages name an object of the tree: with the tree's location, once. */
  const where = (key: string): string => {
    const described = tree.backend.describe(key);
    return described.startsWith(tree.location) ? described : `${tree.location}/${described}`;
  };
  let repository: Repository | undefined;

  const record = async (): Promise<Repository> => {
    if (repository) return repository;
    let lookup;
    try {
      lookup = await tree.readRecord(name);
    } catch (error) {
      if (error instanceof RecordError) throw new SourceError(`cannot read ${wanted} from ${error.message}`);
      throw error;
    }
    if (!lookup.found)
      throw new SourceError(
        `the tree ${tree.location} has no repository ${name} (no ${tree.describeRecord(name)})`,
      );
    if (lookup.repository.format !== 'derrick')
      throw new SourceError(
        `${tree.describeRecord(name)} is a Pulp 2 record, whose content is behind its url, not in the tree; mirror it from the registry that serves it (docker://…)`,
      );
    repository = lookup.repository;
    return repository;
  };

  const entryOf = (repo: Repository, digest: string, refName: string | undefined): SourceManifest => {
    const entry = repo.manifests.get(digest);
    return { digest, mediaType: entry?.mediaType, size: entry?.size, refName };
  };

  return {
    description,
    async roots() {
      const repo = await record();
      if ('tag' in ref) {
        const digest = repo.tags.get(ref.tag);
        if (digest === undefined) {
          const known = [...repo.tags.keys()].slice(0, 10).join(', ') || 'none';
          throw new SourceError(`${tree.location}: ${name} has no tag ${ref.tag} (its tags: ${known})`);
        }
        return [entryOf(repo, digest, ref.tag)];
      }
      if (!repo.manifests.has(ref.digest))
        throw new SourceError(`${tree.location}: ${name} has no manifest ${ref.digest}`);
      return [entryOf(repo, ref.digest, undefined)];
    },
    async candidateReferrers() {
      const repo = await record();
      return [...repo.manifests]
        .filter(([, entry]) => entry.subject !== undefined)
        .map(([digest]) => entryOf(repo, digest, undefined));
    },
    async readManifest(digest) {
      const repo = await record();
      if (!repo.manifests.has(digest)) return undefined;
      const key = contentKey(digest);
      const read = await tree.backend.read(key);
      if (read.status === 'refused') throw new SourceError(`${where(key)}: ${read.why}`);
      if (read.status !== 'found')
        throw new SourceError(
          `${where(key)} is missing, though ${tree.describeRecord(name)} lists manifest ${digest}; the tree is damaged (derrick verify)`,
        );
      return { bytes: read.bytes, where: where(key) };
    },
    async blob(digest): Promise<BlobBytes | undefined> {
      const repo = await record();
      if (!repo.blobs.has(digest)) return undefined;
      const key = contentKey(digest);
      const open = async (): Promise<Readable> => {
        const opened = await tree.backend.open(key, undefined, digest);
        if (!opened)
          throw new SourceError(
            `${where(key)} is missing, though ${tree.describeRecord(name)} lists blob ${digest}; the tree is damaged (derrick verify)`,
          );
        return opened.stream;
      };
      return { kind: 'stream', open, where: where(key) };
    },
    close: () => Promise.resolve(),
  };
}
