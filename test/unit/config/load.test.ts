import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import { envName, flagName } from '../../../src/config/schema.ts';
import { tempDir } from '../../helpers/cli.ts';

const temp = tempDir();
after(() => temp.cleanup());
let counter = 0;
function yamlFile(text: string): string {
  const file = path.join(temp.dir, `config-${++counter}.yaml`);
  writeFileSync(file, text);
  return file;
}

describe('serve configuration', () => {
  test('with nothing given: ./data on 127.0.0.1:5000, serve mode, linux/amd64', () => {
    const config = loadConfig();
    assert.equal(config.dataDir, './data');
    assert.equal(config.listen, '127.0.0.1:5000');
    assert.equal(config.mode, 'serve');
    assert.equal(config.defaultPlatform, 'linux/amd64');
    assert.equal(config.redirect.status, 302);
    assert.equal(config.catalog.defaultPageSize, 100);
  });

  test('YAML, then DERRICK_* variables, then flags: the later wins', () => {
    const file = yamlFile(
      'mode: redirect\nlisten: 0.0.0.0:8000\nredirect:\n  url: https://yaml.example.com\n  status: 307\n',
    );
    const config = loadConfig({
      file,
      env: { DERRICK_LISTEN: '127.0.0.1:9000', DERRICK_REDIRECT_URL: 'https://env.example.com' },
      flags: { 'redirect.url': 'https://flag.example.com' },
    });
    assert.equal(config.mode, 'redirect');
    assert.equal(config.listen, '127.0.0.1:9000');
    assert.equal(config.redirect.url, 'https://flag.example.com');
    assert.equal(config.redirect.status, 307);
  });

  test('numbers and booleans come from strings in variables and flags', () => {
    const config = loadConfig({
      env: { DERRICK_ACCESS_LOG: 'false', DERRICK_CATALOG_MAX_PAGE_SIZE: '500' },
      flags: { 'redirect.status': '307' },
    });
    assert.equal(config.accessLog, false);
    assert.equal(config.catalog.maxPageSize, 500);
    assert.equal(config.redirect.status, 307);
  });

  test('per-repository modes come from YAML, or DERRICK_REPOSITORIES as JSON', () => {
    const file = yamlFile('repositories:\n  - match: "cdn/**"\n    mode: redirect\n');
    assert.deepEqual(loadConfig({ file }).repositories, [{ match: 'cdn/**', mode: 'redirect' }]);
    const fromEnv = loadConfig({ env: { DERRICK_REPOSITORIES: '[{"match":"x/*","mode":"serve"}]' } });
    assert.deepEqual(fromEnv.repositories, [{ match: 'x/*', mode: 'serve' }]);
  });

  test('the result is frozen', () => {
    const config = loadConfig();
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.redirect));
  });

  test('names of variables and flags follow the keys', () => {
    assert.equal(envName('redirect.urlMatch'), 'DERRICK_REDIRECT_URL_MATCH');
    assert.equal(flagName('redirect.token.ttlSeconds'), 'redirect-token-ttl-seconds');
    assert.equal(flagName('dataDir'), 'data-dir');
  });

  const bad: [string, () => unknown, RegExp][] = [
    [
      'an unknown key in the file',
      () => loadConfig({ file: yamlFile('moed: serve\n') }),
      /config-\d+\.yaml: moed: not a configuration key; did you mean "mode"\?$/,
    ],
    [
      'a bad mode from a flag',
      () => loadConfig({ flags: { mode: 'proxy' } }),
      /^--mode: mode: expected serve or redirect, got "proxy"$/,
    ],
    [
      'a bad listen address from a variable',
      () => loadConfig({ env: { DERRICK_LISTEN: 'localhost' } }),
      /^environment variable DERRICK_LISTEN: listen: expected host:port/,
    ],
    [
      'a number that is not one',
      () => loadConfig({ env: { DERRICK_CATALOG_MAX_PAGE_SIZE: 'many' } }),
      /DERRICK_CATALOG_MAX_PAGE_SIZE: catalog\.maxPageSize: expected a whole number ≥ 1, got "many"/,
    ],
    [
      'a boolean that is not one',
      () => loadConfig({ flags: { accessLog: 'maybe' } }),
      /--access-log: accessLog: expected true or false/,
    ],
    [
      'a redirect status other than 302/307',
      () => loadConfig({ flags: { 'redirect.status': '301' } }),
      /--redirect-status: redirect\.status/,
    ],
    [
      'a non-hex token secret',
      () => loadConfig({ file: yamlFile('redirect:\n  token:\n    secret: xyz\n') }),
      /redirect\.token\.secret: expected an even number of hex digits/,
    ],
    [
      'urlMatch without urlReplace',
      () => loadConfig({ flags: { 'redirect.urlMatch': 'a' } }),
      /^--redirect-url-match: redirect\.urlReplace: missing: redirect\.urlMatch is set, and the two go together/,
    ],
    [
      'a platform that is not os/arch',
      () => loadConfig({ flags: { defaultPlatform: 'amd64' } }),
      /expected os\/architecture/,
    ],
    [
      'a trusted proxy that is not an address',
      () => loadConfig({ file: yamlFile('trustedProxies: [10.0.0.0/8, proxy.example.com]\n') }),
      /trustedProxies\.1: expected an IP address or CIDR range .*"proxy\.example\.com"/,
    ],
    [
      'a trusted proxy range with too long a prefix',
      () => loadConfig({ env: { DERRICK_TRUSTED_PROXIES: '["10.0.0.0/33"]' } }),
      /DERRICK_TRUSTED_PROXIES: trustedProxies\.0: expected a prefix length from 0 to 32/,
    ],
    ['YAML that does not parse', () => loadConfig({ file: yamlFile('mode: [unclosed\n') }), /not valid YAML/],
    [
      'a file that does not exist',
      () => loadConfig({ file: path.join(temp.dir, 'missing.yaml') }),
      /cannot read the config file/,
    ],
  ];
  for (const [what, load, message] of bad) {
    test(`${what} is refused, naming where it came from and the key`, () => {
      assert.throws(load, (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, message);
        return true;
      });
    });
  }

  test('YAML the library would only warn about (an unknown tag, a collection as a key) is refused in one line, and the library prints nothing', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(String(warning));
    };
    process.on('warning', onWarning);
    const cases: [string, (file: string) => string][] = [
      [
        'workers: !!js/function "function(){}"\n',
        (file) =>
          `${file} (line 1, column 10): not valid YAML: Unresolved tag: tag:yaml.org,2002:js/function`,
      ],
      ['[a, b]: 1\n', (file) => `${file}: [ a, b ]: not a configuration key`],
      [
        'mode: serve\nmode: redirect\n',
        (file) => `${file} (line 2, column 1): not valid YAML: Map keys must be unique`,
      ],
    ];
    for (const [text, expected] of cases) {
      const file = yamlFile(text);
      assert.throws(
        () => loadConfig({ file }),
        (error: unknown) => error instanceof ConfigError && error.message === expected(file),
      );
    }
    // process.emitWarning delivers its event on a later tick: listen until then.
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
    assert.deepEqual(warnings, []);
  });
});
