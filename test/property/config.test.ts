/**
 * The serve configuration, generated: any YAML text, any DERRICK_* values and any flag values give a frozen
 * configuration or a ConfigError — never another exception — and a value given for a key comes back as that
 * key's value.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, type ConfigSources } from '../../src/config/load.ts';
import { envName, SCALAR_KEYS, type Config, type ScalarKey } from '../../src/config/schema.ts';
import { tempDir } from '../helpers/cli.ts';
import { fc, holds } from '../helpers/property.ts';
import { anyText } from './grammar.ts';

const file = import.meta.filename;
const temp = tempDir('derrick-property-config-');
after(() => temp.cleanup());

let counter = 0;
function yamlFile(text: string): string {
  const target = path.join(temp.dir, `config-${++counter}.yaml`);
  writeFileSync(target, text);
  return target;
}

const KEYS = Object.keys(SCALAR_KEYS) as ScalarKey[];

/** loadConfig's outcome: a configuration, or the ConfigError it threw (anything else fails the property). */
function outcome(sources: ConfigSources): Config | ConfigError {
  try {
    const config = loadConfig(sources);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.auth));
    return config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    assert.ok(error.message.length > 0);
    assert.doesNotMatch(error.message, /[\r\n]/, `not one line: ${JSON.stringify(error.message)}`);
    return error;
  }
}

/** A value of any YAML-representable kind, biased towards what each key could hold. */
const value = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  anyText,
  fc.constantFrom(
    '127.0.0.1:5000',
    '[::1]:5000',
    'serve',
    'redirect',
    'linux/amd64',
    'https://cdn.example.com/',
  ),
  fc.integer(),
  fc.double(),
  fc.constant(null),
);

/** A key path: a real (possibly nested) key, a misspelt one, or any text. */
const keyPath = fc.oneof(
  fc.constantFrom(...KEYS),
  fc.constantFrom(
    'workrs',
    'listne',
    'auth.htpassword',
    'tls',
    'auth',
    'redirect.token',
    '__proto__',
    'constructor',
  ),
  anyText,
);

/** Builds a nested object from key paths (`auth.realm`) and values. */
function nested(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, entryValue] of entries) {
    let node = out;
    const parts = key.split('.');
    parts.slice(0, -1).forEach((part) => {
      const next = Object.hasOwn(node, part) ? node[part] : undefined;
      if (typeof next !== 'object' || next === null || Array.isArray(next))
        Object.defineProperty(node, part, {
          value: {},
          enumerable: true,
          writable: true,
          configurable: true,
        });
      node = node[part] as Record<string, unknown>;
    });
    Object.defineProperty(node, parts[parts.length - 1] ?? key, {
      value: entryValue,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** YAML an operator (or an attacker who can write the file) might give: structured, or YAML's odd corners. */
const yamlText = fc.oneof(
  fc
    .array(fc.tuple(keyPath, value), { maxLength: 6 })
    .map((entries) => stringify(nested(entries), { lineWidth: 0 })),
  anyText,
  fc.constantFrom(
    '',
    '---\n---\n',
    'a: &a [*a]',
    'a: &a x\nb: *a\nc: *b',
    `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [${'*a,'.repeat(9)}*a]\nc: &c [${'*b,'.repeat(9)}*b]\nd: [${'*c,'.repeat(9)}*c]`,
    'workers: !!binary aGVsbG8=',
    'workers: !!js/function "function(){}"',
    'listen: !!set {a, b}',
    'listen: !!omap [a: 1]',
    '<<: {workers: 2}',
    'workers: 1\nworkers: 2',
    '? [a, b]\n: 1',
    '__proto__: {workers: 2}',
    'auth:\n  __proto__: {htpasswd: x}',
    '['.repeat(2000),
    `${'a:\n '.repeat(300)}b`,
    '%YAML 1.1\n---\nworkers: 0x10',
    'workers: 1e3',
    'workers: .inf',
    'accessLog: yes',
    'tls: {cert: a}',
    'redirect: {urlMatch: x}',
    '\ufeffworkers: 1',
    'workers: 1\0',
    '- a\n- b',
    '"just a string"',
  ),
);

/** Environment variables: real DERRICK_* names (and near misses) with any text. */
const env = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(...KEYS).map(envName),
        fc.constantFrom('DERRICK_', 'DERRICK_WORKRS', 'derrick_workers'),
      ),
      fc.oneof(
        anyText,
        fc.constantFrom('', ' ', '0', '-1', '1e309', 'NaN', 'true', 'off', '[]', '{}', 'null'),
      ),
    ),
    { maxLength: 4 },
  )
  .map((pairs) => Object.fromEntries(pairs) as NodeJS.ProcessEnv);

const flags = fc
  .array(fc.tuple(fc.constantFrom(...KEYS), fc.oneof(anyText, fc.constantFrom('', '1', 'true', '[]'))), {
    maxLength: 4,
  })
  .map((pairs) => Object.fromEntries(pairs) as Partial<Record<ScalarKey, string>>);

describe('the serve configuration (generated)', () => {
  test('any YAML file is a frozen configuration or a ConfigError', async () => {
    await holds(
      fc.property(yamlText, (text) => {
        outcome({ file: yamlFile(text) });
      }),
      { file, runs: 500 },
    );
  });

  test('any DERRICK_* variables and flags, over any YAML file, are a frozen configuration or a ConfigError', async () => {
    await holds(
      fc.property(fc.option(yamlText, { nil: undefined }), env, flags, (text, variables, given) => {
        outcome({ file: text === undefined ? undefined : yamlFile(text), env: variables, flags: given });
      }),
      { file, runs: 500 },
    );
  });

  test('a string given for a key by YAML, variable or flag comes back as that key, the flag winning', async () => {
    // Keys whose only rule is "a non-empty string": whatever text is given is the value.
    const key = fc.constantFrom('dataDir', 'auth.htpasswd', 'tls.clientCa');
    const text = fc.oneof(anyText, fc.string({ minLength: 1 })).filter((s) => s.length > 0);
    await holds(
      fc.property(key, text, text, text, (name, fromYaml, fromEnv, fromFlag) => {
        const read = (config: Config | ConfigError): unknown => {
          assert.ok(!(config instanceof ConfigError), config instanceof ConfigError ? config.message : '');
          return name === 'dataDir'
            ? config.dataDir
            : name === 'auth.htpasswd'
              ? config.auth.htpasswd
              : config.tls?.clientCa;
        };
        const extra = name === 'tls.clientCa' ? { 'tls.cert': 'c.pem', 'tls.key': 'k.pem' } : {};
        const yaml = yamlFile(
          stringify(nested([[name, fromYaml], ...Object.entries(extra)]), { lineWidth: 0 }),
        );
        assert.equal(read(outcome({ file: yaml })), fromYaml);
        assert.equal(read(outcome({ file: yaml, env: { [envName(name)]: fromEnv } })), fromEnv);
        const both = { file: yaml, env: { [envName(name)]: fromEnv }, flags: { [name]: fromFlag } };
        assert.equal(read(outcome(both)), fromFlag);
      }),
      { file, runs: 300 },
    );
  });
});
