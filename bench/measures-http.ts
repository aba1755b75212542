/**
 * The HTTP servers the load runs compare, and the measures run against them while they all run.
 *
 * `startServers` starts nginx on the main tree's v2/web, derrick in redirect mode (redirecting to that nginx), in
 * redirect mode with every repository behind a login (bench/measures-auth.ts) and in serve mode, docker-registry
 * loaded with the same images, and bare node:http servers answering derrick's own 302 (or `/v2/`'s 200) to every
 * request, as many processes as derrick runs.
 *
 * `httpMeasures` runs, in groups of alternating runs (bench/summary.ts): `GET /v2/`, the manifest HEAD with Basic
 * and bearer credentials, manifest GET and HEAD by tag and by digest (redirect and serve mode, against
 * docker-registry and the bare 302), the 1 MiB blob (its redirect; its bytes against nginx) and, full size only,
 * sequential curl downloads of the 1 GiB blob against nginx.
 */
import path from 'node:path';
import { loadIntoDockerRegistry } from './fixtures.ts';
import { median, processTree, runDownloads, type LoadResult } from './load.ts';
import { startAuthDerrick, type AuthServer } from './measures-auth.ts';
import {
  MANIFEST_ACCEPT,
  request,
  startBareServer,
  startDerrick,
  startDockerRegistry,
  startNginxServer,
  type BenchServer,
  type FixedResponse,
} from './servers.ts';
import {
  compareRow,
  count,
  describe,
  elapsedSeconds,
  fmt,
  get,
  log,
  roundsNote,
  runGroup,
  tidy,
  type Probe,
  type Summary,
} from './summary.ts';
import type { Fixtures, Plan, Row } from './types.ts';

export interface Servers {
  nginx: BenchServer;
  redirect: BenchServer;
  /** derrick in redirect mode with every repository behind a login. */
  login: AuthServer;
  serve: BenchServer;
  registry: BenchServer;
  bare200: BenchServer;
  bare302: BenchServer;
}

/** derrick's own answer to `path`, without the headers that change per response or per connection. */
async function fixedAnswer(
  server: BenchServer,
  urlPath: string,
  headers: Record<string, string>,
): Promise<FixedResponse> {
  const answer = await request(`${server.url}${urlPath}`, { headers });
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(name)) continue;
    if (typeof value === 'string') kept[name] = value;
  }
  return { status: answer.status, headers: kept, body: answer.body.toString() };
}

export async function startServers(
  fixtures: Fixtures,
  workDir: string,
  workers: number | undefined,
): Promise<Servers> {
  const started = Date.now();
  const nginx = await startNginxServer(path.join(fixtures.dataDir, 'v2', 'web'));
  const registryLoaded = (async () => {
    const registry = await startDockerRegistry(workDir);
    const loadStarted = Date.now();
    // The 10,000 tags as the link files a manifest PUT leaves (checked over HTTP): 10,000 PUTs take ~40 s.
    await loadIntoDockerRegistry(fixtures, registry.port, {
      storageDir: path.join(workDir, 'docker-registry', 'storage'),
    });
    log(`docker-registry loaded in ${fmt(elapsedSeconds(loadStarted))} s`);
    return registry;
  })();
  const [redirect, serve, registry, login] = await Promise.all([
    startDerrick({
      dataDir: fixtures.dataDir,
      mode: 'redirect',
      redirectUrl: nginx.url,
      ...(workers === undefined ? {} : { workers }),
    }),
    startDerrick({ dataDir: fixtures.dataDir, mode: 'serve', ...(workers === undefined ? {} : { workers }) }),
    registryLoaded,
    startAuthDerrick(fixtures, { redirectUrl: nginx.url, workers, repository: fixtures.image.name }),
  ]);
  // The bare servers run as many processes as derrick serves with: its workers, or itself alone.
  const derrickProcesses = processTree(redirect.pid).length;
  const bareWorkers = Math.max(1, derrickProcesses - 1);
  const { image } = fixtures;
  const accept = { accept: MANIFEST_ACCEPT };
  const answer302 = await fixedAnswer(redirect, `/v2/${image.name}/manifests/${image.tag}`, accept);
  if (answer302.status !== 302)
    throw new Error(`derrick (redirect) answered a manifest GET with ${answer302.status}`);
  const answer200 = await fixedAnswer(redirect, '/v2/', {});
  const [bare302, bare200] = await Promise.all([
    startBareServer(workDir, answer302, { workers: bareWorkers, name: 'node:http 302' }),
    startBareServer(workDir, answer200, { workers: bareWorkers, name: 'node:http 200' }),
  ]);
  log(
    `servers up in ${fmt(elapsedSeconds(started))} s (derrick: ${derrickProcesses} processes; bare node:http: ${bareWorkers} worker${bareWorkers > 1 ? 's' : ''})`,
  );
  return { nginx, redirect, serve, registry, login, bare200, bare302 };
}

