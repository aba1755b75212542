/**
 * A publish to a tree in a bucket is served at the very next request: `derrick serve` reads a repository's record
 * on every request with a conditional GET on its ETag, so an unchanged record costs RGW a 304 (no body, no parse)
 * and a changed one — by `derrick publish`, or by a raw PutObject behind derrick's back — is read whole at once.
 * What reaches RGW is seen through a forwarding proxy in front of it (helpers/s3-proxy.ts). cache.recordTtlSeconds
 * > 0 trades this for latency (documented in docs/configuration.md): a record younger than that is used without
 * asking; 0 (the default) asks every time.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freshTree, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { MT } from '../helpers/images.ts';
import { s3Env } from '../helpers/s3.ts';
import { startS3Proxy, type S3Proxy } from '../helpers/s3-proxy.ts';
import {
  buildFixtures,
  derrickOk,
  header,
  openTree,
  publishInto,
  rawRequest,
  writeRecordFile,
  type Fixtures,
} from '../helpers/server.ts';

const ACCEPT = [MT.ociIndex, MT.ociManifest].join(', ');
const scratch = tempDir('derrick-serve-s3-freshness-');
let fixtures!: Fixtures;
let proxy!: S3Proxy;
before(async () => {
  fixtures = await buildFixtures(path.join(scratch.dir, 'layout'));
  proxy = await startS3Proxy((await s3Env()).AWS_ENDPOINT_URL);
});
after(async () => {
  await proxy.stop();
  scratch.cleanup();
});

type Context = { after: (fn: () => unknown) => void };

/** A bucket with app:latest published, and `derrick serve` on it through the proxy (more flags: `args`). */
async function servedTree(
  t: Context,
  args: string[] = [],
): Promise<{ spot: TreeSpot; server: DerrickServer }> {
  const spot = await freshTree('s3', t);
  await publishInto(spot, `oci:${fixtures.dir}:single`, ['app:latest']);
  const server = await startDerrickServer(spot.location, {
    env: { ...spot.env, AWS_ENDPOINT_URL: proxy.url, DERRICK_DEBUG: '' },
    // One process: each worker of a cluster keeps its own cache, and the counts below are of one cache.
    args: ['--workers', '1', ...args],
  });
  t.after(() => server.stop());
  return { spot, server };
}

async function digestOf(server: DerrickServer, tag: string): Promise<string | undefined> {
  const answer = await rawRequest(server.port, 'GET', `/v2/app/manifests/${tag}`, { accept: ACCEPT });
  return answer.statusCode === 200 ? header(answer, 'docker-content-digest') : undefined;
}

/** The answers RGW gave to reads of app's record during `step`. */
async function recordReads(spot: TreeSpot, step: () => Promise<unknown>): Promise<number[]> {
  const from = proxy.requests.length;
  await step();
  const key = `/${spot.bucket}/tree/v2/app/app.json`;
  return proxy.requests
    .slice(from)
    .filter((request) => request.method === 'GET' && request.url.split('?')[0] === key)
    .map((request) => request.status);
}

describe('a record read per request by a conditional GET', () => {
  // RFC 9110 §13.1.2: "If-None-Match ... the origin server MUST NOT perform the requested method if the condition
  // evaluates to false; instead, the origin server MUST respond with ... 304 (Not Modified)"; Amazon S3 API
  // Reference, GetObject: "If-None-Match: Return the object only if its entity tag (ETag) is different from the
  // one specified in this header; otherwise, return a 304 Not Modified error."
  test('an unchanged record costs one GET answered 304 per request after the first', async (t) => {
    const { spot, server } = await servedTree(t);
    assert.deepEqual(await recordReads(spot, () => digestOf(server, 'latest')), [200]);
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await recordReads(spot, () => digestOf(server, 'latest')), [304]);
  });

  test('a tag published with `derrick publish` while serving → served by the next request', async (t) => {
    const { spot, server } = await servedTree(t);
    assert.equal(await digestOf(server, 'latest'), fixtures.single.digest);
    assert.equal(await digestOf(server, 'next'), undefined);
    await derrickOk(spot.location, ['publish', '--quiet', `oci:${fixtures.dir}:other`, 'app:next']);
    assert.deepEqual(
      await recordReads(spot, async () =>
        assert.equal(await digestOf(server, 'next'), fixtures.other.digest),
      ),
      [200],
    );
    assert.equal(await digestOf(server, 'latest'), fixtures.single.digest);
  });

  test('the record replaced by a raw PutObject behind derrick’s back (a tag moved) → the next request has the new digest', async (t) => {
    const { spot, server } = await servedTree(t);
    await publishInto(spot, `oci:${fixtures.dir}:other`, ['app:other']);
    assert.equal(await digestOf(server, 'latest'), fixtures.single.digest);
    const tree = await openTree(spot);
    const lookup = await tree.readRecord('app');
    await tree.backend.close();
    assert.ok(lookup.found);
    const record = JSON.parse(lookup.bytes.toString()) as { tags: Record<string, string> };
    record.tags.latest = fixtures.other.digest;
    await writeRecordFile(spot, 'app', record);
    assert.equal(await digestOf(server, 'latest'), fixtures.other.digest);
  });
});

