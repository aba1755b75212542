/**
 * The bundled build (scripts/build.ts) as it runs: a copy of this checkout is built (the checkout's own dist/ is
 * left alone while other tests use it), and its bin/derrick.js runs with a module-loading hook (`--import` through
 * NODE_OPTIONS, so cluster workers, which inherit the environment, load it too) that writes down every file each
 * process loads. dist/meta.json (esbuild's metafile) says which sources and packages are in which loaded file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, run, runDerrick, tempDir } from '../helpers/cli.ts';
import { startDerrickServer } from '../helpers/derrick-server.ts';
import { largeImageLayout, singleImageLayout } from '../helpers/images.ts';
import { freshBucket, s3Env } from '../helpers/s3.ts';

const temp = tempDir('derrick-bundle-');
after(() => temp.cleanup());
const copy = path.join(temp.dir, 'copy');
const bin = path.join(copy, 'bin', 'derrick.js');
const hooks = path.join(temp.dir, 'hooks');

interface Metafile {
  outputs: Record<string, { inputs: Record<string, unknown> }>;
}
let meta: Metafile;

/** Writes the preload and its hooks: each process appends `<pid> <file>` for every file: module it loads. */
function writeHooks(): void {
  mkdirSync(hooks, { recursive: true });
  writeFileSync(
    path.join(hooks, 'preload.mjs'),
    "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url, { data: process.env.LOADED_LOG });\n",
  );
  writeFileSync(
    path.join(hooks, 'hooks.mjs'),
    [
      "import { appendFileSync } from 'node:fs';",
      'let log;',
      'export function initialize(file) { log = file; }',
      'export async function load(url, context, next) {',
      "  if (url.startsWith('file:')) appendFileSync(log, `${process.pid} ${url}\\n`);",
      '  return next(url, context);',
      '}',
      '',
    ].join('\n'),
  );
}

/** The environment that loads the hooks, logging into `log`. */
function hooked(log: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  writeFileSync(log, '');
  return {
    ...extra,
    LOADED_LOG: log,
    NODE_OPTIONS: `--import=${path.join(hooks, 'preload.mjs')}`,
  };
}

/** pid → the files it loaded, relative to the copy. */
function loadedFiles(log: string): Map<number, string[]> {
  const byPid = new Map<number, string[]>();
  for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
    const [pid = '', url = ''] = line.split(' ');
    const file = path.relative(copy, fileURLToPath(url));
    if (file.startsWith(`..${path.sep}`) && file.includes(`${path.sep}hooks${path.sep}`)) continue; // the hooks
    byPid.set(Number(pid), [...(byPid.get(Number(pid)) ?? []), file]);
  }
  return byPid;
}

/** The npm packages whose code is in the given output files of the bundle. */
function packagesIn(files: string[]): Set<string> {
  const packages = new Set<string>();
  for (const file of files) {
    const output = meta.outputs[file];
    if (!output) continue;
    for (const input of Object.keys(output.inputs)) {
      const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
      if (match?.[1]) packages.add(match[1]);
    }
  }
  return packages;
}

const isSdk = (name: string): boolean => name.startsWith('@aws-sdk/') || name.startsWith('@smithy/');

