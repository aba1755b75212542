/**
 * Every invalid configuration value is one line: where it came from (the file, the variable or the flag), the
 * key, and what is expected — in the key table's words (src/config/keys.ts), for every key.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, type ConfigSources } from '../../../src/config/load.ts';
import { envName, flagName, KEY_NAMES, keyInfo, type ScalarKey } from '../../../src/config/keys.ts';
import { tempDir } from '../../helpers/cli.ts';

const temp = tempDir();
after(() => temp.cleanup());
let counter = 0;
function yamlFile(value: unknown): string {
  const file = path.join(temp.dir, `config-${++counter}.yaml`);
  writeFileSync(file, typeof value === 'string' ? value : stringify(value));
  return file;
}

/** A valid configuration with every section present, so that each bad key is the only thing wrong. */
function base(): Record<string, unknown> {
  return {
    tls: { cert: 'c.pem', key: 'k.pem' },
    auth: { token: { service: 'registry', key: 'token.pem' } },
    redirect: { token: { secret: 'abcd' } },
  };
}

function set(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts[parts.length - 1] ?? key] = value;
  return target;
}

/** A YAML value of the wrong type for each key. */
function wrongType(key: ScalarKey): unknown {
  switch (keyInfo(key).type) {
    case 'string':
      return 5005;
    case 'number':
      return 'many';
    case 'boolean':
      return 'maybe';
    case 'json':
      return 5;
  }
}

/** A string no variable or flag may give each key (null: every string is valid). */
const BAD_TEXT: Record<ScalarKey, string | null> = {
  dataDir: '',
  listen: 'localhost',
  'tls.cert': '',
  'tls.key': '',
  'tls.clientCa': '',
  'tls.clientCrl': '',
  'tls.requireClientCert': 'maybe',
  trustedProxies: '["proxy.example.com"',
  'auth.htpasswd': '',
  'auth.groups': '[]',
  'auth.denied': 'forbidden',
  'auth.realm': 'say "hi"',
  'auth.token.service': 'two words',
  'auth.token.realm': 'ftp://example.com/token',
  'auth.token.key': '',
  'auth.token.issuer': '',
  'auth.token.ttlSeconds': '100000',
  'auth.token.trust': '{}',
  'auth.failedLogins.limit': '0',
  'auth.failedLogins.windowSeconds': '-1',
  access: '{"match":"**"}',
  mode: 'proxy',
  'serve.sendfile': 'nginx',
  'serve.sendfilePrefix': '/../',
  repositories: 'cdn/**',
  'redirect.status': '301',
  'redirect.url': 'cdn.example.com',
  'redirect.urlMatch': '',
  'redirect.urlReplace': null,
  'redirect.token.secret': 'xyz',
  'redirect.token.ttlSeconds': '1.5',
  'redirect.token.param': 'a b',
  'redirect.token.algorithm': 'sha512',
  defaultPlatform: 'amd64',
  'catalog.defaultPageSize': '0',
  'catalog.maxPageSize': '-3',
  'tags.maxPageSize': 'lots',
  'timeouts.requestSeconds': '-1',
  'timeouts.headersSeconds': 'soon',
  'timeouts.keepAliveSeconds': '-5',
  workers: '300',
  'health.drainFile': '',
  'shutdown.drainSeconds': '-1',
  accessLog: 'sometimes',
  accessLogFormat: 'apache',
  'metrics.enabled': 'perhaps',
  'metrics.listen': '5001',
  'metrics.repositories': '"library/*"',
  's3.addressing': 'dns',
  's3.presignUrl': 'cdn.example.com',
  's3.presignTtlSeconds': '0',
  's3.maxAttempts': '0',
  logLevel: 'loud',
  'cache.records': '-1',
  'cache.manifestBytes': '64MiB',
  'cache.recordTtlSeconds': '-1',
  'cache.listings': '0.5',
};

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function refused(sources: ConfigSources, source: string, key: ScalarKey): void {
  assert.throws(
    () => loadConfig(sources),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.doesNotMatch(error.message, /\n/, 'one line');
      assert.match(
        error.message,
        new RegExp(`^${escape(source)}: ${escape(key)}: expected (JSON: )?${escape(keyInfo(key).expected)}`),
      );
      return true;
    },
  );
}

describe('an invalid value of any key', () => {
  test('the base of these cases is a valid configuration', () => {
    assert.ok(loadConfig({ file: yamlFile(base()) }));
  });

  for (const key of KEY_NAMES) {
    test(`${key}: a YAML value of the wrong type names the file, the key and what is expected`, () => {
      const file = yamlFile(set(base(), key, wrongType(key)));
      refused({ file }, file, key);
    });
    const text = BAD_TEXT[key];
    if (text === null) continue;
    test(`${key}: a bad variable or flag names it, the key and what is expected`, () => {
      const file = yamlFile(base());
      refused({ file, env: { [envName(key)]: text } }, `environment variable ${envName(key)}`, key);
      refused({ file, flags: { [key]: text } }, `--${flagName(key)}`, key);
    });
  }
});

