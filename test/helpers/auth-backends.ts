/**
 * The authentication tests' tree (auth.ts: one image published as public/app, team/app, norule/app and — protected
 * — open/app and secret/app; the htpasswd of alice, bob and carol) on either back end, published once per back end
 * in a describe block's `before`; and the real app over it built with AppOptions (a failed-login relay), its back
 * end opened as `derrick serve` opens it. One suite, two back ends: see backends.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Config } from '../../src/config/schema.ts';
import { buildApp, type AppOptions } from '../../src/http/app.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { authTree, type AuthTree } from './auth.ts';
import type { BackendName, TreeSpot } from './backends.ts';
import { header, suiteTree, type Answered } from './server.ts';

export interface AuthTreeOn extends AuthTree {
  backend: BackendName;
  /** Where the tree is (its bucket, on S3). */
  spot: TreeSpot;
  /** Removes the tree (the temp directory, or the bucket): call it in the describe block's `after`. */
  remove: () => Promise<void>;
}

/**
 * Publishes the authentication tree on `backend` (its `dataDir` is what `--data-dir` takes: a directory or an
 * s3:// location), its layout and htpasswd file written under `dir` (made if missing).
 */
export async function authTreeOn(backend: BackendName, dir: string): Promise<AuthTreeOn> {
  mkdirSync(dir, { recursive: true });
  const { spot, remove } = await suiteTree(backend);
  return { ...(await authTree(dir, spot)), backend, spot, remove };
}

/**
 * The real app for `config` (serveConfig), logging nothing unless `options.logger` says, over the tree its dataDir
 * names on either back end; the back end is closed with the app (or at once, when buildApp refuses the config).
 */
export async function appOverTree(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const backend = await openBackend(config.dataDir, { listingCache: config.cache.listings, s3: config.s3 });
  try {
    const app = buildApp(config, new Tree(backend), { logger: pino({ level: 'silent' }), ...options });
    app.addHook('onClose', () => backend.close());
    return app;
  } catch (error) {
    await backend.close();
    throw error;
  }
}

/**
 * The bytes behind a redirect to a presigned GET URL of `spot`'s bucket (where redirect mode on S3 sends what not
 * everybody may pull when there is no redirect.token: docs/storage.md), fetched with no credentials of ours.
 * Fails when the Location is not such a URL — always on a file system, which has no bucket to presign in.
 */
export async function presignedBytes(answer: Answered, spot: TreeSpot, what: string): Promise<Buffer> {
  const location = header(answer, 'location') ?? '';
  assert.ok(
    spot.bucket !== undefined,
    `${what}: redirected to ${location}, but a file system presigns nothing`,
  );
  const url = new URL(location);
  assert.ok(url.pathname.startsWith(`/${spot.bucket}/`), `${what}: ${location} is not in ${spot.bucket}`);
  assert.ok(url.searchParams.has('X-Amz-Signature'), `${what}: ${location} is not presigned`);
  const fetched = await fetch(url);
  assert.equal(fetched.status, 200, `${what}: GET ${location} → ${fetched.status}`);
  return Buffer.from(await fetched.arrayBuffer());
}
