/**
 * The benchmark harness of issue 4: `npm run bench [-- --quick]`. Also `--tiny` (seconds, for the test suite),
 * `--out <dir>` (default bench/out), `--workers N` (passed to `derrick serve`; its default is one worker per CPU),
 * and `--rounds N` / `--seconds N` (override the HTTP rounds and the seconds per run of the size chosen).
 *
 * 1. Checks the tools (wrk, ab, nginx, docker-registry, skopeo, curl; else scripts/install-deps.sh), and that
 *    dist/ is built from the current src/ (else `npm run build`): the servers run the compiled CLI.
 * 2. Builds the fixtures (bench/fixtures.ts) and starts the servers (bench/servers.ts): nginx on the main tree's
 *    v2/web, derrick in redirect mode (redirecting to that nginx) and in serve mode, docker-registry loaded with the
 *    same images, and bare node:http servers answering derrick's own 302 (or `/v2/`'s 200) to every request.
 * 3. Runs the HTTP measures (bench/load.ts): each group of compared runs is repeated for several rounds, the
 *    servers ALTERNATING within each round (the order rotates from one round to the next), medians reported.
 *    Every HTTP row carries the server CPU µs per request next to req/s; the tags/list and _catalog ratios are on
 *    CPU µs per request, steadier than req/s on a 2-core box where the load generator competes with the server.
 * 4. Runs the tree measures (bench/measures-tree.ts): start-up, visibility of a publish, publish throughput.
 * 5. Prints a table and writes <out>/results.json and <out>/results.md.
 *
 * Every process started is stopped, on success, on error and on SIGINT/SIGTERM.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildFixtures, loadIntoDockerRegistry } from './fixtures.ts';
import { killLoadGenerators, median, processTree, runDownloads, runLoad, type LoadResult } from './load.ts';
import { startAuthDerrick, type AuthServer } from './measures-auth.ts';
import { measurePublishThroughput, measureStartup, measureVisibility } from './measures-tree.ts';
import {
  REPO_ROOT,
  request,
  startBareServer,
  startDerrick,
  startDockerRegistry,
  startNginxServer,
  stopAllServers,
  type BenchServer,
  type FixedResponse,
} from './servers.ts';
import type { BenchSize, Fixtures, Row } from './types.ts';

// ---------------------------------------------------------------------------------------------------------------
// Plans

interface Plan {
  /** HTTP rounds, and seconds per run. */
  rounds: number;
  seconds: number;
  /** Connections for small answers, and for 1 MiB blobs (fewer, longer requests). */
  connections: number;
  blobConnections: number;
  /** Sequential curl downloads of the 1 GiB blob per server and round (full size only). */
  downloads: number;
  tree: { rounds: number; publishes: number; bytes: number };
}

const MiB = 1024 * 1024;

const PLANS: Record<BenchSize, Plan> = {
  tiny: {
    rounds: 1,
    seconds: 1,
    connections: 32,
    blobConnections: 8,
    downloads: 0,
    tree: { rounds: 1, publishes: 5, bytes: 8 * MiB },
  },
  // quick: < 3 min on this 2-core box (28 HTTP runs × 2 rounds × 1 s of load, plus start-ups).
  quick: {
    rounds: 2,
    seconds: 1,
    connections: 32,
    blobConnections: 8,
    downloads: 0,
    tree: { rounds: 2, publishes: 100, bytes: 128 * MiB },
  },
  // full: ~12–15 min (28 × 3 × 6 s ≈ 8.5 min of HTTP runs), inside the 20 the issue allows.
  full: {
    rounds: 3,
    seconds: 6,
    connections: 32,
    blobConnections: 8,
    downloads: 2,
    tree: { rounds: 3, publishes: 1000, bytes: 1024 * MiB },
  },
};

/** The programs the harness runs (curl only for the 1 GiB downloads of the full size), and their Debian packages. */
const TOOLS: Record<string, string> = {
  wrk: 'wrk',
  ab: 'apache2-utils',
  nginx: 'nginx',
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
};

