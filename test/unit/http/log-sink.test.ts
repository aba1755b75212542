/**
 * The batched stdout of the server's log lines (src/http/log-sink.ts): lines wait for a batch or the flush delay,
 * keep their order, are all written when the process exits, and a reader that has gone costs no crash.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { LineSink } from '../../../src/http/log-sink.ts';
import { tempDir } from '../../helpers/cli.ts';

const SINK = path.resolve(import.meta.dirname, '../../../src/http/log-sink.ts');

describe('LineSink', () => {
  const temp = tempDir();
  after(() => temp.cleanup());

  /** Runs `body` with a sink on a new file of the temp dir and a reader of that file, then closes the file. */
  async function withSink(
    name: string,
    options: { batchBytes: number; flushMs: number },
    body: (sink: LineSink, written: () => string) => void | Promise<void>,
  ): Promise<void> {
    const file = path.join(temp.dir, name);
    const fd = openSync(file, 'w');
    try {
      await body(new LineSink(fd, options.batchBytes, options.flushMs), () => readFileSync(file, 'utf8'));
    } finally {
      closeSync(fd);
    }
  }

  test('lines wait for the flush delay, then go out in order in one write', () =>
    withSink('delay.log', { batchBytes: 1024 * 1024, flushMs: 50 }, async (sink, written) => {
      for (let i = 0; i < 100; i++) sink.write(`line ${i}\n`);
      assert.equal(written(), '', 'nothing written before the delay');
      await sleep(200);
      assert.deepEqual(
        written().trimEnd().split('\n'),
        Array.from({ length: 100 }, (_, i) => `line ${i}`),
      );
    }));

  test('a full batch is written at once, without waiting for the delay', () =>
    withSink('batch.log', { batchBytes: 1000, flushMs: 60_000 }, (sink, written) => {
      const line = `${'x'.repeat(99)}\n`;
      for (let i = 0; i < 10; i++) sink.write(line);
      assert.equal(written(), line.repeat(10));
      sink.write('pending\n');
      assert.equal(written().length, 1000, 'a partial batch waits');
      sink.flush();
      assert.equal(written(), `${line.repeat(10)}pending\n`);
    }));

  test('a warning or an error goes out at once, after the lines before it', () =>
    withSink('urgent.log', { batchBytes: 1024 * 1024, flushMs: 60_000 }, (sink, written) => {
      sink.write('{"level":30,"msg":"request"}\n');
      sink.write('{"level":20,"msg":"debug"}\n');
      assert.equal(written(), '');
      sink.write('{"level":40,"msg":"failed login"}\n');
      assert.equal(
        written(),
        '{"level":30,"msg":"request"}\n{"level":20,"msg":"debug"}\n{"level":40,"msg":"failed login"}\n',
      );
      sink.write('{"level":50,"msg":"error"}\n');
      assert.match(written(), /"error"\}\n$/);
    }));

  test('what is pending is written when the process exits, by process.exit or by an uncaught error', () => {
    for (const end of ['process.exit(3)', "throw new Error('boom')"]) {
      const script = `import { stdoutLines } from ${JSON.stringify(SINK)};
        const sink = stdoutLines();
        for (let i = 0; i < 1000; i++) sink.write('line ' + i + '\\n');
        setTimeout(() => { ${end}; }, 10);`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
      });
      assert.notEqual(run.status, 0, end);
      const lines = run.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 1000, `${end}: ${run.stderr}`);
      assert.equal(lines[999], 'line 999');
    }
  });

  test('a reader that has gone (EPIPE) drops the lines and the process goes on', () => {
    const script = `import { stdoutLines } from ${JSON.stringify(SINK)};
      const sink = stdoutLines();
      for (let i = 0; i < 5000; i++) sink.write('x'.repeat(100) + '\\n');
      sink.flush();
      process.stderr.write('still here');`;
    // stdout is a pipe whose reading end is closed at once: `| true`.
    const run = spawnSync(
      'sh',
      ['-c', `${JSON.stringify(process.execPath)} --import tsx --input-type=module -e "$SCRIPT" | true`],
      { encoding: 'utf8', env: { ...process.env, SCRIPT: script } },
    );
    assert.match(run.stderr, /still here/);
    assert.doesNotMatch(run.stderr, /EPIPE|Error/);
  });
});
