/**
 * bench/load.ts: a load run that completes no request (a machine so loaded that no answer arrived within the run)
 * is run again once, longer, instead of failing the whole harness; one that still completes none is an error.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { runLoad } from '../../../bench/load.ts';

describe('runLoad', () => {
  let server: Server;
  let url = '';
  /** Until this time every answer takes 1.5 s, longer than a 1-second run. */
  let slowUntil = 0;
  let neverAnswer = false;

  before(async () => {
    server = createServer((_request, response) => {
      if (neverAnswer) return;
      const delay = Date.now() < slowUntil ? 1500 : 0;
      setTimeout(() => response.end('ok'), delay);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('a 1-second run that completes no request is run again for 5 s and counted', async () => {
    slowUntil = Date.now() + 1200;
    const result = await runLoad({ url, method: 'GET', connections: 2, seconds: 1, pid: process.pid });
    assert.ok(result.requests > 0, `requests: ${result.requests}`);
    assert.ok(result.seconds >= 4, `the second run lasts 5 s, not ${result.seconds}`);
    assert.ok(!('output' in result), 'the tool output is not kept in the result');
  });

  test('a server that never answers is an error naming the URL', async () => {
    neverAnswer = true;
    await assert.rejects(
      runLoad({ url, method: 'GET', connections: 1, seconds: 1, pid: process.pid }),
      (error: Error) => error.message.includes(`completed no request against ${url}`),
    );
    neverAnswer = false;
  });
});
