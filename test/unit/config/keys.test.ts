/** The key table (src/config/keys.ts) against the zod schema: the defaults --help and the doc show are real. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { helpText } from '../../../src/cli/serve-command.ts';
import { keysAt, schemaDefault, schemaAt } from '../../../src/config/describe.ts';
import { KEY_NAMES, keyInfo } from '../../../src/config/keys.ts';

describe('the key table', () => {
  test('names exactly the keys of the zod schema that are not sections', () => {
    const leaves = (path: string[]): string[] => {
      const names = keysAt(path);
      if (path.length > 0 && names.length === 0) return [path.join('.')];
      return names.flatMap((name) => leaves([...path, name]));
    };
    assert.deepEqual([...KEY_NAMES].sort(), leaves([]).sort());
    for (const key of KEY_NAMES) assert.ok(schemaAt(key.split('.')), `${key} is not in the schema`);
  });

  for (const key of KEY_NAMES) {
    test(`${key}: the default in the table is the schema's default`, () => {
      assert.deepEqual(keyInfo(key).default, schemaDefault(key));
    });
  }

  test('every --help line has a meaning and a default', () => {
    for (const key of KEY_NAMES) assert.match(helpText(key), /^.{10,} \(default: [^)]+\)$/, key);
    assert.equal(
      helpText('listen'),
      'host:port ([::1]:5000 for IPv6; port 0 picks a free one). (default: 127.0.0.1:5000)',
    );
    assert.match(helpText('access'), /^JSON: /);
    assert.match(helpText('accessLog'), /\(default: on\)$/);
  });
});
