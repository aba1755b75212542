/**
 * The docker-archive reader, generated: a real `docker save` tarball (made by skopeo) truncated, with bytes
 * changed, with its entries reordered, dropped, duplicated or renamed to hostile paths, with links pointing out of
 * it, with a hostile manifest.json, gzipped or not. Whatever it is given, the reader answers with images or a
 * SourceError, always finishes, and leaves no file anywhere but the archive itself: nothing outside staging, and
 * nothing in staging once the source is closed or has failed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { openDockerArchive } from '../../src/publish/source-docker-archive.ts';
import { SourceError } from '../../src/publish/source.ts';
import { TreeLayout } from '../../src/store/layout.ts';
import { snapshotTree } from '../helpers/cli.ts';
import { singleImageLayout, skopeoCopy } from '../helpers/images.ts';
import { fc, holds } from '../helpers/property.ts';
import { anyText, digest, HOSTILE_PIECES } from './grammar.ts';

const file = import.meta.filename;

// fsync costs nothing on tmpfs, and the reader fsyncs every file it stages: /dev/shm keeps 100,000 cases possible.
const root = mkdtempSync(
  path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'derrick-property-archive-'),
);
after(() => rmSync(root, { recursive: true, force: true }));

/** What tar-stream's pack takes as a header (its extract gives a fuller one). */
type EntryHeader = Parameters<ReturnType<typeof tar.pack>['entry']>[0];

interface Entry {
  header: EntryHeader;
  data: Buffer;
}

let original = Buffer.alloc(0);
let entries: Entry[] = [];

before(async () => {
  const layout = path.join(root, 'layout');
  await singleImageLayout(layout);
  const archive = path.join(root, 'original.tar');
  await skopeoCopy(`oci:${layout}:latest`, `docker-archive:${archive}:app:1`);
  original = await fs.readFile(archive);
  entries = await unpack(original);
  await fs.rm(layout, { recursive: true });
  await fs.rm(archive);
});

async function unpack(bytes: Buffer): Promise<Entry[]> {
  const extract = tar.extract();
  const out: Entry[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
      out.push({ header: entry.header, data: Buffer.concat(chunks) });
    }
  })();
  extract.end(bytes);
  await done;
  return out;
}

async function pack(list: Entry[]): Promise<Buffer> {
  const packer = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    packer.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    packer.on('end', resolve);
    packer.on('error', reject);
  });
  for (const { header, data } of list) {
    const { size: _size, ...rest } = header;
    const isFile = header.type === 'file' || header.type === undefined;
    packer.entry(rest, isFile ? data : Buffer.alloc(0));
  }
  packer.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An entry name an attacker would pick. */
const hostileName = fc.oneof(
  fc.constantFrom(
    '../../outside',
    '/etc/passwd',
    '/',
    '.',
    '..',
    './manifest.json',
    '//manifest.json',
    'a/../../manifest.json',
    'manifest.json/',
    'x'.repeat(300),
    `${'../'.repeat(40)}tmp/evil`,
  ),
  fc
    .array(fc.constantFrom(...HOSTILE_PIECES, 'manifest.json', 'layer.tar'), { maxLength: 6 })
    .map((p) => p.join('')),
  anyText,
);

/** A manifest.json a hostile archive could carry: the right shape with hostile paths, or any JSON. */
const hostileManifest = fc.oneof(
  fc.jsonValue(),
  fc.array(
    fc.record({
      Config: fc.oneof(
        hostileName,
        fc.constant('manifest.json'),
        digest.map((d) => `${d.slice(7)}.json`),
      ),
      RepoTags: fc.oneof(
        fc.constant(null),
        fc.array(fc.oneof(anyText, fc.constant('app:1')), { maxLength: 3 }),
      ),
      Layers: fc.array(fc.oneof(hostileName, fc.constant('manifest.json')), { maxLength: 3 }),
    }),
    { maxLength: 3 },
  ),
);

/** A change to the entry list (plain data, so a counterexample reads as what was done). */
type EntryChange =
  | { order: number[] }
  | { rename: number; to: string }
  | { link: 'symlink' | 'link'; name: string; to: string }
  | { manifest: unknown }
  | { append: number; bytes: Uint8Array };

