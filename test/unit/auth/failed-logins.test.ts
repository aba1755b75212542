import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clientKey, FailedLogins } from '../../../src/auth/failed-logins.ts';

/** A clock the test moves by hand (milliseconds). */
function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return {
    now: () => time,
    advance: (ms) => {
      time += ms;
    },
  };
}

describe('FailedLogins', () => {
  test('under the limit a client may try again at once', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(3, 60_000, clock.now);
    assert.equal(logins.retryAfter('1.2.3.4'), 0);
    logins.fail('1.2.3.4');
    assert.equal(logins.retryAfter('1.2.3.4'), 0);
    logins.fail('1.2.3.4');
    assert.equal(logins.retryAfter('1.2.3.4'), 0);
  });

  test('at the limit it waits until the window ends, in whole seconds rounded up', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(3, 60_000, clock.now);
    logins.fail('1.2.3.4');
    clock.advance(10_000);
    logins.fail('1.2.3.4');
    clock.advance(5_500);
    logins.fail('1.2.3.4');
    // The window started at the first failure: 60 s − 15.5 s = 44.5 s → 45.
    assert.equal(logins.retryAfter('1.2.3.4'), 45);
    clock.advance(44_000);
    assert.equal(logins.retryAfter('1.2.3.4'), 1);
    clock.advance(499);
    assert.equal(logins.retryAfter('1.2.3.4'), 1);
  });

  test('failures over the limit keep it limited, without moving the window', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(2, 30_000, clock.now);
    logins.fail('c');
    logins.fail('c');
    clock.advance(20_000);
    logins.fail('c');
    assert.equal(logins.retryAfter('c'), 10);
  });

  test('when the window has passed the count starts again', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(2, 60_000, clock.now);
    logins.fail('c');
    logins.fail('c');
    assert.equal(logins.retryAfter('c'), 60);
    clock.advance(60_000);
    assert.equal(logins.retryAfter('c'), 0);
    logins.fail('c');
    assert.equal(logins.retryAfter('c'), 0, 'one failure in the new window');
    clock.advance(1_000);
    logins.fail('c');
    assert.equal(logins.retryAfter('c'), 59, 'the new window started at its first failure');
  });

  test('a failure after the window ends opens a new window rather than adding to the old one', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(2, 60_000, clock.now);
    logins.fail('c');
    clock.advance(60_000);
    logins.fail('c');
    assert.equal(logins.retryAfter('c'), 0);
  });

  test('clients are counted independently', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(1, 60_000, clock.now);
    logins.fail('10.0.0.1');
    assert.equal(logins.retryAfter('10.0.0.1'), 60);
    assert.equal(logins.retryAfter('10.0.0.2'), 0);
    assert.equal(logins.retryAfter('::1'), 0);
    logins.fail('10.0.0.2');
    assert.equal(logins.retryAfter('10.0.0.2'), 60);
  });

  test('IPv6 clients are counted by their /64, however the address is written', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(2, 60_000, clock.now);
    logins.fail('2001:db8:1:2::1');
    logins.fail('2001:DB8:1:2:ffff:ffff:ffff:fffe');
    assert.equal(logins.retryAfter('2001:0db8:0001:0002:0000:0000:0000:0009'), 60);
    assert.equal(logins.retryAfter('2001:db8:1:3::1'), 0, 'the next /64 is another client');
    assert.equal(logins.retryAfter('1.2.3.4'), 0);
  });
});

describe('FailedLogins across the processes of a cluster', () => {
  test('each failure seen here is published with its client key and time', () => {
    const clock = fakeClock();
    const published: [string, number][] = [];
    const logins = new FailedLogins(3, 60_000, clock.now, (key, at) => published.push([key, at]));
    logins.fail('192.0.2.7');
    clock.advance(1_000);
    logins.fail('2001:db8:1:2::1');
    assert.deepEqual(published, [
      ['192.0.2.7', clock.now() - 1_000],
      ['2001:db8:1:2::/64', clock.now()],
    ]);
  });

  test('failures seen elsewhere count toward the same limit, and are not published again', () => {
    const clock = fakeClock();
    const published: string[] = [];
    const logins = new FailedLogins(3, 60_000, clock.now, (key) => published.push(key));
    logins.failedElsewhere('192.0.2.7', clock.now());
    logins.failedElsewhere('192.0.2.7', clock.now());
    assert.equal(logins.retryAfter('192.0.2.7'), 0);
    logins.fail('192.0.2.7');
    assert.equal(logins.retryAfter('192.0.2.7'), 60);
    assert.deepEqual(published, ['192.0.2.7']);
    logins.failedElsewhere('2001:db8:1:2::/64', clock.now());
    assert.equal(logins.retryAfter('2001:db8:1:2::9'), 0);
  });

  test('a window opened elsewhere starts when the failure happened there', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(1, 60_000, clock.now);
    logins.failedElsewhere('c', clock.now() - 20_000);
    assert.equal(logins.retryAfter('c'), 40);
  });

  test('a failure older than the window (a message that came late), or from a clock far ahead, is ignored', () => {
    const clock = fakeClock();
    const logins = new FailedLogins(1, 60_000, clock.now);
    logins.failedElsewhere('c', clock.now() - 60_000);
    logins.failedElsewhere('c', clock.now() + 61_000);
    assert.equal(logins.retryAfter('c'), 0);
  });
});

describe('clientKey', () => {
  test('an IPv4 address is its own key', () => {
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
    assert.notEqual(clientKey('192.0.2.7'), clientKey('192.0.2.8'));
  });

  test('an IPv6 address is keyed by its /64, normalized', () => {
    assert.equal(clientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:0DB8:0001:0002:0000:0000:0000:0001'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
  });

  test('IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are kept apart like the IPv4 addresses they are', () => {
    assert.notEqual(clientKey('::ffff:192.0.2.7'), clientKey('::ffff:198.51.100.9'));
    const logins = new FailedLogins(1, 60_000, fakeClock().now);
    logins.fail('::ffff:192.0.2.7');
    assert.equal(logins.retryAfter('::ffff:198.51.100.9'), 0);
  });

  test('an address with a dotted IPv4 tail has the key of its all-hex spelling', () => {
    assert.equal(clientKey('1:2::3:4:5:1.2.3.4'), clientKey('1:2:0:3:4:5:102:304'));
  });
});
