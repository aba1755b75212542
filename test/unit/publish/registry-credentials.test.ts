/**
 * Where `derrick publish docker://…` finds credentials (containers-auth.json(5) and docker's config.json), and
 * how it reads `Retry-After` (RFC 9110 §10.2.3: "either an HTTP-date or a number of seconds").
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { retryAfterMs } from '../../../src/publish/registry/client.ts';
import { authFiles, credentialsFromFiles, parseCreds } from '../../../src/publish/registry/credentials.ts';
import { parseRegistryReference } from '../../../src/publish/registry/reference.ts';
import { tempDir } from '../../helpers/cli.ts';

const scratch = tempDir('derrick-registry-credentials-');
after(() => scratch.cleanup());

const auth = (user: string, password: string) => ({
  auth: Buffer.from(`${user}:${password}`).toString('base64'),
});
function file(name: string, auths: Record<string, unknown>): string {
  const where = path.join(scratch.dir, name);
  writeFileSync(where, JSON.stringify({ auths }));
  return where;
}
function reference(text: string) {
  const parsed = parseRegistryReference(text);
  assert.ok('ok' in parsed);
  return parsed.ok;
}

test('the files are read in skopeo’s order: REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, ~/.config, ~/.docker', () => {
  assert.deepEqual(authFiles({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/1' }, '/home/u'), [
    '/a.json',
    '/run/user/1/containers/auth.json',
    '/home/u/.config/containers/auth.json',
    '/home/u/.docker/config.json',
  ]);
  assert.deepEqual(authFiles({}, '/home/u'), [
    '/home/u/.config/containers/auth.json',
    '/home/u/.docker/config.json',
  ]);
});

test('the first file holding the registry wins; in it the most specific key; docker’s Hub key and schemes', () => {
  const first = file('first.json', { 'other.example.com': auth('x', 'y') });
  const second = file('second.json', {
    'registry.example.com:5000': auth('wide', 'p1'),
    'registry.example.com:5000/team': auth('team', 'p2:with:colons'),
  });
  const docker = file('docker.json', { 'https://index.docker.io/v1/': auth('hub', 'p3') });
  const found = credentialsFromFiles(reference('registry.example.com:5000/team/app:1'), [
    first,
    second,
    docker,
  ]);
  assert.deepEqual(found, { credentials: { username: 'team', password: 'p2:with:colons' }, file: second });
  assert.equal(
    credentialsFromFiles(reference('registry.example.com:5000/teams/app'), [second])?.credentials.username,
    'wide',
  );
  assert.equal(
    credentialsFromFiles(reference('alpine'), [first, second, docker])?.credentials.username,
    'hub',
  );
  assert.equal(
    credentialsFromFiles(reference('nowhere.example.com/app'), [first, second, docker]),
    undefined,
  );
  assert.equal(
    credentialsFromFiles(reference('nowhere.example.com/app'), [path.join(scratch.dir, 'absent.json')]),
    undefined,
  );
});

test('a broken file or a bad --creds says which and what to do', () => {
  const broken = path.join(scratch.dir, 'broken.json');
  writeFileSync(broken, '{not json');
  assert.throws(
    () => credentialsFromFiles(reference('r.example.com/app'), [broken]),
    /broken\.json is not JSON/,
  );
  const bad = file('bad.json', { 'r.example.com': { auth: Buffer.from('nocolon').toString('base64') } });
  assert.throws(() => credentialsFromFiles(reference('r.example.com/app'), [bad]), /log in again/);
  assert.throws(() => parseCreds('alice'), /not user:password/);
  assert.deepEqual(parseCreds('alice:a:b'), { username: 'alice', password: 'a:b' });
});

test('Retry-After: seconds or an HTTP date, at most a minute; anything else is none', () => {
  const now = Date.UTC(2026, 11, 2, 12, 0, 0);
  assert.equal(retryAfterMs('3', now), 3000);
  assert.equal(retryAfterMs('Wed, 02 Dec 2026 12:00:05 GMT', now), 5000);
  assert.equal(retryAfterMs('Wed, 02 Dec 2026 11:00:00 GMT', now), 0);
  assert.equal(retryAfterMs('3600', now), 60_000);
  assert.equal(retryAfterMs('soon', now), undefined);
  assert.equal(retryAfterMs(undefined, now), undefined);
});
