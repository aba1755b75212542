import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthConfigError } from '../../../src/auth/errors.ts';
import { AccessRules } from '../../../src/auth/rules.ts';

const ANONYMOUS: string[] = [];
const ALICE = ['user:alice'];
const BOB = ['user:bob'];
const CI = ['cert:ci.example.com'];

describe('AccessRules', () => {
  test('the first rule whose glob matches decides, even when a later one would allow', () => {
    const rules = new AccessRules(
      [
        { match: 'team/secret', pull: ['user:alice'] },
        { match: 'team/*', pull: ['anonymous'] },
      ],
      {},
    );
    assert.equal(rules.allows(ANONYMOUS, 'team/app', false), true);
    assert.equal(rules.allows(ANONYMOUS, 'team/secret', false), false);
    assert.equal(rules.allows(BOB, 'team/secret', false), false);
    assert.equal(rules.allows(ALICE, 'team/secret', false), true);
  });

  test('…and a rule that denies comes first only if listed first', () => {
    const rules = new AccessRules(
      [
        { match: 'team/*', pull: ['anonymous'] },
        { match: 'team/secret', pull: ['user:alice'] },
      ],
      {},
    );
    assert.equal(rules.allows(ANONYMOUS, 'team/secret', false), true);
  });

  test('`*` matches one path component, `**` any number', () => {
    const rules = new AccessRules(
      [
        { match: 'one/*', pull: ['user:one'] },
        { match: 'many/**', pull: ['user:many'] },
      ],
      {},
    );
    assert.equal(rules.allows(['user:one'], 'one/app', false), true);
    assert.equal(rules.allows(['user:one'], 'one/app/sub', false), false);
    assert.equal(rules.allows(['user:many'], 'many/app', false), true);
    assert.equal(rules.allows(['user:many'], 'many/app/sub/deeper', false), true);
    assert.equal(rules.allows(['user:many'], 'one/app', false), false);
  });

  test('a name no rule matches is denied, to everybody', () => {
    const rules = new AccessRules(
      [{ match: 'public/**', pull: ['anonymous', 'authenticated', 'user:alice'] }],
      {},
    );
    assert.equal(rules.allows(ANONYMOUS, 'public/app', false), true);
    for (const who of [ANONYMOUS, ALICE, CI, ['user:alice', 'cert:ci.example.com']])
      assert.equal(rules.allows(who, 'private/app', false), false, who.join());
  });

  test('anonymous: everybody, with or without an identity', () => {
    const rules = new AccessRules([{ match: '**', pull: ['anonymous'] }], {});
    for (const who of [ANONYMOUS, ALICE, CI]) assert.equal(rules.allows(who, 'a/b', false), true);
  });

  test('authenticated: anyone who proved an identity, not anonymous', () => {
    const rules = new AccessRules([{ match: '**', pull: ['authenticated'] }], {});
    assert.equal(rules.allows(ANONYMOUS, 'app', false), false);
    assert.equal(rules.allows(ALICE, 'app', false), true);
    assert.equal(rules.allows(CI, 'app', false), true);
  });

  test('user: and cert: entries admit exactly that identity', () => {
    const rules = new AccessRules([{ match: '**', pull: ['user:alice', 'cert:ci.example.com'] }], {});
    assert.equal(rules.allows(ALICE, 'app', false), true);
    assert.equal(rules.allows(CI, 'app', false), true);
    assert.equal(rules.allows(BOB, 'app', false), false);
    assert.equal(rules.allows(['cert:alice'], 'app', false), false, 'cert:alice is not user:alice');
    assert.equal(rules.allows(['user:ci.example.com'], 'app', false), false);
    assert.equal(rules.allows(ANONYMOUS, 'app', false), false);
    assert.equal(
      rules.allows(['user:bob', 'cert:ci.example.com'], 'app', false),
      true,
      'any identity counts',
    );
  });

  test('group: entries admit the group’s members', () => {
    const rules = new AccessRules(
      [
        { match: 'team/**', pull: ['group:dev'] },
        { match: 'ops/**', pull: ['group:ops', 'user:carol'] },
      ],
      { dev: ['user:alice', 'cert:ci.example.com'], ops: ['user:bob'] },
    );
    assert.equal(rules.allows(ALICE, 'team/app', false), true);
    assert.equal(rules.allows(CI, 'team/app', false), true);
    assert.equal(rules.allows(BOB, 'team/app', false), false);
    assert.equal(rules.allows(BOB, 'ops/app', false), true);
    assert.equal(rules.allows(['user:carol'], 'ops/app', false), true);
    assert.equal(rules.allows(ALICE, 'ops/app', false), false);
    assert.equal(rules.allows(['user:dev'], 'team/app', false), false, 'the group name is not a user');
  });

  test('a protected record is never pulled anonymously; there `anonymous` counts as `authenticated`', () => {
    const rules = new AccessRules(
      [
        { match: 'public/**', pull: ['anonymous'] },
        { match: 'team/**', pull: ['user:alice'] },
      ],
      {},
    );
    assert.equal(rules.allows(ANONYMOUS, 'public/app', true), false);
    assert.equal(rules.allows(BOB, 'public/app', true), true);
    assert.equal(rules.allows(CI, 'public/app', true), true);
    assert.equal(rules.allows(ALICE, 'team/app', true), true);
    assert.equal(rules.allows(BOB, 'team/app', true), false);
  });

  test('no rules at all: everything open to everybody, protected records to the authenticated only', () => {
    const rules = new AccessRules([], {});
    assert.equal(rules.allows(ANONYMOUS, 'any/thing/at/all', false), true);
    assert.equal(rules.allows(ALICE, 'x', false), true);
    assert.equal(rules.allows(ANONYMOUS, 'x', true), false);
    assert.equal(rules.allows(ALICE, 'x', true), true);
  });

  test('names starting with a dot in a component are matched too', () => {
    const rules = new AccessRules([{ match: 'team/**', pull: ['anonymous'] }], {});
    assert.equal(rules.allows(ANONYMOUS, 'team/.hidden/app', false), true);
  });

  test('a group that is not defined is an AuthConfigError naming access.<i>.pull', () => {
    assert.throws(
      () =>
        new AccessRules(
          [
            { match: 'public/**', pull: ['anonymous'] },
            { match: 'team/**', pull: ['user:alice', 'group:devs'] },
          ],
          { dev: ['user:bob'] },
        ),
      (error: unknown) => {
        assert.ok(error instanceof AuthConfigError);
        assert.equal(error.key, 'access.1.pull');
        assert.match(error.message, /^access\.1\.pull: group:devs is not defined under auth\.groups/);
        return true;
      },
    );
  });
});
