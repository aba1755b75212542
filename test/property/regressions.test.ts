/**
 * The smallest counterexamples the properties in this directory found, kept as plain tests so the bug they
 * caught stays fixed whatever the seed.
 */
import assert from 'node:assert/strict';
import { promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import tar from 'tar-stream';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { parseRange } from '../../src/http/send-file.ts';
import { openDockerArchive } from '../../src/publish/source-docker-archive.ts';
import { SourceError } from '../../src/publish/source.ts';
import { TreeLayout } from '../../src/store/layout.ts';
import { parseRecord, RecordError } from '../../src/store/record.ts';
import { runDerrick, snapshotTree, tempDir } from '../helpers/cli.ts';
import { singleImageLayout } from '../helpers/images.ts';

const D = `sha256:${'0'.repeat(64)}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';

describe('found by the properties', () => {
  test("a configuration error quoting CR LF (a variable's value, a YAML key) is still one line", () => {
    const refused = (load: () => unknown): string => {
      try {
        load();
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return error.message;
      }
      assert.fail('accepted');
    };
    const value = refused(() => loadConfig({ env: { DERRICK_CACHE_RECORDS: '\r\n' } }));
    assert.equal(
      value,
      'environment variable DERRICK_CACHE_RECORDS: cache.records: expected a whole number ≥ 0, got "\\r\\n"',
    );
    const temp = tempDir('derrick-regression-');
    const yaml = path.join(temp.dir, 'group.yaml');
    writeFileSync(yaml, 'auth:\n  groups:\n    "\\r\\n": [user:a]\n');
    assert.doesNotMatch(
      refused(() => loadConfig({ file: yaml })),
      /[\r\n]/,
    );
    temp.cleanup();
  });

  test('Range: bytes=-1 on an empty blob is the whole (empty) blob, not a 206 of bytes 0 to -1', () => {
    // RFC 9110 §14.1.1: "a suffix-range with a non-zero suffix-length" is satisfiable, and "if the selected
    // representation is shorter than the specified suffix-length, the entire representation is used".
    assert.equal(parseRange('bytes=-1', 0), undefined);
  });

  test('a derrick record keeps a tag named __proto__ (a valid tag), instead of dropping it silently', () => {
    const record = `{"type":"derrick-repository","version":1,"name":"a","protected":false,"updatedAt":"2026-01-01T00:00:00.000Z","tags":{"__proto__":"${D}"},"manifests":{"${D}":{"mediaType":"${OCI}","size":0}},"blobs":{}}`;
    assert.deepEqual([...parseRecord(Buffer.from(record), 'a.json', 'a').tags], [['__proto__', D]]);
  });

  test('a derrick record whose __proto__ tag names no manifest is refused like any other tag', () => {
    const record = `{"type":"derrick-repository","version":1,"name":"a","protected":false,"updatedAt":"2026-01-01T00:00:00.000Z","tags":{"__proto__":"not a digest"},"manifests":{},"blobs":{}}`;
    assert.throws(() => parseRecord(Buffer.from(record), 'a.json', 'a'), RecordError);
  });

  test('a Pulp 4 record keeps the amd64 image of a manifest list tagged __proto__', () => {
    const record = `{"type":"pulp-docker-redirect","version":4,"repository":"r","repo-registry-id":"a","url":"http://a.example/v2/web","manifest_list_amd64_tags":{"__proto__":["${D}",2]}}`;
    const pulp = parseRecord(Buffer.from(record), 'a.json').pulp;
    assert.deepEqual([...(pulp?.amd64Tags ?? [])], [['__proto__', { digest: D, schemaVersion: 2 }]]);
  });

  test('publish --base-url with a port beyond 65535 is refused before anything is written, not recorded unreadable', async () => {
    const temp = tempDir('derrick-regression-');
    after(() => temp.cleanup());
    const layout = path.join(temp.dir, 'layout');
    const dataDir = path.join(temp.dir, 'data');
    await singleImageLayout(layout);
    const ok = await runDerrick(['publish', '--data-dir', dataDir, `oci:${layout}:latest`, 'a/b:1']);
    assert.equal(ok.code, 0, ok.stderr);
    const before = await snapshotTree(dataDir);
    const url = 'http://cdn.example.com:99999/x';
    const result = await runDerrick([
      'publish',
      '--data-dir',
      dataDir,
      '--base-url',
      url,
      `oci:${layout}:latest`,
      'a/b:2',
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^derrick: .*--base-url "http:\/\/cdn\.example\.com:99999\/x"/m);
    assert.deepEqual(await snapshotTree(dataDir), before);
    assert.equal((await runDerrick(['ls', '--data-dir', dataDir])).code, 0);
  });

  test('a docker-archive holding one file name twice leaves no staging file behind when it is refused', async () => {
    const temp = tempDir('derrick-regression-');
    after(() => temp.cleanup());
    const packer = tar.pack();
    const chunks: Buffer[] = [];
    packer.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    const ended = new Promise<void>((resolve) => packer.on('end', () => resolve()));
    packer.entry({ name: 'x' }, 'first');
    packer.entry({ name: 'x' }, 'second');
    packer.finalize();
    await ended;
    const archive = path.join(temp.dir, 'twice.tar');
    await fs.writeFile(archive, Buffer.concat(chunks));
    const layout = new TreeLayout(path.join(temp.dir, 'data'));
    await assert.rejects(openDockerArchive(layout.stagingDir, archive, undefined), SourceError);
    assert.deepEqual(await fs.readdir(layout.stagingDir), []);
  });
});
