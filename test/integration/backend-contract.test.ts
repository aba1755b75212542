/**
 * One contract for every Backend (src/store/backend.ts), run over each back end's factory: a temp directory, and
 * a fresh bucket on a real Ceph RGW (scripts/s3.sh). Nothing is mocked.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, test, type TestContext } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import type { Backend, Input, ListedRecord, PutOptions } from '../../src/store/backend.ts';
import { DigestMismatchError } from '../../src/store/content.ts';
import { FsBackend } from '../../src/store/fs-backend.ts';
import { compareStrings } from '../../src/store/record.ts';
import { tempDir } from '../helpers/cli.ts';
import { freshS3Backend } from '../helpers/s3.ts';

interface Factory {
  name: string;
  /** A new, empty tree, removed after the test. */
  open(t: TestContext): Promise<Backend>;
  /** The back end cannot trust its store, so open() with a digest verifies (S3: yes). */
  verifiesReads: boolean;
  /** presign() gives a URL (S3: yes; a file system: undefined). */
  presigns: boolean;
  /** How gc is kept from what publishers reference: by an age rule (S3) or by waiting for them (a lock). */
  gcRule: 'age' | 'lock';
  /** localPath() gives the object's file (a file system: yes; S3: undefined). */
  localFiles: boolean;
}

const factories: Factory[] = [
  {
    name: 'file system',
    open: (t) => {
      const temp = tempDir('derrick-contract-');
      t.after(() => temp.cleanup());
      return Promise.resolve(new FsBackend(temp.dir));
    },
    verifiesReads: false,
    presigns: false,
    gcRule: 'lock',
    localFiles: true,
  },
  {
    name: 's3 (Ceph RGW), under a prefix, listing pages of 3',
    // A small listing page, so every listing here crosses pages.
    open: (t) => freshS3Backend(t, 'tree', { listPageSize: 3 }),
    verifiesReads: true,
    presigns: true,
    gcRule: 'age',
    localFiles: false,
  },
  {
    name: 's3 (Ceph RGW), a whole bucket (s3://bucket), listing pages of 1000',
    open: (t) => freshS3Backend(t, ''),
    verifiesReads: true,
    presigns: true,
    gcRule: 'age',
    localFiles: false,
  },
];

/** Stage, then commit: what a writer with nothing else to commit does. */
async function putVerified(
  backend: Backend,
  key: string,
  input: Input,
  digest: string,
  options: PutOptions,
): Promise<void> {
  const pending = await backend.stage(key, input, digest, options);
  await pending.commit();
}

/** A file a source staged in the back end's scratch directory, with the hash it computed. */
function stagedFile(backend: Backend, bytes: Buffer): Input {
  mkdirSync(backend.scratchDir, { recursive: true });
  const file = path.join(backend.scratchDir, `${randomBytes(8).toString('hex')}.blob`);
  writeFileSync(file, bytes);
  return { kind: 'staged', file: { path: file, digest: sha256(bytes), size: bytes.length } };
}

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
/** The bytes as a source gives them: in chunks, as they come. */
const streamOf = (bytes: Buffer, chunk = 64 * 1024): Input => ({
  kind: 'stream',
  stream: (async function* () {
    for (let i = 0; i < bytes.length; i += chunk) {
      await setImmediate();
      yield bytes.subarray(i, i + chunk);
    }
  })(),
});
const MIB = 1024 * 1024;
/** More than one upload part (8 MiB), so the multipart path runs. */
const LARGE = 20 * MIB + 123;

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** The names of a recordNames walk. */
async function namesOf(items: AsyncIterable<ListedRecord>): Promise<string[]> {
  return (await collect(items)).map((item) => item.name);
}

async function readAll(backend: Backend, key: string): Promise<Buffer | undefined> {
  const opened = await backend.open(key);
  return opened && buffer(opened.stream);
}

