/** Documentation that must not drift from the code. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SCALAR_KEYS } from '../../src/config/schema.ts';
import { ERROR_CODES } from '../../src/oci/errors.ts';

const doc = (name: string): string => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');

test('docs/errors.md lists every error code with its status, and no other', () => {
  const rows = [...doc('errors.md').matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm)].map(([, code, status]) => [
    code,
    Number(status),
  ]);
  assert.deepEqual(
    rows.sort(),
    Object.entries(ERROR_CODES)
      .map(([code, { status }]) => [code, status])
      .sort(),
  );
});

test('docs/configuration.md documents every configuration key', () => {
  const text = doc('configuration.md');
  for (const key of Object.keys(SCALAR_KEYS))
    assert.ok(text.includes(`\`${key}\``), `${key} is not documented`);
});
