/**
 * Running the real derrick CLI (from source, through tsx) and inspecting trees, for integration tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');
export const CLI = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
/** tsx's loader by URL, so the CLI runs from any working directory. */
export const TSX = import.meta.resolve('tsx');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How to run derrick: `bin` is an installed `derrick` executable to run instead of the CLI from source. */
export interface DerrickOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  bin?: string;
}

/** Starts `derrick <args>` without waiting for it. */
export function startDerrick(args: string[], options: DerrickOptions = {}): ChildProcess {
  const [command, leading] = options.bin ? [options.bin, []] : [process.execPath, ['--import', TSX, CLI]];
  return spawn(command, [...leading, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs `derrick <args>` to completion. */
export function runDerrick(args: string[], options: DerrickOptions = {}): Promise<RunResult> {
  const child = startDerrick(args, options);
  return collectOutput(child);
}

/**
 * Runs `derrick <args>` to completion, for a test that expects it to refuse or to finish: a `serve` that starts
 * serving after all is stopped at once (SIGTERM; SIGKILL should it still run 60 s later), so the test fails
 * instead of hanging. `served` says it did.
 */
export async function runDerrickWithoutServing(
  args: string[],
  options: DerrickOptions = {},
): Promise<RunResult & { served: boolean }> {
  const child = startDerrick(args, options);
  let served = false;
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (!served && /^derrick: serving /m.test(stderr)) {
      served = true;
      child.kill('SIGTERM');
    }
  });
  const safety = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const result = await collectOutput(child);
  clearTimeout(safety);
  return { ...result, served };
}

export function collectOutput(child: ChildProcess): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs any command to completion (skopeo, podman, curl, …), whatever its exit status. */
export function execute(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collectOutput(child);
}

/** Runs any command to completion (skopeo, umoci, …); rejects with its output when it fails. */
export async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const result = await execute(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
  }
  return result;
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'derrick-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Every regular file and symlink below `dir` (relative path → sha256 of its content or link target), ignoring
 * empty directories. Two equal snapshots mean the tree holds exactly the same files.
 */
export async function snapshotTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (current: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      const rel = path.relative(dir, full);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isSymbolicLink()) out.set(rel, `link:${await fs.readlink(full)}`);
      else
        out.set(
          rel,
          createHash('sha256')
            .update(await fs.readFile(full))
            .digest('hex'),
        );
    }
  };
  await walk(dir);
  return out;
}

/** The sha256 digest of a string or bytes, as `sha256:<hex>`. */
export function digestOf(bytes: string | Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** SIGKILLs every child still in `running` and waits until each has exited (a test's after hook). */
export async function killAll(running: Iterable<ChildProcess>): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      const closed = collectOutput(child);
      child.kill('SIGKILL');
      return closed;
    }),
  );
}
