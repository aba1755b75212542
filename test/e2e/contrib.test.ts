/**
 * The deployment files of contrib/: the systemd unit, checked by systemd's own tools, and the Kubernetes
 * examples, whose configuration is started as a real `derrick serve` (on a file-system tree and on the tests'
 * RGW) and whose probes are asked of it, as the kubelet would (there is no cluster here to apply them to).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { envName, KEY_NAMES } from '../../src/config/keys.ts';
import { freshTree, type BackendName } from '../helpers/backends.ts';
import { REPO_ROOT, runDerrick, tempDir } from '../helpers/cli.ts';
import { startDerrickServer } from '../helpers/derrick-server.ts';
import { singleImageLayout } from '../helpers/images.ts';

const run = promisify(execFile);
const UNIT = path.join(REPO_ROOT, 'contrib', 'derrick.service');

/** The unit with its ExecStart pointed at this checkout's CLI (systemd-analyze checks that the program exists). */
function localUnit(dir: string): string {
  const text = readFileSync(UNIT, 'utf8');
  assert.match(text, /^ExecStart=\/usr\/bin\/derrick serve /m);
  const file = path.join(dir, 'derrick.service');
  writeFileSync(
    file,
    text.replace(
      /^ExecStart=\/usr\/bin\/derrick /m,
      `ExecStart=${process.execPath} ${path.join(REPO_ROOT, 'bin', 'derrick.js')} `,
    ),
  );
  return file;
}

describe('contrib/derrick.service', () => {
  test('systemd-analyze verify finds nothing to say about it', async (t) => {
    const temp = tempDir('derrick-unit-');
    t.after(() => temp.cleanup());
    const { stdout, stderr } = await run('systemd-analyze', ['verify', localUnit(temp.dir)]);
    // An unknown or misspelt key is only a warning to systemd (exit 0): any output counts as a failure here.
    assert.equal(stdout + stderr, '');
  });

  test('systemd-analyze security rates it OK (exposure ≤ 2 of 10) and it hardens what the issue asks', async (t) => {
    const temp = tempDir('derrick-unit-');
    t.after(() => temp.cleanup());
    // --threshold: a non-zero exit above it, in tenths of the printed level (20 = 2.0).
    const { stdout } = await run('systemd-analyze', [
      'security',
      '--offline=yes',
      '--threshold=20',
      localUnit(temp.dir),
    ]);
    assert.match(stdout, /Overall exposure level for derrick\.service: [01]\.\d OK/);
    const text = readFileSync(UNIT, 'utf8');
    for (const line of [
      'DynamicUser=yes',
      'ProtectSystem=strict',
      'ReadOnlyPaths=/srv/registry',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'NoNewPrivileges=yes',
    ])
      assert.ok(text.split('\n').includes(line), line);
    assert.match(text, /kill -s USR2/, 'says how to upgrade');
  });

  test('every DERRICK_* variable it sets is a configuration key', () => {
    const known = new Set(KEY_NAMES.map((key) => envName(key)));
    const set = [...readFileSync(UNIT, 'utf8').matchAll(/^Environment=(DERRICK_\w+)=/gm)].map((m) => m[1]);
    assert.ok(set.length > 0);
    for (const name of set) assert.ok(known.has(name ?? ''), `${name} is no key`);
  });
});

interface Probe {
  httpGet: { path: string; port: string };
}
interface Container {
  args: string[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  ports: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string }[];
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
}
interface Manifest {
  kind: string;
  data?: Record<string, string>;
  spec?: {
    template?: {
      spec: {
        terminationGracePeriodSeconds: number;
        containers: Container[];
        volumes: { name: string; configMap?: { name: string } }[];
      };
    };
  };
  metadata: { name: string };
}

function manifests(file: string): Manifest[] {
  const documents = parseAllDocuments(
    readFileSync(path.join(REPO_ROOT, 'contrib', 'kubernetes', file), 'utf8'),
  );
  return documents.map((document) => {
    assert.deepEqual(document.errors, [], file);
    return document.toJS() as Manifest;
  });
}