for (const factory of factories) {
  describe(`Backend contract: ${factory.name}`, () => {
    test('keys are named to people within the location (a file by its path in the tree, as every message of the tools names it); localPath only where objects are local files', async (t) => {
      const backend = await factory.open(t);
      const described = backend.describe('v2/app/library/busybox.json');
      if (factory.localFiles) assert.equal(described, 'v2/app/library/busybox.json');
      else assert.ok(described.startsWith(backend.location), described);
      assert.ok(described.endsWith('v2/app/library/busybox.json'), described);
      await backend.write('v2/app/a.json', Buffer.from('{}'));
      const local = backend.localPath('v2/app/a.json');
      assert.equal(local !== undefined, factory.localFiles);
    });

    describe('records: read, write, compare-and-swap', () => {
      test('a written object reads back with a version; a conditional read of that version is "unchanged"', async (t) => {
        const backend = await factory.open(t);
        assert.equal(await backend.write('v2/app/a.json', Buffer.from('{"one":1}')), 'written');
        const found = await backend.read('v2/app/a.json');
        assert.ok(found.status === 'found');
        assert.equal(found.bytes.toString(), '{"one":1}');
        // S3 GetObject: "Return the object only if its entity tag (ETag) is different from the one specified in
        // this header; otherwise, return a 304 (not modified) error."
        assert.deepEqual(await backend.read('v2/app/a.json', found.version), { status: 'unchanged' });
        await backend.write('v2/app/a.json', Buffer.from('{"two":2}'));
        const changed = await backend.read('v2/app/a.json', found.version);
        assert.ok(changed.status === 'found');
        assert.equal(changed.bytes.toString(), '{"two":2}');
        assert.notEqual(changed.version, found.version);
      });

      test('reading a missing object is "absent"', async (t) => {
        const backend = await factory.open(t);
        assert.deepEqual(await backend.read('v2/app/none.json'), { status: 'absent' });
        assert.deepEqual(await backend.read('v2/app/none.json', 'whatever'), { status: 'absent' });
      });

      test('expect "absent" writes a new object and is a conflict when one exists', async (t) => {
        // S3 PutObject If-None-Match: "Uploads the object only if the object key name does not already exist in
        // the bucket specified. Otherwise, Amazon S3 returns a 412 Precondition Failed error."
        const backend = await factory.open(t);
        assert.equal(await backend.write('v2/app/a.json', Buffer.from('first'), 'absent'), 'written');
        assert.equal(await backend.write('v2/app/a.json', Buffer.from('second'), 'absent'), 'conflict');
        const read = await backend.read('v2/app/a.json');
        assert.ok(read.status === 'found');
        assert.equal(read.bytes.toString(), 'first');
      });

      test('expect a version writes only while the object still has it (a stale one or a missing object is a conflict)', async (t) => {
        // S3 PutObject If-Match: "Uploads the object only if the ETag (entity tag) value provided during the
        // WRITE operation matches the ETag of the object in S3. If the ETag values do not match, the operation
        // returns a 412 Precondition Failed error." (RGW 16 matches only an unquoted ETag: the back end sends it so.)
        const backend = await factory.open(t);
        await backend.write('v2/app/a.json', Buffer.from('v1'));
        const v1 = await backend.stat('v2/app/a.json');
        assert.ok(v1);
        assert.equal(
          await backend.write('v2/app/a.json', Buffer.from('v2'), { version: v1.version }),
          'written',
        );
        assert.equal(
          await backend.write('v2/app/a.json', Buffer.from('v3'), { version: v1.version }),
          'conflict',
        );
        assert.equal(
          await backend.write('v2/app/b.json', Buffer.from('x'), { version: v1.version }),
          'conflict',
        );
        const read = await backend.read('v2/app/a.json');
        assert.ok(read.status === 'found');
        assert.equal(read.bytes.toString(), 'v2');
        assert.equal(await backend.stat('v2/app/b.json'), undefined);
      });

      test('two writers racing from one version: exactly one wins, the other gets "conflict"', async (t) => {
        const backend = await factory.open(t);
        await backend.write('v2/app/race.json', Buffer.from('base'));
        for (let round = 0; round < 5; round++) {
          const base = await backend.stat('v2/app/race.json');
          assert.ok(base);
          const outcomes = await Promise.all(
            ['left', 'right'].map((who) =>
              backend.write('v2/app/race.json', Buffer.from(`${who}-${round}`), { version: base.version }),
            ),
          );
          assert.deepEqual([...outcomes].sort(), ['conflict', 'written'], `round ${round}`);
          const read = await backend.read('v2/app/race.json');
          assert.ok(read.status === 'found');
          const winner = outcomes[0] === 'written' ? 'left' : 'right';
          assert.equal(read.bytes.toString(), `${winner}-${round}`);
        }
      });

      test('two creators racing with expect "absent": exactly one wins', async (t) => {
        const backend = await factory.open(t);
        const outcomes = await Promise.all(
          ['left', 'right'].map((who) => backend.write('v2/app/new.json', Buffer.from(who), 'absent')),
        );
        assert.deepEqual([...outcomes].sort(), ['conflict', 'written']);
      });
    });

    describe('delete, stat, hasChildren', () => {
      test('delete: "absent" when missing, "conflict" on a stale version (the object stays), "deleted" otherwise', async (t) => {
        const backend = await factory.open(t);
        assert.equal(await backend.delete('v2/app/a.json'), 'absent');
        await backend.write('v2/app/a.json', Buffer.from('v1'));
        const v1 = await backend.stat('v2/app/a.json');
        assert.ok(v1);
        await backend.write('v2/app/a.json', Buffer.from('v2'));
        assert.equal(await backend.delete('v2/app/a.json', { version: v1.version }), 'conflict');
        assert.equal(await backend.delete('v2/app/a.json', 'absent'), 'conflict');
        const v2 = await backend.stat('v2/app/a.json');
        assert.ok(v2);
        assert.equal(await backend.delete('v2/app/a.json', { version: v2.version }), 'deleted');
        assert.equal(await backend.stat('v2/app/a.json'), undefined);
        await backend.write('v2/app/b.json', Buffer.from('b'));
        assert.equal(await backend.delete('v2/app/b.json'), 'deleted');
        assert.equal(await backend.read('v2/app/b.json').then((r) => r.status), 'absent');
      });

      test('stat gives size, a recent modification time and the version read gives', async (t) => {
        const backend = await factory.open(t);
        const before = Date.now() - 60_000;
        await backend.write('v2/web/x/blobs/a', Buffer.from('12345'));
        const info = await backend.stat('v2/web/x/blobs/a');
        assert.ok(info);
        assert.equal(info.size, 5);
        assert.ok(info.modified.getTime() > before);
        const read = await backend.read('v2/web/x/blobs/a');
        assert.ok(read.status === 'found');
        assert.equal(read.version, info.version);
        assert.equal(await backend.stat('v2/web/x/blobs/b'), undefined);
      });

      test('hasChildren is true only for a key with objects below it', async (t) => {
        const backend = await factory.open(t);
        await backend.write('v2/app/library/busybox.json', Buffer.from('{}'));
        assert.equal(await backend.hasChildren('v2/app/library'), true);
        assert.equal(await backend.hasChildren('v2/app'), true);
        assert.equal(await backend.hasChildren('v2/app/library/busybox.json'), false);
        assert.equal(await backend.hasChildren('v2/app/lib'), false);
      });
    });

    describe('listing', () => {
      test('list gives every object below a prefix in byte order of keys, after startAfter, across pages', async (t) => {
        const backend = await factory.open(t);
        const keys = [
          'v2/web/a/1',
          'v2/web/a/2',
          'v2/web/a-b/1',
          'v2/web/a.b/1',
          'v2/web/a/b/c',
          'v2/web/b',
          'v2/web/a0',
        ];
        await Promise.all(keys.map((key) => backend.write(key, Buffer.from(key))));
        await backend.write('v2/app/outside.json', Buffer.from('{}'));
        const sorted = [...keys].sort(compareStrings);
        const listed = await collect(backend.list('v2/web/'));
        assert.deepEqual(
          listed.map((o) => o.key),
          sorted,
        );
        assert.deepEqual(
          listed.map((o) => o.size),
          sorted.map((k) => k.length),
        );
        // ListObjectsV2: "StartAfter is where you want Amazon S3 to start listing from. Amazon S3 starts listing
        // after this specified key. StartAfter can be any key in the bucket."
        assert.deepEqual(
          (await collect(backend.list('v2/web/', 'v2/web/a/2'))).map((o) => o.key),
          sorted.filter((k) => k > 'v2/web/a/2'),
        );
        assert.deepEqual(
          (await collect(backend.list('v2/web/a/'))).map((o) => o.key),
          ['v2/web/a/1', 'v2/web/a/2', 'v2/web/a/b/c'],
        );
      });

      test('recordNames gives names in name order, not key order (a before a-b before a.b before a/b)', async (t) => {
        const backend = await factory.open(t);
        const names = ['a', 'a-b', 'a.b', 'a/b', 'a.json', 'a-b/c', 'a.jsoa', 'b', 'a0', 'a_b', 'a--b', 'ab'];
        await Promise.all(names.map((name) => backend.write(`v2/app/${name}.json`, Buffer.from('{}'))));
        await backend.write('v2/app/not-a-record.txt', Buffer.from('x'));
        await backend.write('v2/app/UPPER.json', Buffer.from('x'));
        const sorted = [...names].sort(compareStrings);
        assert.deepEqual(await namesOf(backend.recordNames({})), sorted);
        for (const after of ['a', 'a-b', 'a.b', 'a.', 'a-', '0', 'zz', ...sorted])
          assert.deepEqual(
            await namesOf(backend.recordNames({ after })),
            sorted.filter((n) => compareStrings(n, after) > 0),
            `after ${after}`,
          );
      });

      test('recordNames: a version, where the listing gives one, is the version read() answers (on a bucket: always given)', async (t) => {
        const backend = await factory.open(t);
        const names = ['a', 'a-b', 'a.b', 'a/b', 'b'];
        await Promise.all(
          names.map((name) => backend.write(`v2/app/${name}.json`, Buffer.from(`{"n":"${name}"}`))),
        );
        for (const { name, version } of await collect(backend.recordNames({}))) {
          const read = await backend.read(`v2/app/${name}.json`);
          assert.ok(read.status === 'found');
          // A bucket's ListObjectsV2 gives each key's ETag; a directory listing says nothing of a record's stat.
          if (factory.localFiles) assert.equal(version, undefined);
          else assert.equal(version, read.version, name);
        }
      });

      test('recordNames under a namespace gives the namespace itself, then the names below it', async (t) => {
        const backend = await factory.open(t);
        const names = ['a', 'a-b', 'a/b', 'a/b-c', 'a/b.c', 'a/b/c', 'a/c', 'a.x', 'ab/c'];
        await Promise.all(names.map((name) => backend.write(`v2/app/${name}.json`, Buffer.from('{}'))));
        assert.deepEqual(await namesOf(backend.recordNames({ under: 'a' })), [
          'a',
          'a/b',
          'a/b-c',
          'a/b.c',
          'a/b/c',
          'a/c',
        ]);
        assert.deepEqual(await namesOf(backend.recordNames({ under: 'a', after: 'a' })), [
          'a/b',
          'a/b-c',
          'a/b.c',
          'a/b/c',
          'a/c',
        ]);
        assert.deepEqual(await namesOf(backend.recordNames({ under: 'a', after: 'a/b-c' })), [
          'a/b.c',
          'a/b/c',
          'a/c',
        ]);
        assert.deepEqual(await namesOf(backend.recordNames({ under: 'a/b' })), ['a/b', 'a/b/c']);
        assert.deepEqual(await namesOf(backend.recordNames({ under: 'ab' })), ['ab/c']);
        assert.deepEqual(await namesOf(backend.recordNames({ under: 'zz' })), []);
      });
    });

    describe('stage and commit', () => {
      // What makes "nothing under the key until verified" hold for large blobs, S3 CompleteMultipartUpload: "You
      // first initiate the multipart upload and then upload all parts using the UploadPart operation […]. Upon
      // receiving this request, Amazon S3 concatenates all the parts in ascending order by part number to create a
      // new object." Until then there is no object; the back end completes only once the digest has matched.
      for (const [label, size] of [
        ['a small blob (one PUT)', 1000],
        ['a large blob (multipart)', LARGE],
      ] as const) {
        test(`${label} whose bytes match its digest is stored and reads back`, async (t) => {
          const backend = await factory.open(t);
          const bytes = randomBytes(size);
          const digest = sha256(bytes);
          let counted = 0;
          await putVerified(backend, 'v2/content/sha256/x', streamOf(bytes), digest, {
            source: 'test',
            size,
            onBytes: (n) => (counted += n),
          });
          assert.equal(counted, size);
          assert.equal((await backend.stat('v2/content/sha256/x'))?.size, size);
          assert.ok((await readAll(backend, 'v2/content/sha256/x'))?.equals(bytes));
        });

        test(`${label} whose bytes do not match throws DigestMismatchError and leaves nothing`, async (t) => {
          const backend = await factory.open(t);
          const bytes = randomBytes(size);
          const digest = sha256(Buffer.concat([bytes, Buffer.from('x')]));
          await assert.rejects(
            putVerified(backend, 'v2/content/sha256/x', streamOf(bytes), digest, { source: 'layer.tar' }),
            (error: unknown) => error instanceof DigestMismatchError && error.source === 'layer.tar',
          );
          assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
          assert.equal(
            await backend.sweepDebris(new Date(Date.now() + 3_600_000), true).then((d) => d.count),
            0,
          );
        });

        test(`${label} of the right digest but a wrong declared size is a mismatch`, async (t) => {
          const backend = await factory.open(t);
          const bytes = randomBytes(size);
          await assert.rejects(
            putVerified(backend, 'v2/content/sha256/x', streamOf(bytes), sha256(bytes), {
              source: 's',
              size: size - 1,
            }),
            DigestMismatchError,
          );
          assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
        });
      }

      test('staged bytes are invisible until their commit, and a discard leaves nothing', async (t) => {
        const backend = await factory.open(t);
        for (const size of [1000, LARGE]) {
          const bytes = randomBytes(size);
          const pending = await backend.stage('v2/content/sha256/x', streamOf(bytes), sha256(bytes), {
            source: 's',
          });
          assert.equal(
            await backend.stat('v2/content/sha256/x'),
            undefined,
            `${size} bytes appeared before the commit`,
          );
          await pending.discard();
          assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
          const debris = await backend.sweepDebris(new Date(Date.now() + 3_600_000), true);
          assert.equal(debris.count, 0, `a discard of ${size} bytes left debris`);
        }
      });

      test('a writer that dies between stage and commit leaves nothing visible, and sweepDebris removes what it left', async (t) => {
        const backend = await factory.open(t);
        const bytes = randomBytes(LARGE);
        await backend.stage('v2/content/sha256/x', streamOf(bytes), sha256(bytes), { source: 's' });
        // No commit, no discard: as after a kill -9.
        assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
        const future = new Date(Date.now() + 3_600_000);
        assert.equal((await backend.sweepDebris(future, false)).count, 1);
        assert.equal((await backend.sweepDebris(future, true)).count, 0);
      });

      test('a mismatching put over existing content leaves the existing object as it was', async (t) => {
        const backend = await factory.open(t);
        const good = randomBytes(LARGE);
        await putVerified(backend, 'v2/content/sha256/x', streamOf(good), sha256(good), { source: 's' });
        const bad = Buffer.from(good);
        bad[5] = bad[5]! ^ 1;
        await assert.rejects(
          putVerified(backend, 'v2/content/sha256/x', streamOf(bad), sha256(good), { source: 's' }),
          DigestMismatchError,
        );
        assert.ok((await readAll(backend, 'v2/content/sha256/x'))?.equals(good));
      });

      test('a staged file is uploaded the same way, and re-hashed while read', async (t) => {
        const backend = await factory.open(t);
        const bytes = randomBytes(LARGE);
        await putVerified(backend, 'v2/content/sha256/x', stagedFile(backend, bytes), sha256(bytes), {
          source: 'f',
        });
        assert.ok((await readAll(backend, 'v2/content/sha256/x'))?.equals(bytes));
        await assert.rejects(
          putVerified(backend, 'v2/content/sha256/y', stagedFile(backend, bytes), sha256(Buffer.from('no')), {
            source: 'f',
          }),
          DigestMismatchError,
        );
        assert.equal(await backend.stat('v2/content/sha256/y'), undefined);
      });

      test('concurrent identical puts of one digest all succeed, and the object holds those bytes', async (t) => {
        const backend = await factory.open(t);
        const bytes = randomBytes(LARGE);
        await Promise.all(
          [1, 2, 3].map(() =>
            putVerified(backend, 'v2/content/sha256/x', streamOf(bytes), sha256(bytes), { source: 's' }),
          ),
        );
        assert.ok((await readAll(backend, 'v2/content/sha256/x'))?.equals(bytes));
      });

      test('an abort mid-upload rejects and leaves nothing visible, no unfinished upload either', async (t) => {
        const backend = await factory.open(t);
        const controller = new AbortController();
        const bytes = randomBytes(LARGE);
        let sent = 0;
        const input: Input = {
          kind: 'stream',
          stream: (async function* () {
            for (let i = 0; i < bytes.length; i += MIB) {
              await setImmediate();
              if (i >= 10 * MIB) controller.abort(new Error('publish cancelled'));
              sent += MIB;
              yield bytes.subarray(i, i + MIB);
            }
          })(),
        };
        await assert.rejects(
          putVerified(backend, 'v2/content/sha256/x', input, sha256(bytes), {
            source: 's',
            signal: controller.signal,
          }),
        );
        assert.ok(sent < bytes.length);
        assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
        assert.equal(
          await backend.sweepDebris(new Date(Date.now() + 3_600_000), true).then((d) => d.count),
          0,
        );
      });
    });

    describe('link, open, presign', () => {
      test('link makes `to` hold the bytes of `from`, and linking again is a no-op', async (t) => {
        const backend = await factory.open(t);
        const bytes = randomBytes(5000);
        const digest = sha256(bytes);
        await putVerified(backend, 'v2/content/sha256/x', streamOf(bytes), digest, { source: 's' });
        const to = `v2/web/library/busybox/blobs/${digest}`;
        await backend.link('v2/content/sha256/x', to);
        assert.ok((await readAll(backend, to))?.equals(bytes));
        const first = await backend.stat(to);
        await backend.link('v2/content/sha256/x', to);
        assert.deepEqual(await backend.stat(to), first);
      });

      test('open gives the whole object or a range of it, with the whole size; undefined when absent', async (t) => {
        const backend = await factory.open(t);
        const bytes = randomBytes(10_000);
        await putVerified(backend, 'v2/content/sha256/x', streamOf(bytes), sha256(bytes), { source: 's' });
        const whole = await backend.open('v2/content/sha256/x', undefined, sha256(bytes));
        assert.ok(whole);
        assert.equal(whole.size, 10_000);
        assert.ok((await buffer(whole.stream)).equals(bytes));
        const range = await backend.open('v2/content/sha256/x', { start: 100, end: 199 });
        assert.ok(range);
        assert.equal(range.size, 10_000);
        assert.ok((await buffer(range.stream)).equals(bytes.subarray(100, 200)));
        assert.equal(await backend.open('v2/content/sha256/none'), undefined);
      });

      // Only for a back end that cannot trust its store (one that trusts it has nothing to check here).
      if (factory.verifiesReads)
        test('an object whose bytes do not hash to its digest is never delivered whole under that digest', async (t) => {
          const backend = await factory.open(t);
          const bytes = randomBytes(3 * MIB);
          const digest = sha256(bytes);
          const tampered = Buffer.from(bytes);
          tampered[tampered.length - 1] = tampered.at(-1)! ^ 1;
          // Someone replaces the content object behind derrick's back (same size, one byte changed).
          await backend.write('v2/content/sha256/x', tampered);
          const opened = await backend.open('v2/content/sha256/x', undefined, digest);
          assert.ok(opened);
          let received = 0;
          await assert.rejects(
            (async () => {
              for await (const chunk of opened.stream) received += (chunk as Buffer).length;
            })(),
            DigestMismatchError,
          );
          assert.ok(received < tampered.length, `received ${received} of ${tampered.length} bytes`);
        });

      test('presign gives a URL anybody can GET with a plain fetch(), answered with the content type asked for', async (t) => {
        const backend = await factory.open(t);
        const bytes = randomBytes(2000);
        await backend.write('v2/web/x/blobs/b', bytes);
        const type = 'application/vnd.oci.image.manifest.v1+json';
        const url = await backend.presign('v2/web/x/blobs/b', 60, type);
        if (!factory.presigns) {
          assert.equal(url, undefined);
          return;
        }
        assert.ok(url);
        const answer = await fetch(url);
        assert.equal(answer.status, 200);
        assert.equal(answer.headers.get('content-type'), type);
        assert.ok(Buffer.from(await answer.arrayBuffer()).equals(bytes));
        assert.equal((await fetch(url.replace('blobs/b', 'blobs/c'))).status, 403);
      });
    });

    describe('gc coordination', () => {
      if (factory.gcRule === 'lock')
        test('beginGc waits for a registered publisher and gives up at its timeout; then cuts off nothing by age', async (t) => {
          const backend = await factory.open(t);
          const registration = await backend.beginPublish({ timeoutMs: 1000 });
          await assert.rejects(backend.beginGc({ minAgeSeconds: 3600, timeoutMs: 300 }), /timed out/);
          await registration.release();
          const window = await backend.beginGc({ minAgeSeconds: 3600, timeoutMs: 1000 });
          assert.ok(window.cutoff.getTime() > Date.now() + 3_600_000, 'a locked gc needs no age rule');
          await assert.rejects(backend.beginPublish({ timeoutMs: 300 }), /timed out .* gc/);
          await window.release();
        });

      if (factory.gcRule === 'age')
        test('beginGc cuts off at now minus the minimum age, and says its rule', async (t) => {
          const backend = await factory.open(t);
          const before = Date.now();
          const window = await backend.beginGc({ minAgeSeconds: 3600, timeoutMs: 1000 });
          const after = Date.now();
          assert.ok(
            window.cutoff.getTime() >= before - 3_600_000 && window.cutoff.getTime() <= after - 3_600_000,
          );
          assert.match(window.rule, /\S/);
          await window.release();
          const registration = await backend.beginPublish({ timeoutMs: 1000 });
          await registration.release();
        });

      if (factory.gcRule === 'age')
        test('keep renews an old object so that a gc starting now would not take it', async (t) => {
          const backend = await factory.open(t);
          await backend.write('v2/content/sha256/x', Buffer.from('kept'));
          const info = await backend.stat('v2/content/sha256/x');
          assert.ok(info);
          // As a publisher sees an object stored two hours ago (waiting that long is not a test).
          await backend.keep('v2/content/sha256/x', { ...info, modified: new Date(Date.now() - 7_200_000) });
          const window = await backend.beginGc({ minAgeSeconds: 3600, timeoutMs: 1000 });
          const renewed = await backend.stat('v2/content/sha256/x');
          assert.ok(renewed && renewed.modified >= window.cutoff);
          assert.equal(renewed.size, 4);
          assert.equal((await readAll(backend, 'v2/content/sha256/x'))?.toString(), 'kept');
        });
    });
  });
}