/** What a registry client sends: every manifest type (so docker-registry serves OCI manifests too). */
const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

// ---------------------------------------------------------------------------------------------------------------
// Small tools

function log(text: string): void {
  console.error(`bench: ${text}`);
}

function elapsedSeconds(since: number): number {
  return (Date.now() - since) / 1000;
}

/** Rounded for the JSON: whole numbers from 100 up, one decimal from 10, else three significant digits. */
function tidy(value: number): number {
  if (!Number.isFinite(value)) return value;
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value);
  if (abs >= 10) return Math.round(value * 10) / 10;
  return Number(value.toPrecision(3));
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function count(value: number): string {
  return value.toLocaleString('en-US');
}

function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

// ---------------------------------------------------------------------------------------------------------------
// Preparation

/** The tools, installed by scripts/install-deps.sh when one is missing; exits 1 when they still are. */
function checkTools(size: BenchSize): void {
  const tools: Record<string, string> = size === 'full' ? { ...TOOLS, curl: 'curl' } : TOOLS;
  let missing = Object.keys(tools).filter((tool) => !hasTool(tool));
  if (missing.length === 0) return;
  log(`missing ${missing.join(', ')}: running scripts/install-deps.sh`);
  spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'install-deps.sh')], {
    cwd: REPO_ROOT,
    stdio: 'inherit',
  });
  missing = Object.keys(tools).filter((tool) => !hasTool(tool));
  if (missing.length > 0) {
    console.error(
      `bench: cannot run without ${missing.join(', ')} (Debian packages: ${missing.map((tool) => tools[tool] ?? tool).join(' ')}); scripts/install-deps.sh did not install them`,
    );
    process.exit(1);
  }
}

/** The servers run the compiled CLI (bin/derrick.js): build dist/ when it is missing or older than src/. */
function checkBuild(): void {
  const distMain = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');
  if (existsSync(distMain) && statSync(distMain).mtimeMs >= newestMtime(path.join(REPO_ROOT, 'src'))) return;
  log(existsSync(distMain) ? 'dist/ is older than src/: npm run build' : 'dist/ is not built: npm run build');
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('bench: npm run build failed; the benchmark runs the compiled CLI (bin/derrick.js)');
    process.exit(1);
  }
}

/** Tags of a published repository, from its record (docs/record-format.md). */
function tagCount(dataDir: string, name: string): number {
  const record = JSON.parse(readFileSync(path.join(dataDir, 'v2', 'app', `${name}.json`), 'utf8')) as {
    tags?: Record<string, string>;
  };
  return Object.keys(record.tags ?? {}).length;
}

