/**
 * What `--data-dir` must be. Every command but publish and migrate works on a published tree (a directory with
 * `v2/` inside) and refuses anything else with one line — `derrick: no published tree at /x (no v2/ inside):
 * publish into it first, or pass --data-dir` — creating nothing; publish and migrate start a tree only in a new or
 * empty directory; a --data-dir that is a file is one line for every command, never a stack trace.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, freshTree } from '../helpers/backends.ts';
import { REPO_ROOT, runDerrickWithoutServing, tempDir, type RunResult } from '../helpers/cli.ts';
import { openTree } from '../helpers/server.ts';

const temp = tempDir('derrick-cli-tree-');
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);
const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
/** DERRICK_DEBUG would add a stack to every error; these tests check what users see. */
const env = { DERRICK_DEBUG: '' };

let pulpDir = '';
before(async () => {
  pulpDir = fresh('pulp');
  await fs.mkdir(path.join(pulpDir, 'v2', 'app'), { recursive: true });
  await fs.writeFile(
    path.join(pulpDir, 'v2', 'app', 'one.json'),
    JSON.stringify({
      type: 'pulp-docker-redirect',
      version: 3,
      repository: 'one',
      'repo-registry-id': 'team/one',
      url: 'https://pulp.example.com/pulp/docker/v2/one/',
      protected: false,
      schema2_data: ['latest'],
    }),
  );
});

/**
 * Runs `derrick <args>`; a `serve` that starts serving after all is stopped at once, so a test that should see a
 * refusal fails instead of hanging.
 */
function derrick(args: string[], cwd?: string): Promise<RunResult & { served: boolean }> {
  return runDerrickWithoutServing(args, { env, ...(cwd === undefined ? {} : { cwd }) });
}

/** `derrick <args> --data-dir <dataDir>`; `__PULP__` in `args` stands for the Pulp tree (the tables below are written before it exists). */
function derrickOn(args: readonly string[], dataDir: string): Promise<RunResult & { served: boolean }> {
  return derrick([...args.map((arg) => (arg === '__PULP__' ? pulpDir : arg)), '--data-dir', dataDir]);
}

/** Every path below `dir`, directories included (an empty directory made by mistake counts). */
async function everything(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true }).catch(() => undefined);
  return entries === undefined ? ['(absent)'] : entries.sort();
}

/** One `derrick: ` line on stderr, exit 1, no stack trace. */
function assertOneLine(result: RunResult & { served: boolean }, pattern: RegExp): void {
  assert.equal(result.served, false, `it served:\n${result.stderr}`);
  assert.equal(result.code, 1, result.stderr);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  assert.match(result.stderr, /^derrick: [^\n]+\n$/, 'exactly one line');
  assert.match(result.stderr, pattern);
}

