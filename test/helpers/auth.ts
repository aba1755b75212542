/**
 * A published tree for authentication tests, and what those tests keep asking of it: one image (with a referrer)
 * published as public/app, team/app, norule/app and — protected — open/app and secret/app; users alice (group dev),
 * bob and carol in an htpasswd file; access rules over them; the five read endpoints of a repository (and the
 * answer of the one, referrers, that is never 404); a request with given credentials or none; Basic headers; the claims of a JWT; and answers made comparable
 * across two repository names.
 */
import assert from 'node:assert/strict';
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { imageWithReferrerLayout, type Descriptor } from './images.ts';
import { htpasswdLine } from './pki.ts';
import { header, locationOf, openTree, publishInto, type Answered, type Where } from './server.ts';

export const SERVICE = 'registry.test';
export const PASSWORDS = { alice: 'alice-secret', bob: 'bob-secret', carol: 'carol-secret' } as const;
export type User = keyof typeof PASSWORDS;
export const GROUPS = { dev: ['user:alice', 'cert:ci.example.com'] };
/**
 * public/** anyone; open/** anyone (but open/app is published protected: authenticated clients only); team/* the
 * dev group; secret/** bob and the vault.example.com certificate. norule/app matches no rule: nobody.
 */
export const RULES = [
  { match: 'public/**', pull: ['anonymous'] },
  { match: 'open/**', pull: ['anonymous'] },
  { match: 'team/*', pull: ['group:dev'] },
  { match: 'secret/**', pull: ['user:bob', 'cert:vault.example.com'] },
];
/** Every published repository, sorted as _catalog lists them. */
export const ALL_REPOSITORIES = ['norule/app', 'open/app', 'public/app', 'secret/app', 'team/app'];
/** Who may pull which repository under RULES (with the protected records taken into account). */
export const PULLABLE: Record<'anonymous' | User, string[]> = {
  anonymous: ['public/app'],
  alice: ['open/app', 'public/app', 'team/app'],
  bob: ['open/app', 'public/app', 'secret/app'],
  carol: ['open/app', 'public/app'],
};

export interface AuthTree {
  dataDir: string;
  /** The htpasswd file with alice, bob and carol. */
  htpasswd: string;
  /** The image every repository holds, tagged `1`. */
  image: Descriptor;
  /** The artifact whose subject is `image` (the referrers endpoint names it). */
  artifact: Descriptor;
  /** A layer blob of `image`. */
  layer: string;
}

/**
 * Publishes the tree (at `where`: by default `<dir>/data`, or a tree on either back end) and writes the layout and
 * the htpasswd file under `dir`.
 */
export async function authTree(dir: string, where: Where = path.join(dir, 'data')): Promise<AuthTree> {
  const dataDir = locationOf(where);
  const { image, artifact } = await imageWithReferrerLayout(path.join(dir, 'layout'), 'latest');
  const source = `oci:${path.join(dir, 'layout')}:latest`;
  await publishInto(dataDir, source, ['public/app:1', 'team/app:1', 'norule/app:1']);
  await publishInto(dataDir, source, ['open/app:1', 'secret/app:1'], { protected: true });
  const tree = await openTree(dataDir);
  const lookup = await tree.readRecord('secret/app');
  await tree.backend.close();
  assert.ok(lookup.found);
  assert.equal(lookup.repository.protected, true);
  const layer = [...lookup.repository.blobs.keys()].find(
    (digest) => !lookup.repository.manifests.has(digest),
  );
  assert.ok(layer !== undefined);
  const htpasswd = path.join(dir, 'htpasswd');
  writeHtpasswd(htpasswd, PASSWORDS);
  return { dataDir, htpasswd, image, artifact, layer };
}

/**
 * Writes `user:bcrypt` lines for `users`. When the file's stat would look unchanged (same size, and a timestamp
 * within the file system's clock granularity of the previous write) its mtime is moved on by a second, so the
 * change is seen however fast the test runs.
 */
