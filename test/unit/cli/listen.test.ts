/**
 * The line derrick prints when it cannot listen. EADDRINUSE and EADDRNOTAVAIL are produced for real in
 * test/integration/serve-cli.test.ts; EACCES needs a port below 1024 and a user who is not root, which the test
 * machine (root) cannot be, so the error here is the one Node gives such a user.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listenProblem } from '../../../src/cli/listen.ts';

function listenError(code: string, address: string, port: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`listen ${code}: permission denied ${address}:${port}`), {
    code,
    errno: -13,
    syscall: 'listen',
  });
}

test('a port below 1024 without the right to it says so and suggests a port from 1024 up', () => {
  assert.equal(
    listenProblem(listenError('EACCES', '0.0.0.0', 80), '0.0.0.0:80'),
    'permission denied: ports below 1024 need root (or CAP_NET_BIND_SERVICE); pass --listen with a port from 1024 up, e.g. 0.0.0.0:5000',
  );
});

test('an IPv6 address keeps its brackets in the suggested --listen', () => {
  assert.match(listenProblem(listenError('EACCES', '::1', 443), '[::1]:443'), /e\.g\. \[::1\]:5000$/);
});

test('a host name that does not resolve is named, with the fix', () => {
  assert.equal(
    listenProblem(listenError('ENOTFOUND', 'registry.invalid', 5000), 'registry.invalid:5000'),
    'cannot resolve the host name registry.invalid; pass --listen with an IP address or a name this machine resolves',
  );
});
