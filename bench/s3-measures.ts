/**
 * The `s3` group of `npm run bench` (issue 10): derrick with its tree in a bucket, against docker-registry with its
 * S3 driver on the same Ceph RGW, and against derrick on the file system — side by side in one run, as ratios.
 *
 * 1. The RGW (bench/s3-store.ts) and the fixtures in it (bench/s3-fixtures.ts): the generated trees of 100 and
 *    10,000 repositories and the main tree, for derrick and for docker-registry.
 * 2. The servers (bench/s3-servers.ts), each checked before any figure: skopeo inspects and copies the same image
 *    from docker-registry-on-S3 and from derrick-on-S3 and must get the digest published.
 * 3. Manifest GET and HEAD by tag (wrk / ab, bench/summary.ts's alternating rounds): derrick-on-S3 in serve and in
 *    redirect mode, docker-registry-on-S3, derrick on the file system.
 * 4. `_catalog?n=100`, first page and a deep `last=` page: derrick-on-S3 and derrick-FS under load (wrk), and
 *    sequential requests on one kept-alive connection against docker-registry-on-S3, whose pages take seconds —
 *    its request count bounded (`registryRequests`) and each request given `registryTimeoutMs`; a page that does
 *    not come back in time counts as that long, so the ratio is then a lower bound (said so).
 * 5. tags/list, 10 tags against 10,000, on S3 (and on the file system for reference).
 * 6. Publish → visible and publish throughput (bench/s3-publish.ts).
 *
 * The S3 rows' cost ratios are on requests per second (wall-clock cost: most of a request's cost on S3 is the
 * round trip to the store, not derrick's CPU), with derrick's CPU µs per request in the note.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { generatedName, runCommand } from './fixtures.ts';
import { median } from './load.ts';
import { buildS3Fixtures, DERRICK_BUCKET, REGISTRY_BUCKET } from './s3-fixtures.ts';
import { measureS3PublishThroughput, measureS3Visibility } from './s3-publish.ts';
import { startDerrickS3, startDockerRegistryS3 } from './s3-servers.ts';
import { s3Client, startS3, stopS3 } from './s3-store.ts';
import { MANIFEST_ACCEPT, request, startDerrick, type BenchServer } from './servers.ts';
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
import type { BenchSize, Fixtures, Plan, Row } from './types.ts';

export interface S3Plan {
  /**
   * Sequential _catalog requests per page against docker-registry-on-S3: at most `registryRequests`, no more once
   * `registryBudgetMs` is spent (at least one), each given `registryTimeoutMs`.
   */
  registryRequests: number;
  registryBudgetMs: number;
  registryTimeoutMs: number;
  /** Sequential _catalog requests per page against derrick (its median latency is compared). */
  derrickRequests: number;
  /** Publishes checked on every replica, and the size of the published image. */
  publishes: number;
  bytes: number;
}

const MiB = 1024 * 1024;
export const S3_PLANS: Record<BenchSize, S3Plan> = {
  tiny: {
    registryRequests: 1,
    registryBudgetMs: 0,
    registryTimeoutMs: 60_000,
    derrickRequests: 10,
    publishes: 5,
    bytes: 8 * MiB,
  },
  quick: {
    registryRequests: 3,
    registryBudgetMs: 20_000,
    registryTimeoutMs: 120_000,
    derrickRequests: 50,
    publishes: 100,
    bytes: 128 * MiB,
  },
  // docker-registry-on-S3's deep page at 10,000 repositories takes minutes (≈ 50 ms per repository before it).
  full: {
    registryRequests: 3,
    registryBudgetMs: 60_000,
    registryTimeoutMs: 900_000,
    derrickRequests: 200,
    publishes: 1000,
    bytes: 1024 * MiB,
  },
};

const PREFIX = 'S3: ';

// ---------------------------------------------------------------------------------------------------------------
// Checks with a real client

async function skopeo(args: string[]): Promise<string> {
  return (await runCommand('skopeo', args)).stdout;
}

