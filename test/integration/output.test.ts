/**
 * What publish prints: progress bars on a terminal, plain lines on a pipe, with --json the JSON result alone on
 * stdout and progress as JSON lines on stderr; the same publishing into a tree on either back end.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BACKENDS, freshTree } from '../helpers/backends.ts';
import { CLI, REPO_ROOT, run, runDerrick } from '../helpers/cli.ts';

const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;

for (const backend of BACKENDS)
  describe(backend, { concurrency: 4 }, () => {
    test('on a terminal: a progress bar with bytes, rate and ETA', async (t) => {
      const { location } = await freshTree(backend, t);
      // script(1) gives the CLI a pseudo-terminal, as a person at a shell would.
      const command = `${process.execPath} --import tsx ${CLI} publish ${demo} tty/demo --data-dir ${location}`;
      const { stdout } = await run('script', ['-qec', command, '/dev/null']);
      assert.match(stdout, /copying \[.*\] 100% \| 1\.1 KiB\/1\.1 KiB \| [\d.]+ [KMG]?i?B\/s \| ETA \d+s/);
      assert.match(stdout, /published tty\/demo:latest sha256:/);
    });

    test('on a pipe: the result on stdout, no progress on stderr, no terminal control codes', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await runDerrick(['publish', demo, 'pipe/demo', '--data-dir', location]);
      assert.equal(result.code, 0);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, /^published pipe\/demo:latest sha256:/);
      assert.ok(!result.stdout.includes('\u001b['), 'no terminal escape codes');
    });

    test('on a pipe with --verbose: progress as plain lines on stderr, no terminal control codes', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await runDerrick(['publish', demo, 'verbose/demo', '--verbose', '--data-dir', location]);
      assert.equal(result.code, 0);
      assert.equal(result.stderr, 'copying 1.1 KiB\n');
      assert.ok(!(result.stdout + result.stderr).includes('\u001b['), 'no terminal escape codes');
    });

    test('with --json: the JSON result alone on stdout, progress as JSON lines on stderr', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await runDerrick(['publish', demo, 'json/demo', '--json', '--data-dir', location]);
      assert.equal(result.code, 0, result.stderr);
      const parsed = JSON.parse(result.stdout) as {
        repositories: { name: string }[];
        manifests: number;
        blobsCopied: number;
        bytesCopied: number;
      };
      assert.equal(parsed.repositories[0]?.name, 'json/demo');
      assert.equal(parsed.manifests, 3);
      const events = result.stderr
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { event: string; digest?: string; size?: number; done?: number });
      assert.deepEqual(events[0], { event: 'phase', label: 'copying', totalBytes: parsed.bytesCopied });
      assert.deepEqual(events.at(-1), {
        event: 'end',
        done: parsed.bytesCopied,
        totalBytes: parsed.bytesCopied,
      });
      const started = events.filter((event) => event.event === 'blob-start');
      const ended = events.filter((event) => event.event === 'blob-done');
      assert.equal(started.length, parsed.blobsCopied);
      assert.deepEqual(
        ended.map((event) => event.digest).sort(),
        started.map((event) => event.digest).sort(),
      );
      for (const event of ended) assert.equal(event.done, event.size, `${event.digest ?? ''} copied whole`);
      assert.ok(!result.stderr.includes('\u001b['), 'no terminal escape codes');
    });

    test('with --json --quiet: the JSON result and nothing on stderr', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await runDerrick(['publish', demo, 'json/demo', '--json', '-q', '--data-dir', location]);
      assert.equal(result.code, 0);
      assert.equal(result.stderr, '');
      assert.equal((JSON.parse(result.stdout) as { manifests: number }).manifests, 3);
    });

    test('with --quiet: nothing at all', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await runDerrick(['publish', demo, 'quiet/demo', '-q', '--data-dir', location]);
      assert.equal(result.code, 0);
      assert.equal(result.stdout + result.stderr, '');
    });
  });

// No tree: usage errors are said before any tree is opened.
describe('publish usage errors', { concurrency: 2 }, () => {
  test('--verbose with --quiet is a usage error', async () => {
    const result = await runDerrick(['publish', demo, 'both/demo', '-v', '-q']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--quiet.*--verbose|--verbose.*--quiet/);
  });

  test('an unknown option is a usage error with exit status 2', async () => {
    const result = await runDerrick(['publish', '--nope']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'derrick: unknown option --nope for derrick publish; see derrick publish --help\n',
    );
  });
});
