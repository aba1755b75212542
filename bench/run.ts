/**
 * The benchmark harness of issue 4: `npm run bench [-- --quick]`. Also `--tiny` (seconds, for the test suite),
 * `--out <dir>` (default bench/out), `--workers N` (passed to `derrick serve`; its default is one worker per CPU),
 * `--rounds N` / `--seconds N` (override the HTTP rounds and the seconds per run of the size chosen), and
 * `--only <groups>` (comma-separated: http, catalog, tree, restart, s3; default all of them, but s3 not in tiny size).
 *
 * 1. Checks the tools (wrk, ab, nginx, docker-registry, skopeo, curl; else scripts/install-deps.sh), and that
 *    dist/ is built from the current src/ (else `npm run build`): the servers run the compiled CLI.
 * 2. Builds the fixtures (bench/fixtures.ts) and starts the servers (bench/measures-http.ts, with bench/servers.ts):
 *    nginx on the main tree's v2/web, derrick in redirect mode (redirecting to that nginx) and in serve mode,
 *    docker-registry loaded with the same images, and bare node:http servers answering derrick's own 302 (or
 *    `/v2/`'s 200) to every request.
 * 3. Runs the HTTP measures (bench/measures-http.ts, then tags/list and _catalog in bench/measures-catalog.ts;
 *    the load itself in bench/load.ts): each group of compared runs is repeated for several rounds, the servers
 *    ALTERNATING within each round (the order rotates from one round to the next), medians reported
 *    (bench/summary.ts). Every HTTP row carries the server CPU µs per request next to req/s; the tags/list and
 *    _catalog ratios are on CPU µs per request, steadier than req/s on a 2-core box where the load generator
 *    competes with the server.
 * 4. Runs the tree measures (bench/measures-tree.ts): start-up, visibility of a publish, publish throughput.
 * 5. The restart group (bench/measures-restart.ts): failed requests and time of rolling restarts under load.
 * 6. The s3 group (bench/s3-measures.ts): derrick-on-S3 against docker-registry-on-S3 and derrick on the file
 *    system, on a Ceph RGW of its own (or BENCH_S3_ENV's).
 * 7. Prints a table and writes <out>/results.json and <out>/results.md (bench/report.ts).
 *
 * This file holds only that sequence: the arguments, the plan of each size, the checks, the cleanup (every
 * process started is stopped, on success, on error and on SIGINT/SIGTERM) and the writing of the results.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildFixtures, newestMtime } from './fixtures.ts';
import { killLoadGenerators, processTree } from './load.ts';
import { catalogMeasures, tagsListMeasures } from './measures-catalog.ts';
import { httpMeasures, startServers } from './measures-http.ts';
import { observabilityMeasures } from './measures-observability.ts';
import { sendfileMeasures } from './measures-sendfile.ts';
import { measureCommandStartup, measureStartup, measureV8Flags } from './measures-startup.ts';
import { measurePublishThroughput, measureVisibility } from './measures-tree.ts';
import { restartMeasures } from './measures-restart.ts';
import { markdown, textTable } from './report.ts';
import { s3Measures } from './s3-measures.ts';
import { stopAllS3 } from './s3-store.ts';
import { REPO_ROOT, stopAllServers } from './servers.ts';
import { elapsedSeconds, fmt, log } from './summary.ts';
import type { BenchSize, Plan, Row } from './types.ts';

// ---------------------------------------------------------------------------------------------------------------
// Plans

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

/**
 * The groups of measures `--only` selects from; `observe` (what metrics and the access log cost) is part of
 * `http`, and can run alone.
 */
const GROUPS = ['http', 'observe', 'catalog', 'tree', 'restart', 's3'] as const;

/** The programs the harness runs (curl only for the 1 GiB downloads of the full size), and their Debian packages. */
const TOOLS: Record<string, string> = {
  wrk: 'wrk',
  ab: 'apache2-utils',
  nginx: 'nginx',
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
};

// ---------------------------------------------------------------------------------------------------------------
// Preparation

function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

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
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm run bench [-- --quick | --tiny] [--out <dir>] [--workers <n>] [--rounds <n>] [--seconds <n>] [--only http,observe,catalog,tree,restart,s3]',
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
  const groups = new Set(
    values.only?.split(',') ?? GROUPS.filter((group) => size !== 'tiny' || group !== 's3'),
  );
  const unknown = [...groups].filter((group) => !(GROUPS as readonly string[]).includes(group));
  if (unknown.length > 0 || groups.size === 0) {
    console.error(`bench: --only expects some of ${GROUPS.join(', ')}, not ${JSON.stringify(values.only)}`);
    process.exit(2);
  }
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
      await stopAllS3();
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
    if (groups.has('http')) {
      const servers = await startServers(fixtures, workDir, workers);
      rows.push(...(await httpMeasures(fixtures, servers, plan)));
      rows.push(...(await sendfileMeasures(fixtures, servers, plan, workDir, workers)));
      rows.push(...(await tagsListMeasures(fixtures, servers.serve, plan)));
      await stopAllServers(); // the catalog servers and the tree measures run alone
    }
    if (groups.has('http') || groups.has('observe'))
      rows.push(...(await observabilityMeasures(fixtures, plan, workers)));
    if (groups.has('catalog')) rows.push(...(await catalogMeasures(fixtures, plan, workers)));
    log(`HTTP measures done in ${fmt(elapsedSeconds(phase))} s`);

    phase = Date.now();
    if (groups.has('tree')) {
      rows.push(...(await measureStartup(fixtures, { rounds: plan.tree.rounds })));
      rows.push(...(await measureCommandStartup(fixtures, { rounds: plan.tree.rounds })));
      rows.push(...(await measureV8Flags(fixtures, plan)));
      rows.push(...(await measureVisibility(fixtures, { publishes: plan.tree.publishes })));
      rows.push(...(await measurePublishThroughput(fixtures, { bytes: plan.tree.bytes })));
      log(`tree measures done in ${fmt(elapsedSeconds(phase))} s`);
    }

    if (groups.has('restart')) rows.push(...(await restartMeasures(fixtures, size)));
    if (groups.has('s3')) rows.push(...(await s3Measures(fixtures, plan, size, workers)));
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
    groups: [...groups],
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