const READERS: [string, string[]][] = [
  ['ls', ['ls']],
  ['ls --json', ['ls', '--json']],
  ['verify', ['verify']],
  ['gc', ['gc']],
  ['gc --dry-run', ['gc', '--dry-run']],
  ['unpublish a/b:1', ['unpublish', 'a/b:1']],
  ['unpublish a/b', ['unpublish', 'a/b']],
  // One serving process, and a cluster primary: each checks before it serves (or forks).
  ['serve --workers 1', ['serve', '--workers', '1', '--listen', '127.0.0.1:0', '--no-access-log']],
  ['serve --workers 2', ['serve', '--workers', '2', '--listen', '127.0.0.1:0', '--no-access-log']],
];

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// File system only, the shapes a directory can have; an S3 prefix's are in s3-cli-errors.test.ts.
describe('a --data-dir that holds no published tree', { concurrency: 4 }, () => {
  for (const [what, args] of READERS) {
    test(`derrick ${what} on a directory without v2/ → exit 1, "no published tree at <dir> (no v2/ inside)", creates nothing`, async () => {
      const dataDir = fresh('plain');
      await fs.mkdir(dataDir);
      await fs.writeFile(path.join(dataDir, 'notes.txt'), 'not a tree\n');
      const result = await derrickOn(args, dataDir);
      assertOneLine(
        result,
        new RegExp(
          `^derrick: no published tree at ${escape(dataDir)} \\(no v2/ inside\\): publish into it first, or pass --data-dir\\n$`,
        ),
      );
      assert.deepEqual(await everything(dataDir), ['notes.txt']);
    });

    test(`derrick ${what} on an empty directory → exit 1, "no published tree", creates nothing`, async () => {
      const dataDir = fresh('empty');
      await fs.mkdir(dataDir);
      assertOneLine(await derrickOn(args, dataDir), /^derrick: no published tree at .* \(no v2\/ inside\)/);
      assert.deepEqual(await everything(dataDir), []);
    });

    test(`derrick ${what} on a directory that does not exist → exit 1, "no published tree", does not create it`, async () => {
      const parent = fresh('parent');
      await fs.mkdir(parent);
      const dataDir = path.join(parent, 'data');
      assertOneLine(
        await derrickOn(args, dataDir),
        new RegExp(`^derrick: no published tree at ${escape(dataDir)} \\(the directory does not exist\\)`),
      );
      assert.deepEqual(await everything(parent), []);
    });
  }

  test('a relative --data-dir is named by its absolute path', async () => {
    const cwd = fresh('cwd');
    await fs.mkdir(cwd);
    const result = await derrick(['ls', '--data-dir', 'data'], cwd);
    assertOneLine(result, new RegExp(`^derrick: no published tree at ${escape(path.join(cwd, 'data'))} `));
  });

  test('derrick serve with no --data-dir in a directory without ./data → exit 1, names ./data, creates nothing', async () => {
    const cwd = fresh('cwd');
    await fs.mkdir(cwd);
    const result = await derrick(['serve', '--listen', '127.0.0.1:0', '--no-access-log'], cwd);
    assertOneLine(result, new RegExp(`^derrick: no published tree at ${escape(path.join(cwd, 'data'))} `));
    assert.deepEqual(await everything(cwd), []);
  });

  test('a tree with nothing published in it yet (v2/ only) is a tree: ls lists nothing, exit 0', async () => {
    const dataDir = fresh('bare');
    await fs.mkdir(path.join(dataDir, 'v2'), { recursive: true });
    const result = await derrick(['ls', '--data-dir', dataDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout + result.stderr, '');
  });
});

/** Whether `location` holds a published record of `name` (read through the tree, on either back end). */
async function published(location: string, name: string): Promise<boolean> {
  const tree = await openTree(location);
  try {
    return (await tree.readRecord(name)).found;
  } finally {
    await tree.backend.close();
  }
}

for (const backend of BACKENDS)
  describe(backend, { concurrency: 2 }, () => {
    // A directory that does not exist, or a prefix of a new bucket with nothing under it.
    test('publish where nothing is yet creates the tree', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await derrick(['publish', '-q', demo, 'demo/hello', '--data-dir', location]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await published(location, 'demo/hello'), true);
    });

    test('migrate where nothing is yet creates the tree', async (t) => {
      const { location } = await freshTree(backend, t);
      const result = await derrick(['migrate', pulpDir, '--data-dir', location]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await published(location, 'team/one'), true);
    });
  });

// File system only: what an existing directory holds decides (an S3 prefix's refusal is in s3-cli-errors.test.ts).
describe('publish and migrate start a tree only where nothing else is', { concurrency: 4 }, () => {
  test('publish into an empty directory creates the tree', async () => {
    const dataDir = fresh('empty');
    await fs.mkdir(dataDir);
    const result = await derrick(['publish', '-q', demo, 'demo/hello', '--data-dir', dataDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await fs.stat(path.join(dataDir, 'v2', 'app', 'demo', 'hello.json'))).isFile());
  });

  for (const [what, args] of [
    ['publish', ['publish', demo, 'demo/hello']],
    ['migrate', ['migrate', '__PULP__']],
    ['migrate --dry-run', ['migrate', '__PULP__', '--dry-run']],
  ] as const) {
    test(`${what} into a non-empty directory without v2/ → exit 1, says it is not empty and holds no tree, creates nothing`, async () => {
      const dataDir = fresh('home');
      await fs.mkdir(dataDir);
      await fs.writeFile(path.join(dataDir, 'thesis.tex'), 'mine\n');
      const result = await derrickOn(args, dataDir);
      assertOneLine(
        result,
        new RegExp(
          `^derrick: ${escape(dataDir)} is not empty and holds no published tree \\(no v2/ inside\\): publish into a new or empty directory`,
        ),
      );
      assert.deepEqual(await everything(dataDir), ['thesis.tex']);
    });
  }
});

// File system only: a --data-dir that is a file (an s3:// location names no file).
describe('a --data-dir that is a file', { concurrency: 4 }, () => {
  const commands: [string, string[]][] = [
    ...READERS,
    ['publish', ['publish', demo, 'demo/hello']],
    ['migrate', ['migrate', '__PULP__']],
  ];
  for (const [what, args] of commands) {
    test(`derrick ${what} --data-dir <a file> → exit 1, one line naming the file as not a directory, the file untouched`, async () => {
      const file = fresh('file');
      await fs.writeFile(file, 'a file\n');
      const result = await derrickOn(args, file);
      assertOneLine(
        result,
        new RegExp(`^derrick: --data-dir ${escape(file)} is a file, not a directory: pass --data-dir `),
      );
      assert.equal(await fs.readFile(file, 'utf8'), 'a file\n');
    });
  }

  test('derrick ls --data-dir <file>/sub (a path through a file) → exit 1, one line saying a component is a file', async () => {
    const file = fresh('file');
    await fs.writeFile(file, 'a file\n');
    assertOneLine(
      await derrick(['ls', '--data-dir', path.join(file, 'sub')]),
      /a component of the path is a file, not a directory/,
    );
  });
});