/** skopeo inspects `name:latest` on `server` and copies it (digests preserved): both must name `digest`. */
async function checkWithSkopeo(server: BenchServer, name: string, digest: string, workDir: string) {
  const reference = `docker://127.0.0.1:${server.port}/${name}:latest`;
  const inspected = JSON.parse(await skopeo(['inspect', '--tls-verify=false', reference])) as {
    Digest?: string;
  };
  if (inspected.Digest !== digest)
    throw new Error(`${server.name}: skopeo inspect ${reference} gives ${inspected.Digest}, not ${digest}`);
  const dir = mkdtempSync(path.join(workDir, 'skopeo-'));
  try {
    await skopeo([
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      '--preserve-digests',
      reference,
      `oci:${dir}:latest`,
    ]);
    const copied = await skopeo(['inspect', '--raw', `oci:${dir}:latest`]);
    const copiedDigest = `sha256:${createHash('sha256').update(copied).digest('hex')}`;
    if (copiedDigest !== digest)
      throw new Error(
        `${server.name}: skopeo copy ${reference} gave manifest ${copiedDigest}, not ${digest}`,
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sequential requests (the slow server's pages)

interface Timed {
  /** Milliseconds of each request; a timed-out request counts as the timeout. */
  ms: number[];
  timedOut: number;
  names: number;
}

function timedGet(agent: http.Agent, url: string, timeoutMs: number): Promise<{ ms: number; names: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const body = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200)
          return reject(new Error(`GET ${url} answered ${res.statusCode}: ${body}`));
        const names = (JSON.parse(body) as { repositories?: unknown[] }).repositories?.length ?? 0;
        resolve({ ms, names });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error('timeout'), { code: 'BENCH_TIMEOUT' })),
    );
    req.on('error', reject);
  });
}