/** The requests RGW answered during `step`: listings (`?list-type=2`) and GETs of records, by key. */
async function catalogCost(
  spot: TreeSpot,
  step: () => Promise<unknown>,
): Promise<{ listings: number; recordGets: string[] }> {
  const from = proxy.requests.length;
  await step();
  const seen = proxy.requests.slice(from);
  const app = `/${spot.bucket}/tree/v2/app/`;
  return {
    listings: seen.filter((request) => request.url.includes('list-type=2')).length,
    recordGets: seen
      .filter((request) => request.method === 'GET' && request.url.startsWith(app))
      .map((request) => request.url.split('?')[0]?.slice(app.length) ?? ''),
  };
}

async function catalogNames(server: DerrickServer): Promise<string[]> {
  const answer = await rawRequest(server.port, 'GET', '/v2/_catalog?n=100');
  assert.equal(answer.statusCode, 200);
  return (JSON.parse(answer.body) as { repositories: string[] }).repositories;
}

describe('a _catalog page on S3', () => {
  // Amazon S3 API Reference, ListObjectsV2, Contents: "ETag — The entity tag is a hash of the object." The
  // listing that names a page's records says each one's version, so a record the server holds at that version
  // is current without asking again; one replaced behind derrick's back has another ETag and is read again.
  test('a page of records held at their listed ETag costs one listing and no record read; one changed behind derrick’s back is read again, and its new protected flag holds at once', async (t) => {
    const { spot, server } = await servedTree(t);
    await publishInto(spot, `oci:${fixtures.dir}:single`, ['b:latest', 'c:latest']);
    const first = await catalogCost(spot, async () =>
      assert.deepEqual(await catalogNames(server), ['app', 'b', 'c']),
    );
    assert.equal(first.listings, 1);
    assert.deepEqual(first.recordGets.sort(), ['app.json', 'b.json', 'c.json']);
    const warm = await catalogCost(spot, async () =>
      assert.deepEqual(await catalogNames(server), ['app', 'b', 'c']),
    );
    assert.deepEqual(warm, { listings: 1, recordGets: [] });

    const tree = await openTree(spot);
    const lookup = await tree.readRecord('b');
    await tree.backend.close();
    assert.ok(lookup.found);
    await writeRecordFile(spot, 'b', { ...(JSON.parse(lookup.bytes.toString()) as object), protected: true });
    const changed = await catalogCost(spot, async () =>
      assert.deepEqual(await catalogNames(server), ['app', 'c']),
    );
    assert.deepEqual(changed, { listings: 1, recordGets: ['b.json'] });
  });
});

describe('cache.recordTtlSeconds', () => {
  test('> 0 → a record younger than the TTL is used without asking: a publish is not seen yet (the documented trade), and RGW is not asked', async (t) => {
    const { spot, server } = await servedTree(t, ['--cache-record-ttl-seconds', '3600']);
    assert.equal(await digestOf(server, 'latest'), fixtures.single.digest);
    await publishInto(spot, `oci:${fixtures.dir}:other`, ['app:latest']);
    assert.deepEqual(
      await recordReads(spot, async () =>
        assert.equal(await digestOf(server, 'latest'), fixtures.single.digest),
      ),
      [],
    );
  });

  test('0 (the default) → the same publish is seen at the next request', async (t) => {
    const { spot, server } = await servedTree(t, ['--cache-record-ttl-seconds', '0']);
    assert.equal(await digestOf(server, 'latest'), fixtures.single.digest);
    await publishInto(spot, `oci:${fixtures.dir}:other`, ['app:latest']);
    assert.equal(await digestOf(server, 'latest'), fixtures.other.digest);
  });
});
