import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseScope, parseScopes, scopeOf } from '../../../src/auth/scopes.ts';

describe('parseScope', () => {
  test('repository:team/app:pull', () => {
    assert.deepEqual(parseScope('repository:team/app:pull'), {
      type: 'repository',
      name: 'team/app',
      actions: ['pull'],
    });
  });

  test('a resource class is dropped: repository(plugin):x:pull', () => {
    assert.deepEqual(parseScope('repository(plugin):x:pull'), {
      type: 'repository',
      name: 'x',
      actions: ['pull'],
    });
  });

  test('registry:catalog:*', () => {
    assert.deepEqual(parseScope('registry:catalog:*'), {
      type: 'registry',
      name: 'catalog',
      actions: ['*'],
    });
  });

  test('several actions, empty ones dropped', () => {
    assert.deepEqual(parseScope('repository:app:pull,push')?.actions, ['pull', 'push']);
    assert.deepEqual(parseScope('repository:app:pull,,push,')?.actions, ['pull', 'push']);
  });

  test('a name containing colons lies between the first and the last colon', () => {
    assert.deepEqual(parseScope('repository:localhost:5000/team/app:pull'), {
      type: 'repository',
      name: 'localhost:5000/team/app',
      actions: ['pull'],
    });
    assert.deepEqual(parseScope('repository:a:b:c:push,pull'), {
      type: 'repository',
      name: 'a:b:c',
      actions: ['push', 'pull'],
    });
  });

  for (const malformed of [
    '',
    'repository',
    'repository:app',
    'repository:app:',
    ':app:pull',
    'repository::pull',
    'repository:app:,',
    'Repository:app:pull',
    'repo-sitory:app:pull',
    'repository(plugin:app:pull',
  ]) {
    test(`${JSON.stringify(malformed)} is not a scope`, () => {
      assert.equal(parseScope(malformed), undefined);
    });
  }
});

describe('parseScopes', () => {
  test('repeated values and space-separated scopes within one value, in order', () => {
    assert.deepEqual(
      parseScopes(['repository:a:pull repository:b:pull,push', 'registry:catalog:*']).map(scopeOf),
      ['repository:a:pull', 'repository:b:pull,push', 'registry:catalog:*'],
    );
  });

  test('malformed scopes and extra spaces are skipped, the rest kept', () => {
    assert.deepEqual(
      parseScopes(['  repository:a:pull   nonsense repository:b: ', '', 'repository:c:pull']).map(scopeOf),
      ['repository:a:pull', 'repository:c:pull'],
    );
  });

  test('nothing asked, nothing parsed', () => {
    assert.deepEqual(parseScopes([]), []);
    assert.deepEqual(parseScopes(['', ' ']), []);
  });
});

describe('scopeOf', () => {
  test('writes a scope back as type:name:actions', () => {
    assert.equal(
      scopeOf({ type: 'repository', name: 'host:5000/app', actions: ['pull', 'push'] }),
      'repository:host:5000/app:pull,push',
    );
    const parsed = parseScope('repository(plugin):x:pull');
    assert.ok(parsed);
    assert.equal(scopeOf(parsed), 'repository:x:pull');
  });
});
