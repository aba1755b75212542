/**
 * The shared middle of the HTTP measures (bench/measures-http.ts, bench/measures-catalog.ts): a group of compared
 * runs (`Probe`s) run for several rounds, the servers alternating (`runGroup`), each run summarised as medians
 * (`Summary`), and the rows made of them (`compareRow` on req/s, `costRow` on server CPU µs per request). Also
 * the small tools every part of the harness prints with: `log`, `fmt`, `tidy`, `count`, `elapsedSeconds`.
 */
import { median, runLoad, type LoadResult } from './load.ts';
import { request, type BenchServer } from './servers.ts';
import type { Plan, Row } from './types.ts';

// ---------------------------------------------------------------------------------------------------------------
// Small tools

export function log(text: string): void {
  console.error(`bench: ${text}`);
}

export function elapsedSeconds(since: number): number {
  return (Date.now() - since) / 1000;
}

/** Rounded for the JSON: whole numbers from 100 up, one decimal from 10, else three significant digits. */
export function tidy(value: number): number {
  if (!Number.isFinite(value)) return value;
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value);
  if (abs >= 10) return Math.round(value * 10) / 10;
  return Number(value.toPrecision(3));
}

export function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function count(value: number): string {
  return value.toLocaleString('en-US');
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP runs

export interface Probe {
  key: string;
  server: BenchServer;
  path: string;
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** The status every answer must have (checked once before the runs). */
  expect: number;
  connections: number;
}

export interface Summary {
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
export async function runGroup(title: string, probes: Probe[], plan: Plan): Promise<Map<string, Summary>> {
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

export function get(summaries: Map<string, Summary>, key: string): Summary {
  const summary = summaries.get(key);
  if (!summary) throw new Error(`bench: no run named ${key}`);
  return summary;
}

/** "12,345 req/s at 85 CPU µs/req (p50 1.2 ms, p99 3.4 ms)" */
export function describe(summary: Summary): string {
  const latency =
    summary.p50 === undefined
      ? ''
      : `, p50 ${fmt(summary.p50)} ms${summary.p99 === undefined ? '' : `, p99 ${fmt(summary.p99)} ms`}`;
  const problems = summary.problems > 0 ? `, ${count(summary.problems)} errors or unexpected statuses` : '';
  return `${fmt(summary.requestsPerSecond)} req/s at ${fmt(summary.cpuMicrosPerRequest)} CPU µs/req${latency}${problems}`;
}

export function roundsNote(plan: Plan, summaries: Summary[]): string {
  const spread = Math.max(...summaries.map((s) => s.spread));
  return `median of ${plan.rounds} × ${plan.seconds} s${plan.rounds > 1 ? `, req/s spread up to ±${Math.round((spread / 2) * 100)}%` : ''}`;
}

/** A req/s row: derrick against one reference, the other servers named in the note. */
export function compareRow(
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
export function costRow(
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
