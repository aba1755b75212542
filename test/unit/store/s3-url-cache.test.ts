/**
 * UrlCache (src/store/s3/lean-read.ts): presigned URLs are signed once per key and half-life, never handed out
 * with less than half of their TTL left, and kept apart per TTL.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UrlCache } from '../../../src/store/s3/lean-read.ts';

function clocked() {
  let now = 1_000_000;
  let signed = 0;
  const cache = new UrlCache(() => now);
  const sign = (): Promise<string> => Promise.resolve(`https://store.example/k?n=${++signed}`);
  return {
    cache,
    sign,
    advance: (ms: number) => (now += ms),
    get signed() {
      return signed;
    },
  };
}

test('UrlCache: a URL is re-used while it has more than half of its TTL left, then signed again', async () => {
  const c = clocked();
  const first = await c.cache.get('k', 300, c.sign);
  c.advance(149_999);
  assert.equal(await c.cache.get('k', 300, c.sign), first);
  assert.equal(c.signed, 1);
  c.advance(1);
  const second = await c.cache.get('k', 300, c.sign);
  assert.notEqual(second, first);
  assert.equal(c.signed, 2);
});

test('UrlCache: keys and TTLs are kept apart; forget() makes the next get sign again', async () => {
  const c = clocked();
  const a = await c.cache.get('a', 300, c.sign);
  const b = await c.cache.get('b', 300, c.sign);
  const longer = await c.cache.get('a', 900, c.sign);
  assert.equal(new Set([a, b, longer]).size, 3);
  c.cache.forget('a', 300);
  assert.notEqual(await c.cache.get('a', 300, c.sign), a);
  assert.equal(await c.cache.get('a', 900, c.sign), longer);
  assert.equal(c.signed, 4);
});