async function sequential(
  url: string,
  bounds: { requests: number; budgetMs: number; timeoutMs: number },
): Promise<Timed> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: Timed = { ms: [], timedOut: 0, names: 0 };
  const started = Date.now();
  try {
    for (let i = 0; i < bounds.requests && (i === 0 || Date.now() - started < bounds.budgetMs); i++) {
      try {
        const answer = await timedGet(agent, url, bounds.timeoutMs);
        out.ms.push(answer.ms);
        out.names = answer.names;
      } catch (error) {
        if ((error as { code?: string }).code !== 'BENCH_TIMEOUT') throw error;
        out.ms.push(bounds.timeoutMs);
        out.timedOut++;
        break; // the next would time out too: bounded
      }
    }
  } finally {
    agent.destroy();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Rows

/** A wall-clock cost row (req/s under the same load) of `summary` against `base`, with its target. */
function rpsCostRow(
  measure: string,
  plan: Plan,
  summary: Summary,
  base?: { label: string; summary: Summary },
) {
  const row: Row = {
    measure,
    value: tidy(summary.requestsPerSecond),
    unit: 'req/s',
    note: `${describe(summary)}; ${roundsNote(plan, [summary, ...(base ? [base.summary] : [])])}`,
  };
  if (!base) return row;
  const ratio = base.summary.requestsPerSecond / summary.requestsPerSecond;
  row.reference = { name: base.label, value: tidy(base.summary.requestsPerSecond) };
  row.ratio = tidy(ratio);
  row.target = `≤ 2× the ${base.label} cost`;
  row.met = ratio <= 2;
  row.note = `ratio = cost per request (1 ÷ req/s) against the ${base.label}, ${fmt(ratio)}× (CPU µs/req ratio: ${fmt(summary.cpuMicrosPerRequest / base.summary.cpuMicrosPerRequest)}×); ${row.note ?? ''}`;
  return row;
}

// ---------------------------------------------------------------------------------------------------------------
// The group

export async function s3Measures(
  fixtures: Fixtures,
  plan: Plan,
  size: BenchSize,
  workers: number | undefined,
): Promise<Row[]> {
  const s3Plan = S3_PLANS[size];
  const started = Date.now();
  const s3 = await startS3(fixtures.workDir);
  const client = s3Client(s3);
  const servers: BenchServer[] = [];
  const track = async (server: Promise<BenchServer>): Promise<BenchServer> => {
    const started = await server;
    servers.push(started);
    return started;
  };
  // One after another: eight servers starting at once on two cores miss their start-up timeout.
  const inTurn = async <T extends (() => Promise<BenchServer>)[]>(
    starts: [...T],
  ): Promise<{ [K in keyof T]: BenchServer }> => {
    const out: BenchServer[] = [];
    for (const start of starts) out.push(await track(start()));
    return out as { [K in keyof T]: BenchServer };
  };
  try {
    // The trees compared: the two smaller generated ones (100 and 10,000 repositories, 10 and 100 in tiny size).
    const trees = [...fixtures.trees].sort((a, b) => a.repositories - b.repositories).slice(0, 2);
    const [small, large] = trees;
    if (!small || !large) throw new Error('bench: the S3 group needs two generated trees');
    const s3fx = await buildS3Fixtures(
      client,
      fixtures,
      trees.map((tree) => tree.repositories),
    );
    log(`S3 fixtures ready in ${fmt(elapsedSeconds(started))} s`);
    const w = workers === undefined ? {} : { workers };
    const at = (map: Map<number, string>, n: number): string => {
      const value = map.get(n);
      if (value === undefined) throw new Error(`bench: no S3 fixture for ${n} repositories`);
      return value;
    };
    const label = (n: number) => `${count(n)} repositories`;
    const [registrySmall, registryLarge, s3Small, s3Large, s3Redirect, s3Main, fsSmall, fsLarge] =
      await inTurn([
        () =>
          startDockerRegistryS3(fixtures.workDir, s3, {
            bucket: REGISTRY_BUCKET,
            rootDirectory: at(s3fx.registryRoots, small.repositories),
            name: `docker-registry-on-S3 (${label(small.repositories)})`,
          }),
        () =>
          startDockerRegistryS3(fixtures.workDir, s3, {
            bucket: REGISTRY_BUCKET,
            rootDirectory: at(s3fx.registryRoots, large.repositories),
            name: 'docker-registry-on-S3',
          }),
        () =>
          startDerrickS3(s3, {
            location: at(s3fx.derrickTrees, small.repositories),
            mode: 'serve',
            name: `derrick-on-S3 (${label(small.repositories)})`,
            ...w,
          }),
        () =>
          startDerrickS3(s3, {
            location: at(s3fx.derrickTrees, large.repositories),
            mode: 'serve',
            name: 'derrick-on-S3 (serve)',
            ...w,
          }),
        () =>
          startDerrickS3(s3, {
            location: at(s3fx.derrickTrees, large.repositories),
            mode: 'redirect',
            name: 'derrick-on-S3 (redirect)',
            ...w,
          }),
        () =>
          startDerrickS3(s3, {
            location: s3fx.derrickMain,
            mode: 'serve',
            name: 'derrick-on-S3 (main tree)',
            ...w,
          }),
        () =>
          startDerrick({
            dataDir: small.dataDir,
            mode: 'serve',
            name: `derrick-FS (${label(small.repositories)})`,
            ...w,
          }),
        () => startDerrick({ dataDir: large.dataDir, mode: 'serve', name: 'derrick-FS (serve)', ...w }),
      ]);
    const fsMain = await track(
      startDerrick({ dataDir: fixtures.dataDir, mode: 'serve', name: 'derrick-FS (main tree)', ...w }),
    );

    // The same image, by a real client, from both S3 servers, before any figure.
    const name = generatedName(0);
    await checkWithSkopeo(registryLarge, name, fixtures.image.digest, fixtures.workDir);
    await checkWithSkopeo(s3Large, name, fixtures.image.digest, fixtures.workDir);
    log(`S3 servers up and checked with skopeo in ${fmt(elapsedSeconds(started))} s`);

    const rows: Row[] = [];
    const c = plan.connections;
    const accept = { accept: MANIFEST_ACCEPT };

    // Manifest GET and HEAD by tag.
    for (const method of ['GET', 'HEAD'] as const) {
      const byTag = `/v2/${name}/manifests/latest`;
      const probe = (key: string, server: BenchServer): Probe => ({
        key,
        server,
        path: byTag,
        method,
        headers: accept,
        expect: 200,
        connections: c,
      });
      const expectRedirect = method === 'GET' ? await redirectStatus(s3Redirect, byTag) : 200;
      const probes = [
        probe('registry', registryLarge),
        probe('serve', s3Large),
        { ...probe('redirect', s3Redirect), expect: expectRedirect },
        probe('fs', fsLarge),
      ];
      const s = await runGroup(`S3 manifest ${method} by tag`, probes, plan);
      const target = (summary: Summary) => {
        const ratio = summary.requestsPerSecond / get(s, 'registry').requestsPerSecond;
        return { text: '≥ 20× docker-registry-on-S3 req/s', met: ratio >= 20 };
      };
      rows.push(
        compareRow(
          `${PREFIX}manifest ${method} by tag (serve)`,
          plan,
          get(s, 'serve'),
          get(s, 'registry'),
          [get(s, 'fs')],
          target(get(s, 'serve')),
        ),
        compareRow(
          `${PREFIX}manifest ${method} by tag (redirect)`,
          plan,
          get(s, 'redirect'),
          get(s, 'registry'),
          [get(s, 'fs')],
          target(get(s, 'redirect')),
        ),
      );
    }

    const page = 100;
    const deepOf = (n: number): string => {
      // ~90% in (as bench/measures-catalog.ts), by the tree's sorted names.
      const names = Array.from({ length: n }, (_, i) => generatedName(i)).sort((a, b) =>
        a < b ? -1 : a > b ? 1 : 0,
      );
      const index = Math.max(0, Math.min(Math.floor(0.9 * (n - 1)), n - 1 - page));
      return names[index] ?? '';
    };
    const pages = {
      first: () => `/v2/_catalog?n=${page}`,
      deep: (n: number) => `/v2/_catalog?n=${page}&last=${encodeURIComponent(deepOf(n))}`,
    };
    // _catalog pages one request at a time (a page of derrick-on-S3 costs a read of every record it names, so
    // under 32 connections its pages queue for longer than wrk waits): docker-registry-on-S3 bounded, derrick on
    // S3 and on the file system over up to `derrickRequests` requests or 20 s.
    const derrickBounds = { requests: s3Plan.derrickRequests, budgetMs: 20_000, timeoutMs: 60_000 };
    const times = new Map<string, Timed>();
    for (const [n, registry, derrick, onFs] of [
      [small.repositories, registrySmall, s3Small, fsSmall],
      [large.repositories, registryLarge, s3Large, fsLarge],
    ] as const)
      for (const kind of ['first', 'deep'] as const) {
        const urlPath = kind === 'first' ? pages.first() : pages.deep(n);
        times.set(
          `registry-${kind}-${n}`,
          await sequential(`${registry.url}${urlPath}`, {
            requests: s3Plan.registryRequests,
            budgetMs: s3Plan.registryBudgetMs,
            timeoutMs: s3Plan.registryTimeoutMs,
          }),
        );
        times.set(`s3-${kind}-${n}`, await sequential(`${derrick.url}${urlPath}`, derrickBounds));
        times.set(`fs-${kind}-${n}`, await sequential(`${onFs.url}${urlPath}`, derrickBounds));
      }
    const timed = (key: string): Timed => {
      const found = times.get(key);
      if (!found) throw new Error(`bench: no timing ${key}`);
      return found;
    };
    const describeTimed = (t: Timed): string =>
      `${fmt(median(t.ms))} ms median over ${t.ms.length} request${t.ms.length > 1 ? 's' : ''} (${t.names} names)`;
    for (const n of [small.repositories, large.repositories])
      for (const kind of ['first', 'deep'] as const) {
        const slow = timed(`registry-${kind}-${n}`);
        const fast = timed(`s3-${kind}-${n}`);
        const onFs = timed(`fs-${kind}-${n}`);
        const slowMs = median(slow.ms);
        const fastMs = median(fast.ms);
        // Pages per second, one request at a time: derrick's ÷ docker-registry's is its time ÷ derrick's.
        const ratio = slowMs / fastMs;
        const bounded = slow.timedOut > 0;
        const what = kind === 'first' ? 'first page' : `deep page (last=${deepOf(n)})`;
        rows.push({
          measure: `${PREFIX}_catalog?n=${page} ${what}, ${label(n)}`,
          value: tidy(1000 / fastMs),
          unit: 'pages/s',
          reference: { name: 'docker-registry-on-S3', value: Number((1000 / slowMs).toPrecision(3)) },
          ratio: tidy(ratio),
          ...(n === large.repositories
            ? {
                target: `≥ 100× docker-registry-on-S3 (time per page)${bounded ? ', lower bound' : ''}`,
                met: ratio >= 100,
              }
            : {}),
          note: `one request at a time on a kept-alive connection: derrick-on-S3 ${describeTimed(fast)}; docker-registry-on-S3 ${bounded ? `> ${fmt(slowMs / 1000)} s (it timed out there: the ratio is a lower bound)` : `${describeTimed(slow)}, bounded to ${s3Plan.registryRequests} requests or ${fmt(s3Plan.registryBudgetMs / 1000)} s`}; derrick-FS ${describeTimed(onFs)}`,
        });
      }
    for (const kind of ['first', 'deep'] as const) {
      const largeMs = median(timed(`s3-${kind}-${large.repositories}`).ms);
      const smallMs = median(timed(`s3-${kind}-${small.repositories}`).ms);
      const ratio = largeMs / smallMs;
      rows.push({
        measure: `${PREFIX}_catalog?n=${page} ${kind} page, ${label(large.repositories)} vs ${count(small.repositories)}`,
        value: tidy(largeMs),
        unit: 'ms/page',
        reference: { name: `${count(small.repositories)}-repository bucket`, value: tidy(smallMs) },
        ratio: tidy(ratio),
        target: `≤ 2× the ${count(small.repositories)}-repository bucket cost`,
        met: ratio <= 2,
        note: `derrick-on-S3, one request at a time (as above); derrick-FS ${fmt(median(timed(`fs-${kind}-${large.repositories}`).ms))} vs ${fmt(median(timed(`fs-${kind}-${small.repositories}`).ms))} ms`,
      });
    }

    // tags/list, 10 tags against 10,000.
    const tags = await runGroup(
      'S3 tags/list',
      [s3Main, fsMain].flatMap((server, i) =>
        [fixtures.tags10, fixtures.tags10k].map((repo, j) => ({
          key: `${i === 0 ? 's3' : 'fs'}-${j === 0 ? 'small' : 'large'}`,
          server,
          path: `/v2/${repo}/tags/list?n=100`,
          method: 'GET' as const,
          expect: 200,
          connections: c,
        })),
      ),
      plan,
    );
    const tagRow = rpsCostRow(
      `${PREFIX}tags/list?n=100, ${fixtures.tags10k} (many tags)`,
      plan,
      get(tags, 's3-large'),
      {
        label: `${fixtures.tags10} repository`,
        summary: get(tags, 's3-small'),
      },
    );
    tagRow.note = `derrick-FS: ${describe(get(tags, 'fs-large'))} (10-tag: ${describe(get(tags, 'fs-small'))}); ${tagRow.note ?? ''}`;
    rows.push(tagRow);

    await Promise.all(servers.map((server) => server.stop()));
    servers.length = 0;

    rows.push(...(await measureS3Visibility(fixtures, s3, client, { publishes: s3Plan.publishes, workers })));
    rows.push(...(await measureS3PublishThroughput(fixtures, s3, client, { bytes: s3Plan.bytes })));
    log(
      `S3 measures done in ${fmt(elapsedSeconds(started))} s (buckets ${DERRICK_BUCKET}, ${REGISTRY_BUCKET})`,
    );
    return rows;
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    client.destroy();
    await stopS3(s3);
  }
}

/** What derrick-on-S3 in redirect mode answers a manifest GET with (a redirect to the bucket). */
async function redirectStatus(server: BenchServer, urlPath: string): Promise<number> {
  const answer = await request(`${server.url}${urlPath}`, { headers: { accept: MANIFEST_ACCEPT } });
  if (answer.status < 300 || answer.status >= 400)
    throw new Error(
      `${server.name}: a manifest GET in redirect mode answered ${answer.status}, not a redirect`,
    );
  return answer.status;
}
