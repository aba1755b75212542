/**
 * Start-up and memory of `derrick serve` (issue 4's rows, issue 11's targets): against the size of the tree; the
 * bundled CLI (scripts/build.ts) against the build before it — tsc's one module per file, built here from the same
 * sources — for `--version`, `ls`, `publish` and `serve`; and a V8 flag (bin/derrick.js's, or a candidate) against
 * none, on memory and on manifest GETs.
 */
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { derrickCli, generatedName, layoutsOf, REPO_ROOT, runCommand, type DerrickCli } from './fixtures.ts';
import {
  elapsedMs,
  median,
  ONE_WORKER,
  request,
  residentKb,
  round,
  startServe,
  timedRun,
  type Serving,
} from './measures-tree.ts';
import { runLoad } from './load.ts';
import { MANIFEST_ACCEPT, type BenchServer } from './servers.ts';
import { describe, fmt, get, roundsNote, runGroup, tidy, type Probe, type Summary } from './summary.ts';
import type { Fixtures, Plan, Row } from './types.ts';

// ---------------------------------------------------------------------------------------------------------------
// A server's first answer, and a catalog walk

/** The `last=` values of `count` catalog pages spread evenly over a generated tree of `repositories`. */
function spreadLasts(repositories: number, count: number): (string | undefined)[] {
  const lasts: (string | undefined)[] = [undefined];
  for (let i = 1; i < count; i++) lasts.push(generatedName(Math.floor((i * repositories) / count)));
  return lasts;
}

/** Resolves at the first 200 of `GET /v2/_catalog?n=10`: what a client (or a probe) waits for after the port. */
async function firstAnswer(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const answer = await request(`${url}/v2/_catalog?n=10`).catch(() => undefined);
    if (answer?.status === 200) return;
    if (Date.now() > deadline)
      throw new Error(`no 200 from ${url}/v2/_catalog within 30 s (last: ${answer?.status})`);
    await sleep(5);
  }
}

/** One `GET /v2/_catalog?n=100&last=…` per entry of `lasts`, on one keep-alive connection. */
async function walkCatalog(url: string, lasts: (string | undefined)[]): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const last of lasts) {
      const query = last === undefined ? '' : `&last=${encodeURIComponent(last)}`;
      const answer = await request(`${url}/v2/_catalog?n=100${query}`, { agent });
      if (answer.status !== 200) throw new Error(`_catalog answered ${answer.status}: ${answer.body}`);
    }
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Start-up and memory against the size of the tree

/**
 * For each generated tree: the time from spawning `derrick serve` to its first successful `GET /v2/_catalog?n=10`,
 * and its resident memory after 200 catalog pages (n=100) spread over the tree — each the median over `rounds`
 * fresh servers.
 */
