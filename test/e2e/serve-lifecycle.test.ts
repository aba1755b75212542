/**
 * Graceful shutdown of the real `derrick serve`, one process and a cluster, with real signals: on SIGTERM a
 * download in progress completes (within shutdown.drainSeconds) or is cut only once that has passed; a kept-alive
 * connection gets its next answer with `Connection: close` instead of a reset; `/readyz` fails meanwhile; and the
 * server exits 0.
 *
 * The client is a raw socket that stops reading mid-blob (a slow client, deterministic: the blob is larger than
 * what the kernel's buffers hold, so the server is still sending when the signal comes) and sends its next
 * request on the same connection only once the server has said it is draining.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { largeImageLayout } from '../helpers/images.ts';
import { makePki, type Pki } from '../helpers/pki.ts';
import { publishInto } from '../helpers/server.ts';

const BLOB_BYTES = 64 * 1024 * 1024;
const DRAINING = /derrick: (?:server|worker \d+) draining/;

const temp = tempDir('derrick-e2e-lifecycle-');
after(() => temp.cleanup());

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits what a connection received into its HTTP/1.1 answers (each with a Content-Length). */
function parseAnswers(bytes: Buffer): { answers: Parsed[]; rest: number } {
  const answers: Parsed[] = [];
  let at = 0;
  for (;;) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const [statusLine = '', ...lines] = bytes.subarray(at, end).toString('latin1').split('\r\n');
    const headers = Object.fromEntries(
      lines.map((line) => [
        line.slice(0, line.indexOf(':')).toLowerCase(),
        line.slice(line.indexOf(':') + 1).trim(),
      ]),
    );
    const length = Number(headers['content-length'] ?? 0);
    const body = bytes.subarray(end + 4, end + 4 + length);
    answers.push({ status: Number(statusLine.split(' ')[1]), headers, body });
    at = end + 4 + length;
    if (body.length < length) break;
  }
  return { answers, rest: bytes.length - at };
}

/** A connection that sends `GET <blob>` and reads only its first bytes until resume(). */
async function slowDownload(port: number, blobPath: string, secure = false) {
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    : net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  const closed = new Promise<string>((resolve) => {
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.on('close', () => resolve('closed'));
  });
  socket.write(`GET ${blobPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  await new Promise<void>((resolve) =>
    socket.once('data', (chunk: Buffer) => {
      chunks.push(chunk);
      socket.pause();
      resolve();
    }),
  );
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return {
    socket,
    /** Reads on, until the server closes the connection: how it ended, and what came. */
    finish: async () => {
      socket.resume();
      const how = await closed;
      return { how, ...parseAnswers(Buffer.concat(chunks)) };
    },
  };
}

let madePki: Pki | undefined;
const pki = (): Pki => (madePki ??= makePki(path.join(temp.dir, 'pki')));

describe('derrick serve and SIGTERM: the drain', () => {
  let dataDir = '';
  let blobPath = '';
  let blobDigest = '';
  before(async () => {
    const layout = path.join(temp.dir, 'layout');
    await largeImageLayout(layout, BLOB_BYTES, 'v1');
    dataDir = path.join(temp.dir, 'data');
    const result = await publishInto(dataDir, `oci:${layout}:v1`, ['drain/big:v1']);
    const manifest = result.repositories[0]?.tags.v1 ?? assert.fail('not published');
    const server = await startDerrickServer(dataDir, { args: ['--workers', '1'] });
    try {
      const answer = await fetch(`${server.url}/v2/drain/big/manifests/${manifest}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      const { layers } = (await answer.json()) as { layers: { digest: string }[] };
      blobDigest = layers[0]?.digest ?? assert.fail('no layer');
      blobPath = `/v2/drain/big/blobs/${blobDigest}`;
    } finally {
      await server.stop();
    }
  });

  const cases = [
    { workers: 1, secure: false },
    { workers: 2, secure: false },
    { workers: 1, secure: true },
  ];
  for (const { workers, secure } of cases)
    test(`workers ${workers}${secure ? ', over TLS' : ''}: a download in progress at SIGTERM completes; the next request on its connection gets /readyz 503 with Connection: close; exit 0`, async (t) => {
      const tlsArgs = secure ? ['--tls-cert', pki().server.cert, '--tls-key', pki().server.key] : [];
      const server: DerrickServer = await startDerrickServer(dataDir, {
        args: ['--workers', String(workers), ...tlsArgs],
      });
      t.after(() => server.stop());
      const download = await slowDownload(server.port, blobPath, secure);
      const from = server.output().length;
      process.kill(server.pid, 'SIGTERM');
      await server.waitForOutput(DRAINING, { from, count: workers });
      // Sent after the drain began, on the connection whose download is still running.
      download.socket.write('GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const { how, answers, rest } = await download.finish();
      assert.equal(how, 'closed', 'the server closed the connection, no reset');
      assert.equal(rest, 0, 'nothing after the two answers');
      const [blob, ready] = answers;
      assert.equal(blob?.status, 200);
      assert.equal(blob.body.length, BLOB_BYTES, 'the whole blob');
      assert.equal(`sha256:${createHash('sha256').update(blob.body).digest('hex')}`, blobDigest);
      assert.equal(ready?.status, 503);
      assert.equal(ready.headers.connection, 'close');
      assert.equal(
        (JSON.parse(ready.body.toString()) as { checks: { shutdown: string } }).checks.shutdown,
        'failed: draining',
      );
      assert.deepEqual(await server.ended(), { code: 0, signal: null }, server.output());
    });

  test('a download still running after shutdown.drainSeconds is cut then, and the server exits 0', async (t) => {
    const server = await startDerrickServer(dataDir, {
      args: ['--workers', '1', '--shutdown-drain-seconds', '1'],
    });
    t.after(() => server.stop());
    const download = await slowDownload(server.port, blobPath);
    const from = server.output().length;
    process.kill(server.pid, 'SIGTERM');
    await server.waitForOutput(/were cut/, { from });
    const { answers } = await download.finish();
    assert.equal(answers[0]?.status, 200);
    assert.ok(answers[0].body.length < BLOB_BYTES, 'the download was cut short');
    assert.deepEqual(await server.ended(), { code: 0, signal: null }, server.output());
  });
});