describe('a misspelt key', () => {
  const cases: [string, string, RegExp][] = [
    ['at the top level', 'workrs: 2\n', /: workrs: not a configuration key; did you mean "workers"\?$/],
    [
      'in a section',
      'auth:\n  htpasswrd: /etc/htpasswd\n',
      /: auth\.htpasswrd: not a configuration key; did you mean "auth\.htpasswd"\?$/,
    ],
    [
      'in a rule of a list',
      'access:\n  - mtach: "**"\n    pull: [anonymous]\n',
      /: access\.0\.mtach: not a configuration key; did you mean "access\.0\.match"\?$/,
    ],
    [
      'at the wrong level',
      'htpasswd: /etc/htpasswd\n',
      /: htpasswd: not a configuration key; did you mean "auth\.htpasswd"\?$/,
    ],
    [
      'written dotted instead of nested',
      'auth.htpasswd: /etc/htpasswd\n',
      /: auth\.htpasswd: not a configuration key; keys are nested in YAML: auth: \{ htpasswd: … \}$/,
    ],
    // The misspelt key explains the missing one: it is named first.
    [
      'that leaves a required key missing',
      'tls:\n  cert: c.pem\n  kye: k.pem\n',
      /: tls\.kye: not a configuration key; did you mean "tls\.key"\?$/,
    ],
  ];
  for (const [where, yaml, message] of cases) {
    test(`${where} gets a suggestion`, () => {
      const file = yamlFile(yaml);
      assert.throws(
        () => loadConfig({ file }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.ok(error.message.startsWith(`${file}: `), error.message);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  test('in the JSON of a DERRICK_* variable names the variable and gets a suggestion', () => {
    assert.throws(() => loadConfig({ env: { DERRICK_ACCESS: '[{"mtach":"**","pull":["anonymous"]}]' } }), {
      name: 'ConfigError',
      message:
        /^environment variable DERRICK_ACCESS: access\.0\.mtach: not a configuration key; did you mean "access\.0\.match"\?$/,
    });
  });

  test('in a DERRICK_* variable is a warning with a suggestion, and the variable is ignored', () => {
    const warnings: string[] = [];
    const config = loadConfig({
      env: { DERRICK_WORKRS: '2', DERRICK_DEBUG: '1', DERRICK_WORKERS: '3' },
      warn: (message) => warnings.push(message),
    });
    assert.equal(config.workers, 3);
    assert.deepEqual(warnings, [
      'environment variable DERRICK_WORKRS is not a configuration key (did you mean DERRICK_WORKERS?); it is ignored',
    ]);
  });
});

describe('a required key that is missing', () => {
  const cases: [string, ConfigSources, RegExp][] = [
    [
      'tls.key without tls.cert, from a flag',
      { flags: { 'tls.cert': 'c.pem' } },
      /^--tls-cert: tls\.key: missing: tls\.cert is set, and HTTPS needs both a certificate and its key$/,
    ],
    [
      'tls.cert without tls.key, from a variable',
      { env: { DERRICK_TLS_KEY: 'k.pem' } },
      /^environment variable DERRICK_TLS_KEY: tls\.cert: missing: tls\.key is set, and HTTPS needs both/,
    ],
    [
      'auth.token.service',
      { flags: { 'auth.token.key': 'token.pem' } },
      /^--auth-token-key: auth\.token\.service: missing: auth\.token\.key is set, and token authentication needs/,
    ],
    [
      'redirect.token.secret',
      { flags: { 'redirect.token.ttlSeconds': '60' } },
      /^--redirect-token-ttl-seconds: redirect\.token\.secret: missing: .* signed redirect URLs need a key$/,
    ],
    [
      'redirect.urlMatch without redirect.urlReplace',
      { env: { DERRICK_REDIRECT_URL_REPLACE: 'b' } },
      /^environment variable DERRICK_REDIRECT_URL_REPLACE: redirect\.urlMatch: missing: redirect\.urlReplace is set, and the two go together/,
    ],
  ];
  for (const [what, sources, message] of cases) {
    test(`${what} is named, with why it is needed`, () => {
      assert.throws(
        () => loadConfig(sources),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          assert.doesNotMatch(error.message, /received undefined/);
          return true;
        },
      );
    });
  }
});

test('a catalog page size larger than its maximum names both keys and the source', () => {
  assert.throws(() => loadConfig({ flags: { 'catalog.defaultPageSize': '2000' } }), {
    name: 'ConfigError',
    message:
      /^--catalog-default-page-size: catalog\.defaultPageSize: expected at most catalog\.maxPageSize \(1000\), got 2000$/,
  });
});