before(async () => {
  for (const entry of ['bin', 'src', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json'])
    cpSync(path.join(REPO_ROOT, entry), path.join(copy, entry), { recursive: true });
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  await run('npm', ['run', '--silent', 'build'], { cwd: copy });
  meta = JSON.parse(readFileSync(path.join(copy, 'dist', 'meta.json'), 'utf8')) as Metafile;
  writeHooks();
});

describe('the bundled build', () => {
  test('is what bin/derrick.js runs: the entry and its chunks, no module of src/ or node_modules', async () => {
    const log = path.join(temp.dir, 'version.log');
    const result = await runDerrick(['--version'], { bin, env: hooked(log) });
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(readFileSync(path.join(copy, 'package.json'), 'utf8')) as { version: string };
    assert.equal(result.stdout.trim(), manifest.version);
    const [files = [], ...others] = [...loadedFiles(log).values()];
    assert.deepEqual(others, []);
    assert.equal(files[0], path.join('bin', 'derrick.js'));
    assert.ok(files.includes(path.join('dist', 'cli', 'main.js')), files.join(' '));
    const strays = files.filter((file) => file !== files[0] && !file.startsWith(`dist${path.sep}`));
    assert.deepEqual(strays, []);
  });

  test('gives node its flags for `serve` only: a one-shot command starts without them', async () => {
    // Any V8 flag makes node reject the code cache of its built-in modules (~10-20 ms more start-up).
    const preload = path.join(hooks, 'argv.mjs');
    const log = path.join(temp.dir, 'argv.log');
    writeFileSync(
      preload,
      "import { appendFileSync } from 'node:fs';\nappendFileSync(process.env.ARGV_LOG, `${JSON.stringify(process.execArgv)}\\n`);\n",
    );
    writeFileSync(log, '');
    const result = await runDerrick(['--version'], {
      bin,
      env: { ARGV_LOG: log, NODE_OPTIONS: `--import=${preload}` },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['[]']);
  });

  test('holds zod’s English messages only, and gives a bad configuration the same line as the sources do', async () => {
    const locales = Object.values(meta.outputs)
      .flatMap((output) => Object.keys(output.inputs))
      .filter((input) => /node_modules\/zod\/v4\/locales\//.test(input))
      .map((input) => path.basename(input))
      .sort();
    assert.deepEqual(locales, ['en.js', 'index.js']);
    const config = path.join(temp.dir, 'bad.yaml');
    writeFileSync(config, 'workers: -3\nbogus: 1\n');
    const args = ['serve', '--config', config, '--data-dir', temp.dir];
    const bundled = await runDerrick(args, { bin });
    const fromSource = await runDerrick(args);
    assert.equal(bundled.code, fromSource.code);
    assert.match(bundled.stderr, /^derrick: invalid configuration: .*bad\.yaml: /);
    assert.equal(bundled.stderr, fromSource.stderr);
  });

  test('maps a stack trace to src/ through its source maps with DERRICK_DEBUG, and prints none without', async () => {
    const missing = path.join(temp.dir, 'no-such-tree');
    const plain = await runDerrick(['ls', '--data-dir', missing], { bin });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /^derrick: .*no-such-tree/);
    assert.doesNotMatch(plain.stderr, /\n\s+at /);
    const debug = await runDerrick(['ls', '--data-dir', missing], { bin, env: { DERRICK_DEBUG: '1' } });
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /\n\s+at .*src\/store\/[\w-]+\.ts:\d+:\d+/, debug.stderr);
  });

  test('serves a tree on a file system from the bundle in the primary and each cluster worker, node started by bin’s exec line, without the S3 SDK', async () => {
    const dataDir = path.join(temp.dir, 'fs-data');
    const layout = path.join(temp.dir, 'layout-small');
    await singleImageLayout(layout);
    const published = await runDerrick(
      ['publish', `oci:${layout}:latest`, 'demo/app', '--data-dir', dataDir],
      {
        bin,
      },
    );
    assert.equal(published.code, 0, published.stderr);
    const log = path.join(temp.dir, 'serve-fs.log');
    const server = await startDerrickServer(dataDir, { bin, env: hooked(log), args: ['--workers', '2'] });
    try {
      const answer = await fetch(`${server.url}/v2/demo/app/tags/list`);
      assert.equal(answer.status, 200);
      // Run as a program, bin/derrick.js execs node on itself (its exec line): no shell is left in between, and
      // the workers run the same file.
      for (const pid of loadedFiles(log).keys()) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        assert.equal(path.basename(argv[0] ?? ''), 'node', `${pid}: ${argv.join(' ')}`);
        assert.ok(argv.includes(bin), `${pid}: ${argv.join(' ')}`);
        // `serve` gets the exec line's node flags, in the primary and (inherited) in every worker.
        assert.ok(argv.includes('--max-semi-space-size=8'), `${pid}: ${argv.join(' ')}`);
      }
    } finally {
      await server.stop();
    }
    const byPid = loadedFiles(log);
    assert.equal(byPid.size, 3, `a primary and 2 workers: ${[...byPid.keys()].join(' ')}`);
    assert.ok(byPid.has(server.pid));
    for (const [pid, files] of byPid) {
      assert.ok(files.includes(path.join('dist', 'cli', 'main.js')), `${pid}: ${files.join(' ')}`);
      const strays = files.filter(
        (file) => file !== path.join('bin', 'derrick.js') && !file.startsWith(`dist${path.sep}`),
      );
      assert.deepEqual(strays, [], `${pid} loaded modules from outside the bundle`);
      const packages = packagesIn(files);
      assert.ok(packages.has('fastify'), `${pid} serves without fastify? ${[...packages].join(' ')}`);
      assert.deepEqual([...packages].filter(isSdk), [], `${pid} loaded the S3 SDK for a file-system tree`);
    }
  });

  test('loads the S3 SDK for an s3:// tree, and a multipart publish hashes its parts on the bundled worker', async (t) => {
    const env = await s3Env();
    const location = `s3://${await freshBucket(t)}/tree`;
    const layout = path.join(temp.dir, 'layout-large');
    // Above 1 MiB a blob goes up in 8 MiB parts, each hashed on the part-hasher's worker thread.
    await largeImageLayout(layout, 9 * 1024 * 1024);
    const publishLog = path.join(temp.dir, 'publish-s3.log');
    const published = await runDerrick(
      ['publish', `oci:${layout}:latest`, 'big/app', '--data-dir', location, '-q'],
      { bin, env: hooked(publishLog, { ...env }) },
    );
    assert.equal(published.code, 0, published.stderr);
    const [publishFiles = []] = [...loadedFiles(publishLog).values()];
    assert.ok([...packagesIn(publishFiles)].some(isSdk), publishFiles.join(' '));

    const log = path.join(temp.dir, 'serve-s3.log');
    const server = await startDerrickServer(location, {
      bin,
      env: hooked(log, { ...env }),
      args: ['--workers', '1', '--mode', 'serve'],
    });
    try {
      const manifest = await fetch(`${server.url}/v2/big/app/manifests/latest`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(manifest.status, 200);
      const { layers } = (await manifest.json()) as { layers: { digest: string }[] };
      const digest = layers[0]?.digest ?? '';
      const blob = await fetch(`${server.url}/v2/big/app/blobs/${digest}`);
      assert.equal(blob.status, 200);
      const bytes = Buffer.from(await blob.arrayBuffer());
      assert.equal(bytes.length, 9 * 1024 * 1024);
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest);
    } finally {
      await server.stop();
    }
    const [files = []] = [...loadedFiles(log).values()];
    assert.ok([...packagesIn(files)].some(isSdk), `no S3 SDK loaded: ${files.join(' ')}`);
  });
});
