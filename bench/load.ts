/**
 * Load drivers for the HTTP measures, and the server CPU time they cost.
 *
 * - GET: `wrk -t1 -c<conns> -d<seconds>s --latency` (Requests/sec, latency percentiles).
 * - HEAD: `ab -i -k -c<conns> -t<seconds> -n 1000000` (Requests per second, percentiles).
 * - Large blobs: sequential `curl -s -o /dev/null -w '%{speed_download}'` downloads.
 *
 * None of them follows redirects, which is what we want: the figure is derrick's answer, not the CDN's.
 * Around every run, the server's CPU time (utime + stime of its whole process tree, from /proc/<pid>/stat) is read
 * before and after; ÷ requests completed gives CPU µs per request, a steadier figure than req/s on a shared box
 * where the load generator and the server compete for the same two cores.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (100 on Linux, but ask). */
let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

/** The fields of /proc/<pid>/stat we use; `comm` may hold spaces and parentheses, so split after the last ')'. */
function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] = state, [1] = ppid, … [11] = utime, [12] = stime
  return { pid, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

function allProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) out.push(stat);
  }
  return out;
}

/** `root` and every live descendant of it (a cluster's primary and workers, nginx's master and workers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const { pid, ppid } of allProcesses()) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    if (pid === undefined) break;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU seconds (user + system) used so far by `root`'s process tree. */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / clockTicks();
}

/** Load generators running now, so that an interrupted run can stop them. */
const running = new Set<ChildProcess>();

/** Kills every load generator still running (SIGINT, errors). */
export function killLoadGenerators(): void {
  for (const child of running) child.kill('SIGKILL');
}

interface Output {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runTool(command: string, args: string[], timeoutMs: number): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new Error(`cannot run ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface LoadSpec {
  url: string;
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
  /** The server's root process: its whole tree's CPU time is measured. */
  pid: number;
}

export interface LoadResult {
  tool: 'wrk' | 'ab' | 'curl';
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** Latency percentiles in ms, when the tool reports them. */
  latencyMs: { p50?: number; p90?: number; p99?: number };
  /** Socket errors, timeouts, failed requests. */
  errors: number;
  /** Responses outside 2xx/3xx (wrk) or outside 2xx (ab). */
  badStatus: number;
  /** Server CPU seconds used during the run, and per request in µs. */
  cpuSeconds: number;
  cpuMicrosPerRequest: number;
  /** Bytes per second received (curl downloads). */
  bytesPerSecond?: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60000 };

/** "1.23ms" → 1.23 (wrk's latency figures). */
function wrkDuration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) return NaN;
  return Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? NaN);
}

/**
 * The p50/p90/p99 latencies of a latency distribution as wrk and ab print it (`  50%  1.2ms`): `value` is the
 * pattern after the percent sign, and `toMs` turns what it captures into milliseconds.
 */
function percentiles(output: string, value: string, toMs: (text: string) => number): LoadResult['latencyMs'] {
  const latencyMs: LoadResult['latencyMs'] = {};
  for (const [key, percent] of [
    ['p50', '50'],
    ['p90', '90'],
    ['p99', '99'],
  ] as const) {
    const match = new RegExp(`^\\s+${percent}%\\s+${value}`, 'm').exec(output);
    if (match?.[1]) latencyMs[key] = toMs(match[1]);
  }
  return latencyMs;
}

export function parseWrk(
  output: string,
): Omit<LoadResult, 'tool' | 'cpuSeconds' | 'cpuMicrosPerRequest' | 'bytesPerSecond'> {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(output);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!total || !rps) throw new Error(`cannot read wrk's output:\n${output}`);
  const latencyMs = percentiles(output, '([\\d.]+(?:us|ms|s|m))\\s*$', wrkDuration);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const errors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  return {
    requests: Number(total[1]),
    seconds: wrkDuration(`${total[2]}${total[3]}`) / 1000,
    requestsPerSecond: Number(rps[1]),
    latencyMs,
    errors,
    badStatus: bad ? Number(bad[1]) : 0,
  };
}

export function parseAb(
  output: string,
): Omit<LoadResult, 'tool' | 'cpuSeconds' | 'cpuMicrosPerRequest' | 'bytesPerSecond'> {
  const complete = /Complete requests:\s+(\d+)/.exec(output);
  const rps = /Requests per second:\s+([\d.]+)/.exec(output);
  const taken = /Time taken for tests:\s+([\d.]+) seconds/.exec(output);
  if (!complete || !rps || !taken) throw new Error(`cannot read ab's output:\n${output}`);
  const latencyMs = percentiles(output, '(\\d+)', Number);
  const failed = /Failed requests:\s+(\d+)/.exec(output);
  const bad = /Non-2xx responses:\s+(\d+)/.exec(output);
  return {
    requests: Number(complete[1]),
    seconds: Number(taken[1]),
    requestsPerSecond: Number(rps[1]),
    latencyMs,
    errors: failed ? Number(failed[1]) : 0,
    badStatus: bad ? Number(bad[1]) : 0,
  };
}

/**
 * One timed run: wrk for GET, ab for HEAD, with the server's CPU time around it. A run that completes no request
 * (on a machine so loaded that not one answer arrived within a 1-second run, as CI boxes running the whole suite
 * can be) is run again once, five times as long, and said so; a second empty run is an error.
 */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const { output: _first, ...first } = await runLoadOnce(spec);
  if (first.requests > 0) return first;
  const seconds = Math.max(5, 5 * spec.seconds);
  process.stderr.write(
    `bench: ${first.tool} completed no request against ${spec.url} in ${spec.seconds} s; running it again for ${seconds} s\n`,
  );
  const { output, ...second } = await runLoadOnce({ ...spec, seconds });
  if (second.requests > 0) return second;
  throw new Error(`${second.tool} completed no request against ${spec.url}:\n${output}`);
}

