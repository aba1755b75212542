/**
 * nginx sendfile in serve mode (issue 11, item 6): the same blob downloaded with curl from nginx alone (the file in
 * v2/web), from nginx in front of `derrick serve --serve-sendfile x-accel-redirect` (the configuration
 * docs/operations.md documents: derrick authorizes and answers the headers, nginx sends the file from v2/content),
 * and from derrick alone in serve mode (Node streaming it). The three alternate within each round, the order
 * rotating, medians of the rounds reported. Full size: the 1 GiB blob, `plan.downloads` sequential downloads per
 * server and round, target ≥ 0.8× nginx alone; smaller sizes: the 1 MiB blob (a few downloads, no target: with so
 * few bytes the round trip through derrick is the figure, not the copying).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { median, runDownloads, type LoadResult } from './load.ts';
import type { Servers } from './measures-http.ts';
import { startDerrick, startSendfileNginxServer, type BenchServer } from './servers.ts';
import { count, elapsedSeconds, fmt, log, tidy } from './summary.ts';
import type { Fixtures, Plan, Row } from './types.ts';

/** Downloads per server and round of the 1 MiB blob (tiny and quick sizes). */
const SMALL_DOWNLOADS = 5;

export async function sendfileMeasures(
  fixtures: Fixtures,
  servers: Servers,
  plan: Plan,
  workDir: string,
  workers: number | undefined,
): Promise<Row[]> {
  const large = fixtures.blob1GiB !== undefined && plan.downloads > 0;
  const blob = (large ? fixtures.blob1GiB : undefined) ?? fixtures.blob1MiB;
  const downloads = large ? plan.downloads : SMALL_DOWNLOADS;
  const label = large ? '1 GiB' : '1 MiB';
  const config = path.join(workDir, 'derrick-sendfile.yaml');
  writeFileSync(config, 'serve:\n  sendfile: x-accel-redirect\n');
  const derrick = await startDerrick({
    dataDir: fixtures.dataDir,
    mode: 'serve',
    name: 'derrick (serve, x-accel-redirect)',
    config,
    ...(workers === undefined ? {} : { workers }),
  });
  const proxy = await startSendfileNginxServer(
    `127.0.0.1:${derrick.port}`,
    path.join(fixtures.dataDir, 'v2', 'content'),
  );
  const v2Path = `/v2/${blob.name}/blobs/${blob.digest}`;
  const targets: { key: string; server: BenchServer; path: string }[] = [
    { key: 'nginx', server: servers.nginx, path: `/${blob.name}/blobs/${blob.digest}` },
    { key: 'sendfile', server: proxy, path: v2Path },
    { key: 'derrick', server: servers.serve, path: v2Path },
  ];
  const results = new Map<string, LoadResult[]>(targets.map((t) => [t.key, []]));
  const started = Date.now();
  try {
    for (let round = 0; round < plan.rounds; round++)
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(i + round) % targets.length];
        if (!target) continue;
        results.get(target.key)?.push(
          await runDownloads({
            url: `${target.server.url}${target.path}`,
            count: downloads,
            pid: target.server.pid,
            expectBytes: blob.size,
          }),
        );
      }
  } finally {
    await proxy.stop();
    await derrick.stop();
  }
  const speed = (key: string): number =>
    median((results.get(key) ?? []).map((run) => (run.bytesPerSecond ?? 0) / 1e6));
  const cpu = (key: string): number =>
    median((results.get(key) ?? []).map((run) => run.cpuSeconds / run.requests));
  const nginx = speed('nginx');
  const sendfile = speed('sendfile');
  const alone = speed('derrick');
  log(
    `blob GET ${label} (sendfile): ${fmt(elapsedSeconds(started))} s — nginx ${fmt(nginx)} MB/s, nginx + derrick x-accel-redirect ${fmt(sendfile)} MB/s, derrick alone ${fmt(alone)} MB/s`,
  );
  const how = `curl, ${downloads} sequential downloads of ${count(blob.size)} B per server and round, median of ${plan.rounds} round(s), alternating with nginx alone`;
  return [
    {
      measure: `blob GET ${label}, curl (serve, x-accel-redirect via nginx)`,
      value: tidy(sendfile),
      unit: 'MB/s',
      reference: { name: 'nginx alone', value: tidy(nginx) },
      ratio: tidy(sendfile / nginx),
      ...(large ? { target: '≥ 0.8× nginx alone on the same file', met: sendfile / nginx >= 0.8 } : {}),
      note: `${how}; CPU per download: nginx in front ${fmt(cpu('sendfile'))} s (derrick's not counted), nginx alone ${fmt(cpu('nginx'))} s`,
    },
    {
      measure: `blob GET ${label}, curl (serve, derrick alone)`,
      value: tidy(alone),
      unit: 'MB/s',
      reference: { name: 'nginx alone', value: tidy(nginx) },
      ratio: tidy(alone / nginx),
      note: `${how}; derrick streaming it itself (serve.sendfile off), for comparison; CPU per download ${fmt(cpu('derrick'))} s`,
    },
  ];
}