export async function httpMeasures(fixtures: Fixtures, servers: Servers, plan: Plan): Promise<Row[]> {
  const rows: Row[] = [];
  const { image, blob1MiB } = fixtures;
  const accept = { accept: MANIFEST_ACCEPT };
  const c = plan.connections;
  const byTag = `/v2/${image.name}/manifests/${image.tag}`;
  const byDigest = `/v2/${image.name}/manifests/${image.digest}`;
  // docker-registry's digest for the same image (the one it answers the tag with; the same bytes unless converted).
  const registryDigest = String(
    (await request(`${servers.registry.url}${byTag}`, { method: 'HEAD', headers: accept })).headers[
      'docker-content-digest'
    ] ?? image.digest,
  );
  const registryByDigest = `/v2/${image.name}/manifests/${registryDigest}`;

  // GET /v2/
  {
    const s = await runGroup(
      'GET /v2/',
      [
        {
          key: 'derrick',
          server: servers.redirect,
          path: '/v2/',
          method: 'GET',
          expect: 200,
          connections: c,
        },
        {
          key: 'registry',
          server: servers.registry,
          path: '/v2/',
          method: 'GET',
          expect: 200,
          connections: c,
        },
        { key: 'bare', server: servers.bare200, path: '/v2/', method: 'GET', expect: 200, connections: c },
      ],
      plan,
    );
    rows.push(compareRow('GET /v2/', plan, get(s, 'derrick'), get(s, 'registry'), [get(s, 'bare')]));
  }

  // The same manifest HEAD with credentials: bcrypt paid once per user/password, a token verified once.
  {
    const probe = (key: string, server: BenchServer, authorization?: string): Probe => ({
      key,
      server,
      path: byTag,
      method: 'HEAD',
      headers: authorization === undefined ? accept : { ...accept, authorization },
      expect: 200,
      connections: c,
    });
    const s = await runGroup(
      'manifest HEAD with credentials',
      [
        probe('anonymous', servers.redirect),
        probe('basic', servers.login.server, servers.login.basic),
        probe('bearer', servers.login.server, servers.login.bearer),
      ],
      plan,
    );
    for (const [key, what] of [
      ['basic', 'Basic credentials (bcrypt cost 10)'],
      ['bearer', 'a bearer token (ES256)'],
    ] as const) {
      const ratio = get(s, key).requestsPerSecond / get(s, 'anonymous').requestsPerSecond;
      rows.push(
        compareRow(`manifest HEAD by tag with ${what}`, plan, get(s, key), get(s, 'anonymous'), [], {
          text: '≥ 0.5× the same HEAD, anonymous (credentials checked once, then remembered)',
          met: ratio >= 0.5,
        }),
      );
    }
  }

  // Manifests (and the blob redirect, whose reference is the same bare 302), GET then HEAD.
  const blobPath = `/v2/${blob1MiB.name}/blobs/${blob1MiB.digest}`;
  for (const method of ['GET', 'HEAD'] as const) {
    const redirectStatus = method === 'GET' ? 302 : 200; // derrick answers HEAD from the record
    const probes: Probe[] = [
      {
        key: 'r-tag',
        server: servers.redirect,
        path: byTag,
        method,
        headers: accept,
        expect: redirectStatus,
        connections: c,
      },
      {
        key: 's-tag',
        server: servers.serve,
        path: byTag,
        method,
        headers: accept,
        expect: 200,
        connections: c,
      },
      {
        key: 'reg-tag',
        server: servers.registry,
        path: byTag,
        method,
        headers: accept,
        expect: 200,
        connections: c,
      },
      { key: 'bare', server: servers.bare302, path: byTag, method, expect: 302, connections: c },
      {
        key: 'r-digest',
        server: servers.redirect,
        path: byDigest,
        method,
        headers: accept,
        expect: redirectStatus,
        connections: c,
      },
      {
        key: 's-digest',
        server: servers.serve,
        path: byDigest,
        method,
        headers: accept,
        expect: 200,
        connections: c,
      },
      {
        key: 'reg-digest',
        server: servers.registry,
        path: registryByDigest,
        method,
        headers: accept,
        expect: 200,
        connections: c,
      },
    ];
    if (method === 'GET')
      probes.push({
        key: 'r-blob',
        server: servers.redirect,
        path: blobPath,
        method,
        expect: 302,
        connections: c,
      });
    const s = await runGroup(`manifest ${method}`, probes, plan);
    const bare = get(s, 'bare');
    for (const [ref, label] of [
      ['tag', 'by tag'],
      ['digest', 'by digest'],
    ] as const) {
      const derrick = get(s, `r-${ref}`);
      const registry = get(s, `reg-${ref}`);
      const target =
        ref === 'tag'
          ? {
              text: '≥ 10× docker-registry req/s and ≥ 0.4× bare node:http 302',
              met:
                derrick.requestsPerSecond >= 10 * registry.requestsPerSecond &&
                derrick.requestsPerSecond >= 0.4 * bare.requestsPerSecond,
            }
          : undefined;
      rows.push(
        compareRow(`manifest ${method} ${label} (redirect)`, plan, derrick, registry, [bare], target),
      );
    }
    for (const [ref, label] of [
      ['tag', 'by tag'],
      ['digest', 'by digest'],
    ] as const) {
      rows.push(
        compareRow(`manifest ${method} ${label} (serve)`, plan, get(s, `s-${ref}`), get(s, `reg-${ref}`)),
      );
    }
    if (method === 'GET') rows.push(compareRow('blob GET 1 MiB (redirect)', plan, get(s, 'r-blob'), bare));
  }

  // Blob bytes, 1 MiB: derrick serve mode against nginx serving the same file from v2/web.
  {
    const webPath = `/${blob1MiB.name}/blobs/${blob1MiB.digest}`;
    const s = await runGroup(
      'blob GET 1 MiB',
      [
        {
          key: 'derrick',
          server: servers.serve,
          path: blobPath,
          method: 'GET',
          expect: 200,
          connections: plan.blobConnections,
        },
        {
          key: 'nginx',
          server: servers.nginx,
          path: webPath,
          method: 'GET',
          expect: 200,
          connections: plan.blobConnections,
        },
      ],
      plan,
    );
    const derrick = get(s, 'derrick');
    const nginx = get(s, 'nginx');
    const mbps = (summary: Summary) => (summary.requestsPerSecond * blob1MiB.size) / 1e6;
    rows.push({
      measure: 'blob GET 1 MiB (serve)',
      value: tidy(mbps(derrick)),
      unit: 'MB/s',
      reference: { name: 'nginx', value: tidy(mbps(nginx)) },
      ratio: tidy(mbps(derrick) / mbps(nginx)),
      note: `MB/s = req/s × ${count(blob1MiB.size)} B ÷ 10^6, ${plan.blobConnections} connections; derrick ${describe(derrick)}; nginx ${describe(nginx)}; ${roundsNote(plan, [derrick, nginx])}`,
    });
  }

  // Blob bytes, 1 GiB (full size): a few sequential downloads each, alternating.
  if (fixtures.blob1GiB && plan.downloads > 0) {
    const blob = fixtures.blob1GiB;
    const targets = [
      { server: servers.serve, path: `/v2/${blob.name}/blobs/${blob.digest}` },
      { server: servers.nginx, path: `/${blob.name}/blobs/${blob.digest}` },
    ];
    const results: LoadResult[][] = [[], []];
    const started = Date.now();
    for (let round = 0; round < plan.rounds; round++) {
      for (let i = 0; i < targets.length; i++) {
        const index = (i + round) % targets.length;
        const t = targets[index];
        if (!t) continue;
        results[index]?.push(
          await runDownloads({
            url: `${t.server.url}${t.path}`,
            count: plan.downloads,
            pid: t.server.pid,
            expectBytes: blob.size,
          }),
        );
      }
    }
    const speed = (runs: LoadResult[] | undefined) =>
      median((runs ?? []).map((run) => (run.bytesPerSecond ?? 0) / 1e6));
    const cpu = (runs: LoadResult[] | undefined) =>
      median((runs ?? []).map((run) => run.cpuSeconds / run.requests));
    const derrick = speed(results[0]);
    const nginx = speed(results[1]);
    const ratio = derrick / nginx;
    log(
      `blob GET 1 GiB: ${fmt(elapsedSeconds(started))} s — derrick ${fmt(derrick)} MB/s, nginx ${fmt(nginx)} MB/s`,
    );
    rows.push({
      measure: 'blob GET 1 GiB (serve)',
      value: tidy(derrick),
      unit: 'MB/s',
      reference: { name: 'nginx', value: tidy(nginx) },
      ratio: tidy(ratio),
      target: '≥ 0.8× nginx throughput',
      met: ratio >= 0.8,
      note: `curl, ${plan.downloads} sequential downloads per server and round, median of ${plan.rounds} rounds; server CPU per download: derrick ${fmt(cpu(results[0]))} s, nginx ${fmt(cpu(results[1]))} s`,
    });
  }

  return rows;
}