export async function measureStartup(fixtures: Fixtures, options: { rounds: number }): Promise<Row[]> {
  const results: { repositories: number; startup: number[]; rss: number[]; rssAtStart: number[] }[] = [];
  for (const tree of [...fixtures.trees].sort((a, b) => a.repositories - b.repositories)) {
    const startup: number[] = [];
    const rss: number[] = [];
    const rssAtStart: number[] = [];
    const lasts = spreadLasts(tree.repositories, 200);
    for (let round = 0; round < options.rounds; round++) {
      const spawnedAt = process.hrtime.bigint();
      const server = await startServe(tree.dataDir, ONE_WORKER);
      try {
        await firstAnswer(server.url);
        startup.push(elapsedMs(spawnedAt));
        rssAtStart.push((await residentKb(server.pid)) / 1024);
        await walkCatalog(server.url, lasts);
        rss.push((await residentKb(server.pid)) / 1024);
      } finally {
        await server.stop();
      }
    }
    results.push({ repositories: tree.repositories, startup, rss, rssAtStart });
  }

  const rows: Row[] = [];
  const smallest = results[0];
  const largest = results[results.length - 1];
  const rule = (bound: string) =>
    `met when the largest tree is ${bound} and at most 1.5× the smallest tree (${smallest?.repositories ?? 0} repositories)`;
  const cliNote = `derrick serve --workers 1 from ${derrickCli('serve').from}`;
  for (const [kind, unit, bound, limit] of [
    ['startup', 'ms', '< 500 ms', 500],
    ['rss', 'MB', '< 100 MB', 100],
  ] as const) {
    for (const result of results) {
      const values = result[kind];
      const value = round(median(values));
      const row: Row = {
        measure:
          kind === 'startup'
            ? `start-up to first answer, ${result.repositories.toLocaleString('en-US')} repositories`
            : `RSS after 200 catalog pages, ${result.repositories.toLocaleString('en-US')} repositories`,
        value,
        unit,
        note: `median of ${values.length} (${round(Math.min(...values))}–${round(Math.max(...values))}); ${
          kind === 'startup'
            ? 'spawn to first 200 of GET /v2/_catalog?n=10'
            : `VmRSS (process and children) after 200 × GET /v2/_catalog?n=100&last=… spread over the tree (${round(median(result.rssAtStart))} MB at the first answer)`
        }; ${cliNote}`,
      };
      if (result === largest && smallest) {
        const base = median(smallest[kind]);
        row.reference = {
          name: `${smallest.repositories.toLocaleString('en-US')} repositories`,
          value: round(base),
        };
        row.ratio = round(value / base, 2);
        row.target = `${bound} and no growth with N`;
        row.met = value < limit && value <= 1.5 * base;
        row.note = `${row.note ?? ''}; ${rule(bound)}`;
      }
      rows.push(row);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// The bundle against tsc's output

/** Where tsc's output of src/ goes: inside the checkout (its imports resolve node_modules), outside git and lint. */
const TSC_OUT = path.join(REPO_ROOT, 'node_modules', '.cache', 'derrick-bench', 'tsc');

/**
 * tsc's one module per file (tsconfig.build.json, incremental: seconds when src/ has not changed), run through a
 * bin that imports it, as bin/derrick.js did before the bundle.
 */
export async function tscCli(): Promise<DerrickCli> {
  await runCommand(process.execPath, [
    path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    path.join(REPO_ROOT, 'tsconfig.build.json'),
    '--outDir',
    TSC_OUT,
    '--incremental',
    '--tsBuildInfoFile',
    path.join(TSC_OUT, '.tsbuildinfo'),
  ]);
  if (!existsSync(path.join(TSC_OUT, 'cli', 'main.js')))
    throw new Error(`tsc wrote no cli/main.js in ${TSC_OUT}`);
  // As bin/derrick.js was before the bundle: one static import of the compiled CLI.
  const main = path.join(TSC_OUT, 'bin', 'derrick.js');
  await fs.mkdir(path.dirname(main), { recursive: true });
  await fs.writeFile(main, "import '../cli/main.js';\n");
  return { command: process.execPath, args: [main], from: 'tsc' };
}

/** Milliseconds from spawning `derrick serve` (one worker) on `dataDir` to its first answer. */
async function serveStartup(cli: DerrickCli, dataDir: string): Promise<number> {
  const spawnedAt = process.hrtime.bigint();
  const server = await startServe(dataDir, ONE_WORKER, { cli });
  try {
    await firstAnswer(server.url);
    return elapsedMs(spawnedAt);
  } finally {
    await server.stop();
  }
}

/**
 * `derrick --version`, `derrick ls`, `derrick publish` of the small image into a fresh tree, and `derrick serve`
 * to its first answer on the largest generated tree: each from the bundle and from tsc's output, alternating,
 * 3 × `rounds` times (they are short, and noisy); medians, and the ratio bundle ÷ tsc, which must not exceed 1.
 */
export async function measureCommandStartup(fixtures: Fixtures, options: { rounds: number }): Promise<Row[]> {
  const bundle = derrickCli();
  const tsc = await tscCli();
  const largest = [...fixtures.trees].sort((a, b) => b.repositories - a.repositories)[0];
  const scratch = path.join(fixtures.workDir, 'startup-publish');
  const small = `oci:${layoutsOf(fixtures).small}:latest`;
  const commands: { name: string; time: (cli: DerrickCli) => Promise<number> }[] = [
    { name: 'derrick --version', time: (cli) => timedRun(cli.command, [...cli.args, '--version']) },
    {
      name: 'derrick ls',
      time: (cli) => timedRun(cli.command, [...cli.args, 'ls', '--data-dir', fixtures.dataDir]),
    },
    {
      name: 'derrick publish (small image, fresh tree)',
      time: async (cli) => {
        await fs.rm(scratch, { recursive: true, force: true });
        const args = ['publish', small, 'bench/startup', '--data-dir', scratch, '-q'];
        return timedRun(cli.command, [...cli.args, ...args]);
      },
    },
  ];
  if (largest) {
    const name = `derrick serve to first answer (${largest.repositories.toLocaleString('en-US')} repositories)`;
    // The bundle as bin/derrick.js runs `derrick serve`: with its serve flags.
    commands.push({
      name,
      time: (cli) => serveStartup(cli === bundle ? derrickCli('serve') : cli, largest.dataDir),
    });
  }
  const rounds = 3 * options.rounds;
  const rows: Row[] = [];
  try {
    for (const command of commands) {
      const times = { bundle: [] as number[], tsc: [] as number[] };
      for (let i = 0; i < rounds; i++) {
        // Alternating, the first of each pair swapped every round.
        for (const which of i % 2 === 0 ? (['bundle', 'tsc'] as const) : (['tsc', 'bundle'] as const))
          times[which].push(await command.time(which === 'bundle' ? bundle : tsc));
      }
      const value = round(median(times.bundle));
      const reference = round(median(times.tsc));
      const ratio = round(value / reference, 2);
      rows.push({
        measure: `start-up, ${command.name}: bundle vs tsc output`,
        value,
        unit: 'ms',
        reference: { name: 'tsc output (the build before)', value: reference },
        ratio,
        target: '≤ 1× tsc output',
        met: ratio <= 1,
        note: `median of ${rounds}, alternating: bundle ${round(Math.min(...times.bundle))}–${round(Math.max(...times.bundle))} ms (from ${bundle.from}, ${(command.name.includes('serve') ? derrickCli('serve') : bundle).args.slice(0, -1).join(' ') || 'no node flags'}), tsc output ${round(Math.min(...times.tsc))}–${round(Math.max(...times.tsc))} ms (no node flags); spawn to exit${command.name.includes('serve') ? ' (serve: to the first 200 of GET /v2/_catalog?n=10)' : ''}`,
      });
    }
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// bin/derrick.js's V8 flags: memory against requests per second

function benchServer(name: string, serving: Serving): BenchServer {
  return {
    name,
    port: Number(new URL(serving.url).port),
    pid: serving.pid,
    url: serving.url,
    stop: serving.stop,
  };
}

/**
 * V8's own account of its pauses: the `--trace-gc` lines of one server (on its stdout), summed. What a heap flag
 * changes is what the collector does, and this measures that alone, free of the CPU-time noise of a shared box
 * (an A/A run of the CPU figure differed by 8%).
 */
export class GcTally {
  /** Main-thread milliseconds in collections (with incremental marking's steps), and their number. */
  ms = 0;
  count = 0;
  private rest = '';

  readonly feed = (chunk: Buffer): void => {
    const lines = (this.rest + chunk.toString()).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) {
      // [pid:0x…]  7385 ms: Scavenge 59.0 (78.2) -> 45.0 (78.5) MB, 0.67 / 0.00 ms  (average mu = …
      // [pid:0x…]  9120 ms: Mark-Compact 15.5 (30.9) -> 12.7 (31.2) MB, 2.71 / 0.00 ms  (+ 3.2 ms in 25 steps …
      const pause =
        /ms: (?:Scavenge|Mark-Compact|Mark-Sweep|Minor Mark-Compact)\b.*? MB, ([\d.]+) \/ [\d.]+ ms/.exec(
          line,
        );
      if (!pause) continue;
      const steps = /\(\+ ([\d.]+) ms in \d+ steps/.exec(line);
      this.ms += Number(pause[1]) + Number(steps?.[1] ?? 0);
      this.count++;
    }
  };

  /** Starts counting afresh. */
  reset(): void {
    this.ms = 0;
    this.count = 0;
  }
}

interface FlagsPass {
  rss: { flags: number; none: number };
  flags: Summary;
  none: Summary;
  /** Collector µs per request in the measured runs (GcTally). */
  gc: { flags: number; none: number };
}

/**
 * One pass of the A/B: both servers started (`first` before the other), each walks 200 catalog pages (its RSS
 * after), then both answer the manifest GET by tag, warmed up for 1 s each, then in alternating load runs.
 */
async function flagsPass(
  tree: { repositories: number; dataDir: string },
  clis: { flags: DerrickCli; none: DerrickCli },
  first: 'flags' | 'none',
  plan: Plan,
): Promise<FlagsPass> {
  const args = [...ONE_WORKER, '--mode', 'serve', '--log-level', 'warn'];
  const second: 'flags' | 'none' = first === 'flags' ? 'none' : 'flags';
  const order = [first, second];
  const started: Partial<Record<'flags' | 'none', Serving>> = {};
  const gc = { flags: new GcTally(), none: new GcTally() };
  // Both traced alike: --trace-gc before the flags under test.
  const traced = (key: 'flags' | 'none') => ({
    cli: { ...clis[key], args: ['--trace-gc', ...clis[key].args] },
    onStdout: gc[key].feed,
  });
  try {
    started[first] = await startServe(tree.dataDir, args, traced(first));
    started[second] = await startServe(tree.dataDir, args, traced(second));
    const servers = { flags: started.flags, none: started.none } as Record<'flags' | 'none', Serving>;
    const lasts = spreadLasts(tree.repositories, 200);
    const rss = { flags: 0, none: 0 };
    for (const key of order) {
      await walkCatalog(servers[key].url, lasts);
      rss[key] = (await residentKb(servers[key].pid)) / 1024;
    }
    const manifest = `/v2/${generatedName(0)}/manifests/latest`;
    const headers = { accept: MANIFEST_ACCEPT };
    // Both warmed up alike first (JIT), so that neither pays it inside a measured run.
    for (const key of order) {
      const { url, pid } = servers[key];
      await runLoad({
        url: `${url}${manifest}`,
        method: 'GET',
        headers,
        connections: plan.connections,
        seconds: 1,
        pid,
      });
    }
    const probe = (key: 'flags' | 'none', name: string): Probe => ({
      key,
      server: benchServer(name, servers[key]),
      path: manifest,
      method: 'GET',
      headers,
      expect: 200,
      connections: plan.connections,
    });
    const flags = clis.flags.args.slice(0, -1).join(' ');
    gc.flags.reset();
    gc.none.reset();
    const s = await runGroup(
      `manifest GET, V8 flags (${first} started first)`,
      [probe('flags', `derrick (${flags})`), probe('none', 'derrick (no node flags)')],
      plan,
    );
    const gcPerRequest = (key: 'flags' | 'none'): number =>
      (gc[key].ms * 1000) /
      Math.max(
        1,
        get(s, key).runs.reduce((sum, run) => sum + run.requests, 0),
      );
    return {
      rss,
      flags: get(s, 'flags'),
      none: get(s, 'none'),
      gc: { flags: gcPerRequest('flags'), none: gcPerRequest('none') },
    };
  } finally {
    await Promise.all(Object.values(started).map((server) => server.stop()));
  }
}

/**
 * The V8 flag measured while bin/derrick.js gives node none: a smaller young generation, for RSS.
 * `BENCH_CANDIDATE_FLAGS="--max-semi-space-size=12"` measures another.
 */
const CANDIDATE_FLAGS = process.env.BENCH_CANDIDATE_FLAGS?.split(/\s+/).filter(Boolean) ?? [
  '--max-semi-space-size=8',
];

/**
 * Two one-worker `derrick serve --mode serve` on the largest generated tree, both from the bundle: with the node
 * flags of bin/derrick.js's exec line (while it has none, with CANDIDATE_FLAGS) and with none (flagsPass). Four
 * passes in a full run, two with --quick, one in tiny size; the servers are started in alternating order, so that
 * neither is always the first started; the figures are the means of the passes. (An A/A run here, the same flags
 * in both, differed by 8% in CPU µs/request: the noise of a shared box.)
 */
export async function measureV8Flags(fixtures: Fixtures, plan: Plan): Promise<Row[]> {
  const largest = [...fixtures.trees].sort((a, b) => b.repositories - a.repositories)[0];
  if (!largest) return [];
  const cli = derrickCli('serve');
  const bin = cli.args.slice(-1);
  const shipped = cli.args.slice(0, -1);
  // bin/derrick.js's own flags against none; while it gives none, the candidate against none.
  const flags = shipped.length > 0 ? shipped : CANDIDATE_FLAGS;
  const clis = { flags: { ...cli, args: [...flags, ...bin] }, none: { ...cli, args: bin } };
  const shown = `${flags.join(' ')}${shipped.length > 0 ? " (bin/derrick.js's)" : ' (a candidate; bin/derrick.js gives none)'}`;
  const passes: FlagsPass[] = [];
  // Four passes (two in each order) in a full run: one pass's ratio moved by up to 19% on this machine.
  const firsts =
    plan.rounds > 2
      ? (['flags', 'none', 'flags', 'none'] as const)
      : plan.rounds > 1
        ? (['flags', 'none'] as const)
        : (['flags'] as const);
  for (const first of firsts) passes.push(await flagsPass(largest, clis, first, plan));
  const mean = (pick: (pass: FlagsPass) => number) =>
    passes.reduce((sum, pass) => sum + pick(pass), 0) / passes.length;
  const rss = { flags: mean((p) => p.rss.flags), none: mean((p) => p.rss.none) };
  const rps = { flags: mean((p) => p.flags.requestsPerSecond), none: mean((p) => p.none.requestsPerSecond) };
  const cpu = {
    flags: mean((p) => p.flags.cpuMicrosPerRequest),
    none: mean((p) => p.none.cpuMicrosPerRequest),
  };
  // µs of collection per request, and their difference against the CPU a request costs without the flags.
  const gc = { flags: mean((p) => p.gc.flags), none: mean((p) => p.gc.none) };
  const gcCost = (gc.flags - gc.none) / cpu.none;
  const n = largest.repositories.toLocaleString('en-US');
  const ratio = rps.flags / rps.none;
  const what = flags.join(' ');
  const each = passes
    .map(
      (p, i) =>
        `pass ${i + 1} (${firsts[i] ?? '?'} started first): ${describe(p.flags)} with, ${describe(p.none)} without`,
    )
    .join('; ');
  return [
    {
      measure: `RSS after 200 catalog pages, ${n} repositories: ${what} vs none`,
      value: round(rss.flags),
      unit: 'MB',
      reference: { name: 'no node flags', value: round(rss.none) },
      ratio: round(rss.flags / rss.none, 2),
      target: '< 100 MB',
      met: rss.flags < 100,
      note: `${shown}; one worker, serve mode; VmRSS after 200 × GET /v2/_catalog?n=100&last=…, mean of ${passes.length} pass(es)`,
    },
    {
      measure: `manifest GET by tag (serve, 1 worker): ${what} vs none`,
      value: tidy(rps.flags),
      unit: 'req/s',
      reference: { name: 'no node flags', value: tidy(rps.none) },
      ratio: tidy(ratio),
      target: '≥ 0.95× without the flags (their cost)',
      met: ratio >= 0.95,
      note: `${shown}; ${fmt(cpu.flags)} vs ${fmt(cpu.none)} CPU µs/req, means of ${passes.length} pass(es); ${each}; ${roundsNote(
        plan,
        passes.flatMap((p) => [p.flags, p.none]),
      )}`,
    },
    {
      measure: `manifest GET by tag (serve, 1 worker): collector time, ${what} vs none`,
      value: round(gc.flags, 2),
      unit: 'µs/req',
      reference: { name: 'no node flags', value: round(gc.none, 2) },
      ratio: round(gc.flags / gc.none, 2),
      target: "≤ 2% of a request's CPU more than without the flags",
      met: gcCost <= 0.02,
      note: `${shown}; V8's own pause times (--trace-gc on both servers, with incremental marking's steps) over the requests of the runs above, means of ${passes.length} pass(es): ${fmt(
        gc.flags - gc.none,
      )} µs a request more, ${fmt(gcCost * 100)}% of the ${fmt(cpu.none)} CPU µs a request costs without — free of the CPU figure's noise`,
    },
  ];
}
