/**
 * The smallest counterexamples the properties in this directory found, kept as plain tests so the bug they
 * caught stays fixed whatever the seed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseRange } from '../../src/http/send-file.ts';

describe('found by the properties', () => {
  test('Range: bytes=-1 on an empty blob is the whole (empty) blob, not a 206 of bytes 0 to -1', () => {
    // RFC 9110 §14.1.1: "a suffix-range with a non-zero suffix-length" is satisfiable, and "if the selected
    // representation is shorter than the specified suffix-length, the entire representation is used".
    assert.equal(parseRange('bytes=-1', 0), undefined);
  });
});
