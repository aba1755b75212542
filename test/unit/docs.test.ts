/** Documentation that must not drift from the code. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderConfigDoc, renderSyncSchema } from '../../scripts/config-doc.ts';
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

test('docs/configuration.md holds the key table that npm run docs:config generates from src/config/keys.ts', async () => {
  const text = doc('configuration.md');
  assert.equal(text, await renderConfigDoc(text), 'the key table is stale: run npm run docs:config');
  for (const key of Object.keys(SCALAR_KEYS))
    assert.match(text, new RegExp(`^\\| \`${key.replace(/\./g, '\\.')}\` +\\|`, 'm'), `${key} has no row`);
});

test('docs/sync.schema.json is the JSON Schema npm run docs:config generates from src/config/sync-schema.ts', async () => {
  assert.equal(
    doc('sync.schema.json'),
    await renderSyncSchema(),
    'the schema is stale: run npm run docs:config',
  );
});
