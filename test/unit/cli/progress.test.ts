/**
 * The publish progress renderers, driven by hand: the terminal one writes into a fake TTY stream (isTTY, columns)
 * a total bar and a bar per blob in flight named by its short digest; the JSON one writes one event a line, with a
 * clock the test moves itself (never the real one).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { jsonProgress } from '../../../src/cli/progress-json.ts';
import { shortDigest, terminalProgress } from '../../../src/cli/progress.ts';

const first = `sha256:${'ab12'.repeat(16)}`;
const second = `sha256:${'cd34'.repeat(16)}`;

/** A stream that says it is a 120-column terminal and keeps what is written to it. */
function fakeTerminal(): { stream: NodeJS.WriteStream; written: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  Object.assign(stream, { isTTY: true, columns: 120, rows: 40 });
  return { stream: stream as unknown as NodeJS.WriteStream, written: () => text };
}

describe('terminal progress', () => {
  test('a blob that starts gets a bar of its own, named by its short digest, beside the total bar', () => {
    const { stream, written } = fakeTerminal();
    const progress = terminalProgress(stream);
    progress.phase('copying', 3000);
    progress.blobStart(first, 1000);
    try {
      assert.equal(shortDigest(first), 'ab12ab12ab12');
      assert.match(written(), /copying \[.*\] 0% \| 0 B\/2\.9 KiB/);
      assert.match(written(), / {2}ab12ab12ab12 \[.*\] 0% \| 0 B\/1000 B/);
    } finally {
      progress.done();
    }
  });

  test('a finished blob’s bar is gone from the last frame; the total bar stays', () => {
    const { stream, written } = fakeTerminal();
    const progress = terminalProgress(stream);
    progress.phase('copying', 2000);
    progress.blobStart(first, 1000);
    progress.blobStart(second, 1000);
    progress.blobBytes(first, 1000);
    progress.blobDone(first);
    progress.blobBytes(second, 1000);
    const before = written().length;
    progress.done();
    const last = written().slice(before);
    assert.match(last, /copying \[.*\] 100% \| 2\.0 KiB\/2\.0 KiB/);
    assert.match(last, /cd34cd34cd34 \[.*\] 100% \| 1000 B\/1000 B/);
    assert.ok(!last.includes('ab12ab12ab12'), 'the finished blob is not drawn again');
  });

  test('a note is a line of its own above the bars', () => {
    const { stream, written } = fakeTerminal();
    const progress = terminalProgress(stream);
    progress.phase('copying', 10);
    progress.note('waiting for a running derrick gc to finish');
    progress.done();
    assert.match(written(), /waiting for a running derrick gc to finish\n/);
  });
});

describe('JSON progress', () => {
  test('one event a line: phase, blob start, throttled blob bytes, blob done, end', () => {
    const lines: string[] = [];
    let clock = 0;
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const progress = jsonProgress(stream, () => clock);
    progress.phase('copying', 300);
    progress.blobStart(first, 300);
    progress.blobBytes(first, 100); // within 250 ms of the start: not said
    clock = 300;
    progress.blobBytes(first, 100);
    progress.blobBytes(first, 100); // same instant: not said
    progress.blobDone(first);
    progress.done();
    progress.done(); // once only
    assert.deepEqual(
      lines.map((line) => JSON.parse(line) as unknown),
      [
        { event: 'phase', label: 'copying', totalBytes: 300 },
        { event: 'blob-start', digest: first, size: 300 },
        { event: 'total', done: 200, totalBytes: 300 },
        { event: 'blob', digest: first, size: 300, done: 200 },
        { event: 'blob-done', digest: first, size: 300, done: 300 },
        { event: 'end', done: 300, totalBytes: 300 },
      ],
    );
  });
});