/** Every repository name of a tree (its record files), sorted as _catalog sorts them (by bytes; names are ASCII). */
function repositoryNames(dataDir: string): string[] {
  const appDir = path.join(dataDir, 'v2', 'app');
  const names: string[] = [];
  for (const entry of readdirSync(appDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.json')) continue;
    const relative = path.relative(appDir, path.join(entry.parentPath, entry.name));
    names.push(relative.slice(0, -'.json'.length).split(path.sep).join('/'));
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP runs

interface Probe {
  key: string;
  server: BenchServer;
  path: string;
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** The status every answer must have (checked once before the runs). */
  expect: number;
  connections: number;
}

interface Summary {
  probe: Probe;
  runs: LoadResult[];
  requestsPerSecond: number;
  cpuMicrosPerRequest: number;
  p50?: number;
  p99?: number;
  /** (max − min) ÷ median of req/s over the rounds. */
  spread: number;
  /** Socket errors and unexpected statuses, summed over the rounds. */
  problems: number;
}

function summarize(probe: Probe, runs: LoadResult[]): Summary {
  const rps = runs.map((run) => run.requestsPerSecond);
  const mid = median(rps);
  const p50s = runs.flatMap((run) => (run.latencyMs.p50 === undefined ? [] : [run.latencyMs.p50]));
  const p99s = runs.flatMap((run) => (run.latencyMs.p99 === undefined ? [] : [run.latencyMs.p99]));
  // ab counts anything but 2xx as "Non-2xx", so a HEAD expecting the bare 302 is not a problem.
  const statusProblems = (run: LoadResult) => (run.tool === 'ab' && probe.expect >= 300 ? 0 : run.badStatus);
  return {
    probe,
    runs,
    requestsPerSecond: mid,
    cpuMicrosPerRequest: median(runs.map((run) => run.cpuMicrosPerRequest)),
    ...(p50s.length > 0 ? { p50: median(p50s) } : {}),
    ...(p99s.length > 0 ? { p99: median(p99s) } : {}),
    spread: rps.length > 1 ? (Math.max(...rps) - Math.min(...rps)) / mid : 0,
    problems: runs.reduce((sum, run) => sum + run.errors + statusProblems(run), 0),
  };
}

async function checkProbe(probe: Probe): Promise<void> {
  const answer = await request(`${probe.server.url}${probe.path}`, {
    method: probe.method,
    ...(probe.headers ? { headers: probe.headers } : {}),
  });
  if (answer.status !== probe.expect)
    throw new Error(
      `${probe.server.name}: ${probe.method} ${probe.path} answered ${answer.status}, not ${probe.expect}: ${answer.body.toString().slice(0, 300)}`,
    );
}

/**
 * Runs every probe of a group for `plan.rounds` rounds, alternating: each round runs them all, the order rotated
 * by one from the round before, so that no server always runs first or right after the same neighbour.
 */
async function runGroup(title: string, probes: Probe[], plan: Plan): Promise<Map<string, Summary>> {
  for (const probe of probes) await checkProbe(probe);
  const runs = new Map<string, LoadResult[]>(probes.map((probe) => [probe.key, []]));
  const started = Date.now();
  for (let round = 0; round < plan.rounds; round++) {
    for (let i = 0; i < probes.length; i++) {
      const probe = probes[(i + round) % probes.length];
      if (!probe) continue;
      const result = await runLoad({
        url: `${probe.server.url}${probe.path}`,
        method: probe.method,
        ...(probe.headers ? { headers: probe.headers } : {}),
        connections: probe.connections,
        seconds: plan.seconds,
        pid: probe.server.pid,
      });
      runs.get(probe.key)?.push(result);
    }
  }
  const summaries = new Map(probes.map((probe) => [probe.key, summarize(probe, runs.get(probe.key) ?? [])]));
  log(
    `${title}: ${probes.length} runs × ${plan.rounds} rounds in ${fmt(elapsedSeconds(started))} s — ${[...summaries.values()].map((s) => `${s.probe.key} ${fmt(s.requestsPerSecond)} req/s ${fmt(s.cpuMicrosPerRequest)} µs`).join('; ')}`,
  );
  return summaries;
}

function get(summaries: Map<string, Summary>, key: string): Summary {
  const summary = summaries.get(key);
  if (!summary) throw new Error(`bench: no run named ${key}`);
  return summary;
}

/** "12,345 req/s at 85 CPU µs/req (p50 1.2 ms, p99 3.4 ms)" */
function describe(summary: Summary): string {
  const latency =
    summary.p50 === undefined
      ? ''
      : `, p50 ${fmt(summary.p50)} ms${summary.p99 === undefined ? '' : `, p99 ${fmt(summary.p99)} ms`}`;
  const problems = summary.problems > 0 ? `, ${count(summary.problems)} errors or unexpected statuses` : '';
  return `${fmt(summary.requestsPerSecond)} req/s at ${fmt(summary.cpuMicrosPerRequest)} CPU µs/req${latency}${problems}`;
}

function roundsNote(plan: Plan, summaries: Summary[]): string {
  const spread = Math.max(...summaries.map((s) => s.spread));
  return `median of ${plan.rounds} × ${plan.seconds} s${plan.rounds > 1 ? `, req/s spread up to ±${Math.round((spread / 2) * 100)}%` : ''}`;
}

/** A req/s row: derrick against one reference, the other servers named in the note. */
function compareRow(
  measure: string,
  plan: Plan,
  derrick: Summary,
  reference: Summary,
  others: Summary[] = [],
  target?: { text: string; met: boolean },
): Row {
  const ratio = derrick.requestsPerSecond / reference.requestsPerSecond;
  const notes = [
    `derrick ${describe(derrick)}`,
    `${reference.probe.server.name} ${describe(reference)}`,
    ...others.map(
      (other) =>
        `${other.probe.server.name} ${describe(other)} (derrick ÷ it: ${fmt(derrick.requestsPerSecond / other.requestsPerSecond)}×)`,
    ),
    roundsNote(plan, [derrick, reference, ...others]),
  ];
  return {
    measure,
    value: tidy(derrick.requestsPerSecond),
    unit: 'req/s',
    reference: { name: reference.probe.server.name, value: tidy(reference.requestsPerSecond) },
    ratio: tidy(ratio),
    ...(target ? { target: target.text, met: target.met } : {}),
    note: notes.join('; '),
  };
}

/** A CPU µs/request row of a cost that should not grow with the data (tags/list, _catalog). */
function costRow(
  measure: string,
  plan: Plan,
  summary: Summary,
  base?: { label: string; summary: Summary; target: boolean },
): Row {
  const row: Row = {
    measure,
    value: tidy(summary.cpuMicrosPerRequest),
    unit: 'CPU µs/req',
    note: `${describe(summary)}; ${roundsNote(plan, [summary, ...(base ? [base.summary] : [])])}`,
  };
  if (!base) return row;
  const ratio = summary.cpuMicrosPerRequest / base.summary.cpuMicrosPerRequest;
  const rpsRatio = base.summary.requestsPerSecond / summary.requestsPerSecond;
  row.reference = { name: base.label, value: tidy(base.summary.cpuMicrosPerRequest) };
  row.ratio = tidy(ratio);
  if (base.target) {
    row.target = `≤ 2× the ${base.label} cost`;
    row.met = ratio <= 2;
  }
  row.note = `ratio and target on server CPU µs/request (req/s ratio: ${fmt(rpsRatio)}×, ${fmt(summary.requestsPerSecond)} vs ${fmt(base.summary.requestsPerSecond)} req/s); ${row.note ?? ''}`;
  return row;
}

// ---------------------------------------------------------------------------------------------------------------
// The measures

interface Servers {
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

async function startServers(
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

async function httpMeasures(fixtures: Fixtures, servers: Servers, plan: Plan): Promise<Row[]> {
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

  // tags/list: a page of at most 100 from the 10-tag and from the 10,000-tag repository.
  {
    const small = tagCount(fixtures.dataDir, fixtures.tags10);
    const large = tagCount(fixtures.dataDir, fixtures.tags10k);
    const s = await runGroup(
      'tags/list',
      [
        {
          key: 'small',
          server: servers.serve,
          path: `/v2/${fixtures.tags10}/tags/list?n=100`,
          method: 'GET',
          expect: 200,
          connections: c,
        },
        {
          key: 'large',
          server: servers.serve,
          path: `/v2/${fixtures.tags10k}/tags/list?n=100`,
          method: 'GET',
          expect: 200,
          connections: c,
        },
      ],
      plan,
    );
    const base = get(s, 'small');
    rows.push(costRow(`tags/list?n=100, ${count(small)} tags`, plan, base));
    rows.push(
      costRow(`tags/list?n=100, ${count(large)} tags`, plan, get(s, 'large'), {
        label: `${count(small)}-tag repository`,
        summary: base,
        target: true,
      }),
    );
  }

  return rows;
}

/** _catalog?n=100, first page and a deep page (last= ~90% through), on every generated tree, alternating. */
async function catalogMeasures(fixtures: Fixtures, plan: Plan, workers: number | undefined): Promise<Row[]> {
  const trees = [...fixtures.trees].sort((a, b) => a.repositories - b.repositories);
  const servers: BenchServer[] = [];
  try {
    const started = await Promise.allSettled(
      trees.map((tree) =>
        startDerrick({
          dataDir: tree.dataDir,
          mode: 'serve',
          name: `derrick (${count(tree.repositories)} repositories)`,
          ...(workers === undefined ? {} : { workers }),
        }),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') servers.push(result.value);
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    const probes: Probe[] = [];
    /** What each page holds, for the notes. */
    const pages = new Map<string, string>();
    const page = 100;
    trees.forEach((tree, i) => {
      const server = servers[i];
      if (!server) return;
      const names = repositoryNames(tree.dataDir);
      // ~90% through the list, but never so far that fewer than a full page follow (a 100-repository tree has no
      // deep full page: there the page after its first name stands in), so every tree's page holds as many names.
      const at = Math.max(0, Math.min(Math.floor(0.9 * (names.length - 1)), names.length - 1 - page));
      const deep = names[at] ?? '';
      pages.set(`first-${tree.repositories}`, `a page of ${Math.min(page, names.length)} names`);
      pages.set(
        `deep-${tree.repositories}`,
        `last=${deep} (name ${count(at + 1)} of ${count(names.length)}), a page of ${Math.min(page, names.length - at - 1)} names`,
      );
      const c = plan.connections;
      probes.push(
        {
          key: `first-${tree.repositories}`,
          server,
          path: `/v2/_catalog?n=${page}`,
          method: 'GET',
          expect: 200,
          connections: c,
        },
        {
          key: `deep-${tree.repositories}`,
          server,
          path: `/v2/_catalog?n=${page}&last=${encodeURIComponent(deep)}`,
          method: 'GET',
          expect: 200,
          connections: c,
        },
      );
    });
    const s = await runGroup('_catalog', probes, plan);
    const rows: Row[] = [];
    const smallest = trees[0];
    const largest = trees[trees.length - 1];
    for (const [kind, label] of [
      ['first', 'first page'],
      ['deep', 'deep page (last= ~90% in)'],
    ] as const) {
      for (const tree of trees) {
        const key = `${kind}-${tree.repositories}`;
        const summary = get(s, key);
        const measure = `_catalog?n=${page} ${label}, ${count(tree.repositories)} repositories`;
        const row =
          tree === smallest || !smallest
            ? costRow(measure, plan, summary)
            : costRow(measure, plan, summary, {
                label: `${count(smallest.repositories)}-repository tree`,
                summary: get(s, `${kind}-${smallest.repositories}`),
                target: tree === largest,
              });
        row.note = `${pages.get(key) ?? ''}; ${row.note ?? ''}`;
        rows.push(row);
      }
    }
    return rows;
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output

function cells(row: Row): string[] {
  return [
    row.measure,
    `${fmt(row.value)} ${row.unit}`,
    row.reference ? `${row.reference.name}: ${fmt(row.reference.value)}` : '',
    row.ratio === undefined ? '' : `${fmt(row.ratio)}×`,
    row.target ?? '',
    row.met === undefined ? '' : row.met ? 'yes' : 'NO',
  ];
}

const HEADER = ['measure', 'derrick', 'reference', 'ratio', 'target', 'met'];

function textTable(rows: Row[]): string {
  const table = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...table.map((line) => Array.from(line[i] ?? '').length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => value + ' '.repeat((widths[i] ?? 0) - Array.from(value).length))
      .join('  ')
      .trimEnd();
  return [line(HEADER), line(widths.map((w) => '-'.repeat(w))), ...table.slice(1).map(line)].join('\n');
}

function markdown(rows: Row[], heading: string): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  const header = [...HEADER, 'note'];
  return [
    heading,
    '',
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${[...cells(row), row.note ?? ''].map(escape).join(' | ')} |`),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      out: { type: 'string' },
      workers: { type: 'string' },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm run bench [-- --quick | --tiny] [--out <dir>] [--workers <n>] [--rounds <n>] [--seconds <n>]',
    );
    return;
  }
  const size: BenchSize = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';
  const wholeNumber = (flag: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (Number.isInteger(parsed) && parsed >= 1) return parsed;
    console.error(`bench: --${flag} expects a whole number ≥ 1, not ${JSON.stringify(value)}`);
    process.exit(2);
  };
  const workers = wholeNumber('workers', values.workers);
  const plan: Plan = {
    ...PLANS[size],
    rounds: wholeNumber('rounds', values.rounds) ?? PLANS[size].rounds,
    seconds: wholeNumber('seconds', values.seconds) ?? PLANS[size].seconds,
  };
  const outDir = path.resolve(values.out ?? path.join(REPO_ROOT, 'bench', 'out'));
  const started = Date.now();
  const startedAt = new Date().toISOString();

  checkTools(size);
  checkBuild();

  // nginx's workers run as nobody when we are root: the work directory must be world-searchable.
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'derrick-bench-'));
  chmodSync(workDir, 0o755);
  const state = { interrupted: false };
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      killLoadGenerators();
      await stopAllServers();
      if (state.interrupted) {
        // Whatever else still runs below us (a publish or a server of the tree measures): stopped too, by pid.
        for (const pid of processTree(process.pid).slice(1)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }
      // Removing 100,000 records and GiB-sized files takes tens of seconds of write-back: a detached rm does it
      // after the harness has answered.
      spawn('rm', ['-rf', workDir], { detached: true, stdio: 'ignore' }).unref();
    })();
    return cleaning;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (state.interrupted) return;
    state.interrupted = true;
    log(`${signal}: stopping every server and removing ${workDir}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const rows: Row[] = [];
  try {
    log(`${size}: ${plan.rounds} round(s) × ${plan.seconds} s per HTTP run; work directory ${workDir}`);
    let phase = Date.now();
    const fixtures = await buildFixtures(workDir, size);
    log(`fixtures built in ${fmt(elapsedSeconds(phase))} s`);

    phase = Date.now();
    const servers = await startServers(fixtures, workDir, workers);
    rows.push(...(await httpMeasures(fixtures, servers, plan)));
    await stopAllServers(); // the catalog servers and the tree measures run alone
    rows.push(...(await catalogMeasures(fixtures, plan, workers)));
    log(`HTTP measures done in ${fmt(elapsedSeconds(phase))} s`);

    phase = Date.now();
    rows.push(...(await measureStartup(fixtures, { rounds: plan.tree.rounds })));
    rows.push(...(await measureVisibility(fixtures, { publishes: plan.tree.publishes })));
    rows.push(...(await measurePublishThroughput(fixtures, { bytes: plan.tree.bytes })));
    log(`tree measures done in ${fmt(elapsedSeconds(phase))} s`);
  } catch (error) {
    if (state.interrupted) return;
    await cleanup();
    throw error;
  }
  await cleanup();

  const seconds = elapsedSeconds(started);
  const cpus = os.cpus();
  const machine = {
    cpus: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
  };
  const results = {
    size,
    startedAt,
    seconds: Math.round(seconds),
    machine,
    plan,
    workers: workers ?? 'default',
    rows,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const heading = [
    `# derrick benchmark (${size})`,
    '',
    `${startedAt}, ${Math.round(seconds)} s; ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}; HTTP: ${plan.rounds} round(s) × ${plan.seconds} s per run, servers alternating, medians; derrick workers: ${workers ?? 'default (one per CPU)'}.`,
  ].join('\n');
  writeFileSync(path.join(outDir, 'results.md'), markdown(rows, heading));

  console.log(textTable(rows));
  console.log('');
  for (const row of rows) if (row.note) console.log(`- ${row.measure}: ${row.note}`);
  console.log('');
  log(`done in ${fmt(seconds)} s; results in ${path.join(outDir, 'results.json')} and results.md`);
}

main().catch((error: unknown) => {
  console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
