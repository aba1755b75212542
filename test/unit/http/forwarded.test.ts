/**
 * Trusted proxies: the client behind them (X-Forwarded-For read right to left while each hop is trusted), the
 * scheme and host they report, and address ranges as the configuration writes them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAddressRange } from '../../../src/config/address-range.ts';
import { TrustedProxies } from '../../../src/http/forwarded.ts';

describe('address ranges', () => {
  test('an address is a range of one; a CIDR range keeps its prefix', () => {
    assert.deepEqual(parseAddressRange('10.0.0.5'), { address: '10.0.0.5', prefix: 32, family: 'ipv4' });
    assert.deepEqual(parseAddressRange('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseAddressRange('fd00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' });
    assert.deepEqual(parseAddressRange('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
    assert.deepEqual(parseAddressRange('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 'ipv4' });
  });

  for (const bad of [
    '',
    'proxy.example.com',
    '10.0.0',
    '10.0.0.0/',
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/-1',
    '10.0.0.0/8/8',
    '10.0.0.0/ 8',
  ]) {
    test(`${JSON.stringify(bad)} is refused with a reason`, () => {
      const result = parseAddressRange(bad);
      assert.equal(typeof result, 'string');
      assert.match(result as string, /expected (an IP address or CIDR range|a prefix length)/);
    });
  }
});

describe('the client behind trusted proxies', () => {
  const proxies = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);

  test('with no trusted proxies the peer is the client, whatever X-Forwarded-For says', () => {
    const none = new TrustedProxies([]);
    assert.equal(none.client('127.0.0.1', '1.2.3.4'), '127.0.0.1');
    assert.equal(none.client('::ffff:127.0.0.1', undefined), '127.0.0.1');
  });

  test('an untrusted peer is the client: it cannot choose its address by sending the header', () => {
    assert.equal(proxies.client('192.0.2.7', '1.2.3.4'), '192.0.2.7');
    assert.equal(proxies.client('192.0.2.7', undefined), '192.0.2.7');
  });

  test('from a trusted peer, the address the proxy appended is the client', () => {
    assert.equal(proxies.client('127.0.0.1', '192.0.2.7'), '192.0.2.7');
    assert.equal(proxies.client('::ffff:127.0.0.1', '192.0.2.7'), '192.0.2.7');
    assert.equal(proxies.client('127.0.0.1', '2001:db8::7'), '2001:db8::7');
  });

  test('what the client wrote itself, left of the proxy’s entry, is not believed', () => {
    assert.equal(proxies.client('127.0.0.1', '6.6.6.6, 192.0.2.7'), '192.0.2.7');
    assert.equal(proxies.client('127.0.0.1', ['6.6.6.6', '192.0.2.7']), '192.0.2.7');
  });

  test('a chain of trusted proxies is walked to the first untrusted hop', () => {
    assert.equal(proxies.client('127.0.0.1', '6.6.6.6, 192.0.2.7, 10.1.2.3, fd00::5'), '192.0.2.7');
    assert.equal(proxies.client('127.0.0.1', '10.0.0.1, 10.0.0.2'), '10.0.0.1', 'all trusted: the leftmost');
  });

  test('ports some load balancers add are dropped, so each connection is not a new client', () => {
    assert.equal(proxies.client('127.0.0.1', '192.0.2.7:40123'), '192.0.2.7');
    assert.equal(proxies.client('127.0.0.1', '[2001:db8::7]:40123'), '2001:db8::7');
  });

  test('a malformed hop ends the walk at the proxy that reported it', () => {
    assert.equal(proxies.client('127.0.0.1', 'unknown'), '127.0.0.1');
    assert.equal(proxies.client('127.0.0.1', 'garbage, 10.0.0.9'), '10.0.0.9');
    assert.equal(proxies.client('127.0.0.1', ''), '127.0.0.1');
  });

  test('X-Forwarded-Proto and -Host: the last value, from a trusted peer, when well formed', () => {
    const scheme = /^https?$/;
    assert.equal(proxies.forwarded('127.0.0.1', 'https', scheme), 'https');
    assert.equal(proxies.forwarded('127.0.0.1', 'http, https', scheme), 'https');
    assert.equal(proxies.forwarded('192.0.2.7', 'https', scheme), undefined, 'untrusted peer');
    assert.equal(proxies.forwarded('127.0.0.1', 'gopher', scheme), undefined, 'malformed');
    assert.equal(proxies.forwarded('127.0.0.1', undefined, scheme), undefined);
  });
});
