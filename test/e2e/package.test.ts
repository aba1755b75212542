/**
 * derrick as npm users get it: a copy of this checkout is packed with `npm pack` (its prepack and prepare
 * scripts build dist/ afresh, the bundle of scripts/build.ts; the copy keeps the checkout's own dist/ untouched while other tests use it), the
 * tarball is installed with `npm install -g --prefix <temp>`, and the installed `<prefix>/bin/derrick` runs the
 * README's demo: publish the bundled demo image, serve it, and let skopeo inspect it.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { digestOf, REPO_ROOT, run, runDerrick, tempDir } from '../helpers/cli.ts';
import { containersClientConfig } from '../helpers/containers.ts';
import { startDerrickServer } from '../helpers/derrick-server.ts';

const temp = tempDir('derrick-package-');
after(() => temp.cleanup());

interface Manifest {
  version: string;
  dependencies: Record<string, string>;
}

const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as Manifest;
const source = path.join(temp.dir, 'source');
const prefix = path.join(temp.dir, 'prefix');
const bin = path.join(prefix, 'bin', 'derrick');
const installed = path.join(prefix, 'lib', 'node_modules', 'derrick');
// The installed bin starts with `#!/usr/bin/env node`: make that the node running this test.
const env = { PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
const npm = (args: string[], cwd: string) =>
  run('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund'], { cwd, env });
let packed: string[] = [];

before(async () => {
  const skip = new Set(
    ['.git', 'node_modules', 'dist', 'data', '.s3', 'bench/out'].map((entry) => path.join(REPO_ROOT, entry)),
  );
  cpSync(REPO_ROOT, source, { recursive: true, filter: (file) => !skip.has(file) });
  // The build needs the dev dependencies (typescript); the tarball must not.
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(source, 'node_modules'));
  // What an earlier build left behind, from a source file since removed: prepack clears it.
  mkdirSync(path.join(source, 'dist', 'removed'), { recursive: true });
  writeFileSync(path.join(source, 'dist', 'removed', 'module.js'), 'export {};\n');
  const tarballs = path.join(temp.dir, 'tarballs');
  mkdirSync(tarballs);
  const pack = await npm(['pack', '--json', '--pack-destination', tarballs], source);
  const [result] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  assert.ok(result, `npm pack printed no result: ${pack.stdout}`);
  packed = result.files.map((file) => file.path).sort();
  await npm(['install', '--global', '--prefix', prefix, path.join(tarballs, result.filename)], temp.dir);
});

describe('npm install -g of the packed tarball', () => {
  test('packs the CLI as bundled now, its bin, the demo image and the record schema, and no sources or tests', () => {
    for (const file of [
      'bin/derrick.js',
      'dist/cli/main.js',
      'dist/cli/main.js.map',
      'demo/hello/index.json',
      'docs/record.schema.json',
      'package.json',
      'README.md',
    ])
      assert.ok(packed.includes(file), `${file} is not in the tarball: ${packed.join(' ')}`);
    assert.ok(
      packed.some((file) => /^dist\/chunks\/serve-[\w-]+\.js$/.test(file)),
      `no serve chunk: ${packed.join(' ')}`,
    );
    const strays = packed.filter(
      (file) =>
        /^(src|test|scripts|bench|node_modules|dist\/removed)\/|\.ts$/.test(file) ||
        (file.endsWith('.map') && !file.startsWith('dist/')),
    );
    assert.deepEqual(strays, []);
  });

  test('installs no devDependencies, and the installed bundle imports only node built-ins and dependencies', () => {
    const modules = new Set(readdirSync(path.join(installed, 'node_modules')));
    for (const dev of ['tsx', 'typescript', 'eslint', 'prettier', 'fast-check'])
      assert.ok(!modules.has(dev), `${dev} was installed with derrick`);
    const allowed = new Set([...builtinModules, ...Object.keys(manifest.dependencies)]);
    const imported = new Set<string>();
    const add = (specifier: string): void => {
      imported.add(specifier.replace(/^node:/, '').replace(/^((?:@[^/]+\/)?[^/]+).*$/, '$1'));
    };
    // What the bundle imports, static, dynamic or require(): esbuild's metafile of the packed build lists it.
    const meta = JSON.parse(readFileSync(path.join(source, 'dist', 'meta.json'), 'utf8')) as {
      outputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
    };
    for (const output of Object.values(meta.outputs))
      for (const { path: specifier, external } of output.imports) if (external === true) add(specifier);
    // And createRequire(import.meta.url)('x'), which esbuild leaves alone: found in the installed files.
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (entry.name.endsWith('.js')) {
          const text = readFileSync(file, 'utf8');
          for (const [, specifier = ''] of text.matchAll(/\(import\.meta\.url\)\(["']([^"'.][^"']*)["']\)/g))
            add(specifier);
        }
      }
    };
    walk(path.join(installed, 'dist'));
    // Bundled packages are no imports; what src/ loads with createRequire only when used stays one.
    assert.ok(imported.has('yaml') && imported.has('picomatch'), [...imported].join(' '));
    assert.ok(!imported.has('fastify') && !imported.has('zod'), [...imported].join(' '));
    assert.deepEqual(
      [...imported].filter((name) => !allowed.has(name)),
      [],
    );
  });

  test('gives a derrick that prints the version its package.json holds', async () => {
    const first = await runDerrick(['--version'], { bin, env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.trim(), manifest.version);
    // Read at run time, not compiled in: what `npm version` writes is what --version says.
    const installedManifest = path.join(installed, 'package.json');
    const text = readFileSync(installedManifest, 'utf8');
    writeFileSync(installedManifest, text.replace(/"version": "[^"]*"/, '"version": "9.8.7-test.1"'));
    try {
      const second = await runDerrick(['--version'], { bin, env });
      assert.equal(second.stdout.trim(), '9.8.7-test.1');
    } finally {
      writeFileSync(installedManifest, text);
    }
  });

  test('gives a derrick that publishes the bundled demo image and serves it to skopeo', async () => {
    const dataDir = path.join(temp.dir, 'data');
    const published = await runDerrick(
      ['publish', `oci:${path.join(installed, 'demo', 'hello')}:latest`, 'demo/hello', '--data-dir', dataDir],
      { bin, env, cwd: temp.dir },
    );
    assert.equal(published.code, 0, published.stderr);
    const [, digest] = /^published demo\/hello:latest (sha256:[0-9a-f]{64})$/m.exec(published.stdout) ?? [];
    assert.ok(digest, published.stdout);

    const server = await startDerrickServer(dataDir, { bin, env });
    try {
      const { policy, env: clientEnv } = containersClientConfig(path.join(temp.dir, 'client'));
      const skopeo = (args: string[]) =>
        run('skopeo', ['--policy', policy, 'inspect', '--tls-verify=false', ...args], { env: clientEnv });
      const raw = await skopeo(['--raw', `docker://${server.host}/demo/hello`]);
      assert.equal(digestOf(raw.stdout), digest, 'the index skopeo got is the one published');
      const inspected = await skopeo([`docker://${server.host}/demo/hello`]);
      assert.equal((JSON.parse(inspected.stdout) as { Name: string }).Name, `${server.host}/demo/hello`);
    } finally {
      const stopped = await server.stop();
      assert.equal(stopped.killed, false, server.output());
    }
  });
});