async function runLoadOnce(spec: LoadSpec): Promise<LoadResult & { output: string }> {
  const headerArgs = Object.entries(spec.headers ?? {}).flatMap(([name, value]) => [
    '-H',
    `${name}: ${value}`,
  ]);
  const seconds = Math.max(1, Math.round(spec.seconds));
  const tool = spec.method === 'GET' ? 'wrk' : 'ab';
  const args =
    tool === 'wrk'
      ? [
          '-t1',
          `-c${spec.connections}`,
          `-d${seconds}s`,
          '--latency',
          '--timeout',
          '10s',
          ...headerArgs,
          spec.url,
        ]
      : // -n after -t: -t alone implies -n 50000, which a fast server finishes early.
        [
          '-i',
          '-k',
          '-q',
          '-c',
          String(spec.connections),
          '-t',
          String(seconds),
          '-n',
          '1000000',
          ...headerArgs,
          spec.url,
        ];
  const cpuBefore = treeCpuSeconds(spec.pid);
  const output = await runTool(tool, args, (seconds + 60) * 1000);
  const cpuAfter = treeCpuSeconds(spec.pid);
  const text = `${output.stdout}\n${output.stderr}`;
  // ab exits non-zero on socket errors but still prints its figures; wrk's figures are what we need.
  const parsed = tool === 'wrk' ? parseWrk(text) : parseAb(text);
  const cpuSeconds = cpuAfter - cpuBefore;
  return {
    tool,
    ...parsed,
    cpuSeconds,
    cpuMicrosPerRequest: parsed.requests > 0 ? (cpuSeconds * 1e6) / parsed.requests : NaN,
    output: text,
  };
}

/** `count` sequential downloads with curl (for a large blob): bytes/s per download, and the server's CPU. */
export async function runDownloads(spec: {
  url: string;
  count: number;
  pid: number;
  expectBytes: number;
}): Promise<LoadResult> {
  const cpuBefore = treeCpuSeconds(spec.pid);
  const speeds: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < spec.count; i++) {
    const output = await runTool(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{speed_download}', spec.url],
      10 * 60 * 1000,
    );
    const [status, size, speed] = output.stdout.trim().split(' ').map(Number);
    if (output.code !== 0 || status !== 200 || size !== spec.expectBytes || speed === undefined)
      throw new Error(
        `curl ${spec.url}: exit ${output.code}, status ${status}, ${size} of ${spec.expectBytes} bytes ${output.stderr}`,
      );
    speeds.push(speed);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuSeconds = treeCpuSeconds(spec.pid) - cpuBefore;
  const bytesPerSecond = median(speeds);
  return {
    tool: 'curl',
    requests: spec.count,
    seconds,
    requestsPerSecond: spec.count / seconds,
    latencyMs: {},
    errors: 0,
    badStatus: 0,
    cpuSeconds,
    cpuMicrosPerRequest: (cpuSeconds * 1e6) / spec.count,
    bytesPerSecond,
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? NaN)
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}
