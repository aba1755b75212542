/**
 * What metrics and the access log cost (issue 11): manifest GET and HEAD by tag in serve mode, against two
 * derrick servers started here with the same workers — one with `/metrics` counting and one JSON access-log line
 * per request, one with both off — alternating in the same group of runs. The access log is really written: to
 * the server's stdout, a pipe the harness drains (as a supervisor such as systemd or a container runtime reads it;
 * the harness does not decode it, which cost 3–4% of a core at 10,000 lines a second on the cores under test).
 */
import { MANIFEST_ACCEPT, startDerrick, type BenchServer } from './servers.ts';
import { compareRow, get, runGroup, type Probe } from './summary.ts';
import type { Fixtures, Plan, Row } from './types.ts';

const TARGET = 0.9;

export async function observabilityMeasures(
  fixtures: Fixtures,
  plan: Plan,
  workers: number | undefined,
): Promise<Row[]> {
  const common = {
    dataDir: fixtures.dataDir,
    mode: 'serve' as const,
    ...(workers === undefined ? {} : { workers }),
  };
  const on: BenchServer = await startDerrick({
    ...common,
    name: 'derrick (metrics + access log)',
    args: ['--metrics-enabled', '--access-log', '--log-level', 'info'],
  });
  const off: BenchServer = await startDerrick({
    ...common,
    name: 'derrick (both off)',
    args: ['--no-metrics-enabled', '--no-access-log'],
  });
  const rows: Row[] = [];
  const byTag = `/v2/${fixtures.image.name}/manifests/${fixtures.image.tag}`;
  try {
    for (const method of ['GET', 'HEAD'] as const) {
      const probe = (key: string, server: BenchServer): Probe => ({
        key,
        server,
        path: byTag,
        method,
        headers: { accept: MANIFEST_ACCEPT },
        expect: 200,
        connections: plan.connections,
      });
      const s = await runGroup(
        `manifest ${method}, metrics and access log`,
        [probe('on', on), probe('off', off)],
        plan,
      );
      const row = compareRow(
        `manifest ${method} by tag (serve), metrics + access log on vs off`,
        plan,
        get(s, 'on'),
        get(s, 'off'),
        [],
        {
          text: `≥ ${TARGET}× with both off`,
          met: get(s, 'on').requestsPerSecond >= TARGET * get(s, 'off').requestsPerSecond,
        },
      );
      const cost = get(s, 'on').cpuMicrosPerRequest - get(s, 'off').cpuMicrosPerRequest;
      rows.push({
        ...row,
        note: `${row.note}; their cost ${cost.toFixed(1)} CPU µs a request; the access log written to the server's stdout, a pipe the harness drains`,
      });
    }
  } finally {
    await on.stop();
    await off.stop();
  }
  return rows;
}
