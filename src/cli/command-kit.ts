/**
 * What the commands of the command line share: the --data-dir option, opening the tree it names, running an action
 * so that any error is one line and exit status 1, progress on stderr, and the modules each command loads when it
 * runs (dynamic imports: `derrick serve` starts without the publisher's, `derrick ls` without the server's).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Progress } from '../publish/progress.ts';
import type { Backend } from '../store/backend.ts';
import type { DataDirUse } from '../store/data-dir.ts';
import type { Tree } from '../store/tree.ts';

export const DEFAULT_DATA_DIR = './data';

export function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('expected a number of seconds ≥ 0');
  return parsed;
}

/** `--jobs <n>`: how many blobs a publish copies at once. */
export function jobsCount(value: string): number {
  const parsed = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || parsed < 1 || parsed > 32)
    throw new InvalidArgumentError('expected a whole number from 1 to 32');
  return parsed;
}

/** `--flag=true|false` as skopeo writes booleans (`--tls-verify=false`); the flag alone is true. */
export function trueOrFalse(value: string | undefined): boolean {
  if (value === undefined || value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError('expected true or false');
}

export function dataDirOption(): Option {
  return new Option('--data-dir <dir>', 'the published tree')
    .env('DERRICK_DATA_DIR')
    .default(DEFAULT_DATA_DIR);
}

export function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * What publish shows on stderr while it works: a bar on a terminal; elsewhere (a log, CI) only what explains a wait
 * (another publisher, a gc), and the phases too with --verbose; nothing with --json or --quiet.
 */
export async function pickProgress(json: boolean, quiet: boolean, verbose: boolean): Promise<Progress> {
  const { silentProgress } = await import('../publish/progress.ts');
  if (json || quiet) return silentProgress;
  const { lineProgress, terminalProgress } = await import('./progress.ts');
  return process.stderr.isTTY
    ? terminalProgress(process.stderr)
    : lineProgress(process.stderr, { phases: verbose });
}

export const modules = {
  targets: () => import('../publish/targets.ts'),
  publisher: () => import('../publish/publisher.ts'),
  openSource: () => import('../publish/open-source.ts'),
  platforms: () => import('../publish/platforms.ts'),
  unpublish: () => import('../publish/unpublish.ts'),
  gc: () => import('../publish/gc.ts'),
  verify: () => import('../publish/verify.ts'),
  migrate: () => import('../publish/migrate.ts'),
  copyTree: () => import('../publish/copy-tree.ts'),
  sync: () => import('../publish/sync/sync.ts'),
  syncUpstreams: () => import('./sync-upstreams.ts'),
  syncLoad: () => import('../config/sync-load.ts'),
  tree: () => import('../store/tree.ts'),
  openBackend: () => import('../store/open-backend.ts'),
  progress: () => import('./progress.ts'),
  progressJson: () => import('./progress-json.ts'),
  interrupt: () => import('./interrupt.ts'),
};

/**
 * The tree `--data-dir` names, once it is fit for the command: every command reads an existing tree, but publish and
 * migrate may start one in a new or empty directory. Refused before anything is created.
 */
export async function openTree(opts: Record<string, unknown>, use: DataDirUse): Promise<Tree> {
  return openTreeAt(String(opts.dataDir), use);
}

export async function openTreeAt(location: string, use: DataDirUse): Promise<Tree> {
  const [{ Tree }, { openBackend }, { s3SettingsFromEnv }] = await Promise.all([
    modules.tree(),
    modules.openBackend(),
    import('./s3-settings.ts'),
  ]);
  const backend = await openBackend(location, { s3: s3SettingsFromEnv(process.env) });
  opened.push(backend);
  await backend.checkTree(use);
  return new Tree(backend);
}

/** Back ends the running command opened: closed when it ends, so that no connection keeps the process alive. */
const opened: Backend[] = [];

/** Runs an action; any error becomes one line on stderr and exit status 1. */
export function run<T extends unknown[]>(action: (...args: T) => Promise<number | undefined>) {
  return async (...args: T): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const dataDir = command.opts<{ dataDir?: string }>().dataDir ?? DEFAULT_DATA_DIR;
    try {
      process.exitCode = (await action(...args)) ?? 0;
    } catch (error) {
      await report(error, dataDir);
    } finally {
      await Promise.all(opened.splice(0).map((backend) => backend.close()));
    }
  };
}

/** An error as the one line the user sees (its stack only with DERRICK_DEBUG), and exit status 1. */
export async function report(error: unknown, dataDir: string): Promise<void> {
  const { describeError } = await import('./errors.ts');
  process.stderr.write(`derrick: ${describeError(error, dataDir)}\n`);
  if (process.env.DERRICK_DEBUG && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`);
  process.exitCode = 1;
}