/** Changes to the entry list: reorder, drop, duplicate, rename, add links out of the archive, replace manifest.json. */
const entryChange: fc.Arbitrary<EntryChange> = fc.oneof(
  fc.record({ order: fc.array(fc.nat(), { minLength: 1, maxLength: 12 }) }),
  fc.record({ rename: fc.nat(), to: hostileName }),
  fc.record({
    link: fc.constantFrom('symlink' as const, 'link' as const),
    name: fc.oneof(fc.constant('manifest.json'), hostileName),
    to: hostileName,
  }),
  fc.record({ manifest: hostileManifest }),
  fc.record({ append: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

function changeEntries(list: Entry[], change: EntryChange): Entry[] {
  const at = (i: number): number => i % list.length;
  if ('order' in change)
    return change.order.map((i) => list[at(i)]).filter((e): e is Entry => e !== undefined);
  if ('rename' in change)
    return list.map((e, j) =>
      j === at(change.rename) ? { ...e, header: { ...e.header, name: change.to } } : e,
    );
  if ('link' in change)
    return [
      {
        header: { name: change.name, type: change.link, linkname: change.to, mode: 0o777 },
        data: Buffer.alloc(0),
      },
      ...list.filter((e) => e.header.name !== change.name),
    ];
  if ('manifest' in change)
    return [
      ...list.filter((e) => e.header.name !== 'manifest.json'),
      {
        header: { name: 'manifest.json', type: 'file', mode: 0o644 },
        data: Buffer.from(JSON.stringify(change.manifest)),
      },
    ];
  return list.map((e, j) =>
    j === at(change.append) && e.header.type === 'file'
      ? { ...e, data: Buffer.concat([e.data, change.bytes]) }
      : e,
  );
}

/** A change to the bytes: truncate, overwrite some bytes, gzip (and truncate that), or other bytes entirely. */
type ByteChange =
  | { truncate: number }
  | { overwrite: [number, number][] }
  | { gzip: true }
  | { gzipThenTruncate: number }
  | { replace: Uint8Array };

const byteChange: fc.Arbitrary<ByteChange> = fc.oneof(
  fc.record({ truncate: fc.nat() }),
  fc.record({
    overwrite: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
  }),
  fc.constant({ gzip: true as const }),
  fc.record({ gzipThenTruncate: fc.nat() }),
  fc.record({ replace: fc.uint8Array({ maxLength: 2048 }) }),
);

function changeBytes(bytes: Buffer, change: ByteChange): Buffer {
  if ('truncate' in change) return bytes.subarray(0, change.truncate % (bytes.length + 1));
  if ('overwrite' in change) {
    const copy = Buffer.from(bytes);
    if (copy.length > 0) for (const [at, value] of change.overwrite) copy[at % copy.length] = value;
    return copy;
  }
  if ('gzip' in change) return gzipSync(bytes);
  if ('gzipThenTruncate' in change) {
    const gzipped = gzipSync(bytes);
    return gzipped.subarray(0, change.gzipThenTruncate % (gzipped.length + 1));
  }
  return Buffer.from(change.replace);
}

/** A whole hostile archive: some entry changes, then some byte changes, to the original. */
const hostileArchive = fc.record({
  entries: fc.array(entryChange, { maxLength: 3 }),
  bytes: fc.array(byteChange, { maxLength: 2 }),
});

async function build(changes: { entries: EntryChange[]; bytes: ByteChange[] }): Promise<Buffer> {
  let bytes =
    changes.entries.length === 0 ? original : await pack(changes.entries.reduce(changeEntries, entries));
  for (const change of changes.bytes) bytes = changeBytes(bytes, change);
  return bytes;
}

const reference = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('app:1', 'docker.io/library/app:1', '@0', '@1', '@-1', '@x', 'other:2'),
  anyText,
);

let cases = 0;

/** Reads the archive as `derrick publish` would; the outcome is images, or the SourceError it failed with. */
async function readArchive(bytes: Buffer, ref: string | undefined, allTags: boolean): Promise<void> {
  const dir = path.join(root, `case-${++cases}`);
  await fs.mkdir(dir);
  const archive = path.join(dir, 'archive.tar');
  await fs.writeFile(archive, bytes);
  const layout = new TreeLayout(path.join(dir, 'data'));
  try {
    const source = await openDockerArchive(layout.stagingDir, archive, ref);
    try {
      for (const root of await source.roots(allTags)) {
        const manifest = await source.readManifest(root.digest);
        assert.ok(manifest);
        const parsed = JSON.parse(manifest.bytes.toString('utf8')) as {
          config: { digest: string };
          layers: { digest: string }[];
        };
        for (const { digest: blob } of [parsed.config, ...parsed.layers]) {
          const found = await source.blob(blob);
          assert.equal(found?.kind, 'staged');
        }
      }
    } finally {
      await source.close();
    }
  } catch (error) {
    if (!(error instanceof SourceError)) throw error;
  }
  // Nothing was written but staging files, and none of them is left.
  assert.deepEqual([...(await snapshotTree(dir)).keys()], ['archive.tar']);
  const top = await fs.readdir(dir);
  assert.ok(
    top.every((name) => name === 'archive.tar' || name === 'data'),
    top.join(', '),
  );
  await fs.rm(dir, { recursive: true });
}

describe('docker-archive tarballs (generated)', () => {
  test('the unchanged archive is read: one image, every blob staged, nothing left once closed', async () => {
    await readArchive(original, undefined, false);
    await readArchive(original, 'app:1', false);
  });

  test('a truncated, corrupted, reordered or hostile archive is read or refused with SourceError, and leaves no file behind', async () => {
    await holds(
      fc.asyncProperty(hostileArchive, reference, fc.boolean(), async (changes, ref, allTags) => {
        await readArchive(await build(changes), ref, allTags);
      }),
      { file, runs: 300, timeoutMs: 60_000 },
    );
    // Every case removed its own directory: nothing an entry name pointed at was written beside them either.
    assert.deepEqual(await fs.readdir(root), []);
  });
});