async function publishedImage(location: string, env: NodeJS.ProcessEnv): Promise<void> {
  const temp = tempDir('derrick-layout-');
  try {
    await singleImageLayout(temp.dir);
    const published = await runDerrick(
      ['publish', `oci:${temp.dir}:latest`, 'demo/hello', '--data-dir', location],
      {
        env,
      },
    );
    assert.equal(published.code, 0, published.stderr);
  } finally {
    temp.cleanup();
  }
}

for (const [file, backend] of [
  ['derrick.yaml', 'fs'],
  ['derrick-s3.yaml', 's3'],
] as [string, BackendName][]) {
  describe(`contrib/kubernetes/${file}`, () => {
    test('its configuration serves, and the probes answer as the Deployment expects, drain file included', async (t) => {
      const all = manifests(file);
      const deployment = all.find((m) => m.kind === 'Deployment');
      const pod = deployment?.spec?.template?.spec;
      const container = pod?.containers[0];
      assert.ok(pod && container, 'a Deployment with a container');
      const configVolume = pod.volumes.find((v) => v.configMap !== undefined);
      const configMap = all.find(
        (m) => m.kind === 'ConfigMap' && m.metadata.name === configVolume?.configMap?.name,
      );
      const configYaml = configMap?.data?.['config.yaml'];
      assert.ok(configYaml, 'the ConfigMap the pod mounts holds config.yaml');
      const mount = container.volumeMounts.find((m) => m.name === configVolume?.name)?.mountPath;
      assert.deepEqual(container.args, ['serve', '--config', `${mount}/config.yaml`]);
      const config = parseAllDocuments(configYaml)[0]?.toJS() as {
        dataDir: string;
        listen: string;
        shutdown: { drainSeconds: number };
        health: { drainFile: string };
      };
      // SIGTERM comes after preStop; the drain must end before the kubelet's SIGKILL.
      const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
      assert.ok(preStop + config.shutdown.drainSeconds < pod.terminationGracePeriodSeconds);
      assert.equal(container.ports[0]?.containerPort, Number(config.listen.split(':')[1]));
      assert.equal(config.dataDir.startsWith('s3://'), backend === 's3');
      assert.ok(
        container.volumeMounts.some((m) => m.mountPath === path.dirname(config.health.drainFile)),
        'the drain file lives in a mounted, writable directory',
      );

      // The same file, with what only this machine can give: the tree, the address, the drain file's place.
      const spot = await freshTree(backend, t);
      await publishedImage(spot.location, spot.env);
      const temp = tempDir('derrick-k8s-');
      t.after(() => temp.cleanup());
      const configFile = path.join(temp.dir, 'config.yaml');
      writeFileSync(configFile, configYaml);
      const drainFile = path.join(temp.dir, 'drain');
      const server = await startDerrickServer(spot.location, {
        args: ['--config', configFile, '--health-drain-file', drainFile],
        env: spot.env,
      });
      t.after(() => server.stop());
      const ask = async (probe: Probe) => (await fetch(`${server.url}${probe.httpGet.path}`)).status;
      assert.equal(await ask(container.readinessProbe), 200);
      assert.equal(await ask(container.livenessProbe), 200);
      const pulled = await fetch(`${server.url}/v2/demo/hello/tags/list`);
      assert.equal(pulled.status, 200);
      assert.deepEqual(await pulled.json(), { name: 'demo/hello', tags: ['latest'] });
      writeFileSync(drainFile, '');
      assert.equal(await ask(container.readinessProbe), 503, 'draining: out of the Service');
      assert.equal(await ask(container.livenessProbe), 200, 'but alive: not restarted');
      rmSync(drainFile);
      assert.equal(await ask(container.readinessProbe), 200);
    });
  });
}