export function writeHtpasswd(file: string, users: Readonly<Record<string, string>>): void {
  let before: { size: number; mtimeMs: number } | undefined;
  try {
    before = statSync(file);
  } catch {
    before = undefined;
  }
  const text = Object.entries(users)
    .map(([user, password]) => htpasswdLine(user, password))
    .join('\n');
  writeFileSync(file, `${text}\n`);
  const now = statSync(file);
  if (before && before.size === now.size && Math.abs(before.mtimeMs - now.mtimeMs) < 1000) {
    const later = new Date(Math.max(before.mtimeMs, now.mtimeMs) + 1000);
    utimesSync(file, later, later);
  }
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export function basicOf(user: User): string {
  return basic(user, PASSWORDS[user]);
}

/** The five read endpoints of repository `name`, as [what, url]. */
export function repositoryUrls(name: string, tree: AuthTree): [string, string][] {
  return [
    ['manifest by tag', `/v2/${name}/manifests/1`],
    ['manifest by digest', `/v2/${name}/manifests/${tree.image.digest}`],
    ['blob', `/v2/${name}/blobs/${tree.layer}`],
    ['tags/list', `/v2/${name}/tags/list`],
    ['referrers', `/v2/${name}/referrers/${tree.image.digest}`],
  ];
}

export const METHODS = ['GET', 'HEAD'] as const;

/**
 * `method url` through app.inject(), with `authorization` when given (without: an anonymous client), from
 * `remoteAddress` when given (the failed-login limit counts per address).
 */
export function request(
  app: FastifyInstance,
  method: string,
  url: string,
  authorization?: string,
  remoteAddress?: string,
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: method as 'GET',
    url,
    headers: authorization === undefined ? {} : { authorization },
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  });
}

/**
 * Whether `url` asks for referrers: the endpoint that never answers 404. "If the registry supports the referrers
 * API, the registry MUST NOT return a `404 Not Found` to a referrers API requests", so a repository that is
 * missing — or denied to a client as if it were missing — has an empty list of referrers instead.
 */
export function isReferrers(url: string): boolean {
  return url.includes('/referrers/');
}

/**
 * The referrers answer of a repository that is missing or denied as missing: 200, an empty image index, kept by
 * no shared cache (GET), and no body (HEAD).
 */
export function assertNoReferrers(answer: Answered, method: string, what: string): void {
  assert.equal(answer.statusCode, 200, `${what}: ${answer.statusCode} ${answer.body}`);
  const type = 'application/vnd.oci.image.index.v1+json';
  assert.equal(header(answer, 'content-type'), type, what);
  assert.equal(header(answer, 'cache-control'), 'private, no-cache', what);
  assert.equal(header(answer, 'location'), undefined, what);
  assert.equal(header(answer, 'www-authenticate'), undefined, what);
  if (method === 'HEAD') assert.equal(answer.body, '', `${what}: HEAD has no body`);
  else assert.deepEqual(JSON.parse(answer.body), { schemaVersion: 2, mediaType: type, manifests: [] }, what);
}

/** The decoded payload of a JWT (no verification). */
export function jwtClaims(token: string): Record<string, unknown> {
  const payload = token.split('.')[1];
  assert.ok(payload !== undefined, `not a JWT: ${token}`);
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** The decoded protected header of a JWT. */
export function jwtHeader(token: string): Record<string, unknown> {
  const header = token.split('.')[0] ?? '';
  return JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/**
 * An answer as a comparable value: status, every header but Date, and the body — with `name` replaced by
 * `as`, so the answers about two repositories can be compared byte for byte except the name.
 */
export function comparable(
  answer: Answered,
  name: string,
  as: string,
): { status: number; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(answer.headers)) {
    if (key === 'date' || value === undefined) continue;
    headers[key] = (Array.isArray(value) ? value.join(', ') : String(value)).replaceAll(name, as);
  }
  return { status: answer.statusCode, headers, body: answer.body.replaceAll(name, as) };
}

export interface TokenAnswer {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  scope?: string;
}

/** GET /auth/token for `scopes`, as `authorization` (none: anonymous); asserts 200 and returns the body. */
export async function fetchToken(
  app: FastifyInstance,
  scopes: string[],
  options: { authorization?: string; service?: string } = {},
): Promise<TokenAnswer> {
  const query = new URLSearchParams({ service: options.service ?? SERVICE });
  for (const scope of scopes) query.append('scope', scope);
  const answer: LightMyRequestResponse = await app.inject({
    url: `/auth/token?${query.toString()}`,
    headers: options.authorization === undefined ? {} : { authorization: options.authorization },
  });
  assert.equal(answer.statusCode, 200, answer.body);
  return JSON.parse(answer.body) as TokenAnswer;
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}
