/**
 * The derrick command line. The only place that prints to a terminal or sets the exit status.
 */
// Each command loads its modules when it runs (dynamic imports below), so `derrick serve` starts without the
// publisher's and `derrick ls` without the server's: start-up time is module loading.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Progress } from '../publish/progress.ts';
import { DEFAULT_GC_MIN_AGE_SECONDS, type Backend } from '../store/backend.ts';
import type { DataDirUse } from '../store/data-dir.ts';
import type { Tree } from '../store/tree.ts';
import { addCompletionCommand } from './completion.ts';
import { addServeCommand } from './serve-command.ts';
import { packageVersion } from './version.ts';

const DEFAULT_DATA_DIR = './data';

function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('expected a number of seconds ≥ 0');
  return parsed;
}

function dataDirOption(): Option {
  return new Option('--data-dir <dir>', 'the published tree')
    .env('DERRICK_DATA_DIR')
    .default(DEFAULT_DATA_DIR);
}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * What publish shows on stderr while it works: a bar on a terminal; elsewhere (a log, CI) only what explains a wait
 * (another publisher, a gc), and the phases too with --verbose; nothing with --json or --quiet.
 */
async function pickProgress(json: boolean, quiet: boolean, verbose: boolean): Promise<Progress> {
  const { silentProgress } = await import('../publish/progress.ts');
  if (json || quiet) return silentProgress;
  const { lineProgress, terminalProgress } = await import('./progress.ts');
  return process.stderr.isTTY
    ? terminalProgress(process.stderr)
    : lineProgress(process.stderr, { phases: verbose });
}

const modules = {
  targets: () => import('../publish/targets.ts'),
  publisher: () => import('../publish/publisher.ts'),
  openSource: () => import('../publish/open-source.ts'),
  unpublish: () => import('../publish/unpublish.ts'),
  gc: () => import('../publish/gc.ts'),
  verify: () => import('../publish/verify.ts'),
  migrate: () => import('../publish/migrate.ts'),
  copyTree: () => import('../publish/copy-tree.ts'),
  tree: () => import('../store/tree.ts'),
  openBackend: () => import('../store/open-backend.ts'),
  progress: () => import('./progress.ts'),
  interrupt: () => import('./interrupt.ts'),
};

/**
 * The tree `--data-dir` names, once it is fit for the command: every command reads an existing tree, but publish and
 * migrate may start one in a new or empty directory. Refused before anything is created.
 */
async function openTree(opts: Record<string, unknown>, use: DataDirUse): Promise<Tree> {
  return openTreeAt(String(opts.dataDir), use);
}

async function openTreeAt(location: string, use: DataDirUse): Promise<Tree> {
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
function run<T extends unknown[]>(action: (...args: T) => Promise<number | undefined>) {
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
async function report(error: unknown, dataDir: string): Promise<void> {
  const { describeError } = await import('./errors.ts');
  process.stderr.write(`derrick: ${describeError(error, dataDir)}\n`);
  if (process.env.DERRICK_DEBUG && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`);
  process.exitCode = 1;
}

export function buildProgram(): Command {
  const program = new Command('derrick')
    .description('A database-free container registry: publish images as files, serve them to any client.')
    .version(packageVersion());
  program.exitOverride();

  program
    .command('publish')
    .description('publish an image into the published tree, atomically')
    .argument('<source>', 'oci:<dir>[:<ref>], docker-archive:<file>[:<name:tag>|:@<n>] or dir:<dir>')
    .argument('<name[:tag]...>', 'repository and tags to publish as (tag defaults to latest)')
    .addOption(dataDirOption())
    .option('--all-tags', 'publish every image the source names, each under its own name as the tag')
    .option(
      '--base-url <url>',
      'where this repository’s v2/web directory will be served from (a CDN or nginx)',
    )
    .addOption(
      new Option(
        '--protected',
        'never serve this repository to anonymous clients (kept by later publishes)',
      ).conflicts('public'),
    )
    .option('--public', 'clear --protected: serve this repository as the access rules say')
    .option('--lock-timeout <seconds>', 'how long to wait for other publishers or gc', seconds, 600)
    .option('--json', 'print the result as JSON on stdout (no progress)')
    .addOption(new Option('-q, --quiet', 'print nothing but errors').conflicts('verbose'))
    .option('-v, --verbose', 'print progress as plain lines when stderr is not a terminal')
    .action(
      run(async (sourceSpec: string, targets: string[], opts: Record<string, unknown>) => {
        const [
          { parseDestinations },
          { publish, PublishError, PublishInterruptedError },
          { openSource },
          { formatBytes },
        ] = await Promise.all([
          modules.targets(),
          modules.publisher(),
          modules.openSource(),
          modules.progress(),
        ]);
        const destinations = parseDestinations(targets, opts.allTags === true);
        const tree = await openTree(opts, 'new-or-existing');
        const baseUrl = typeof opts.baseUrl === 'string' ? opts.baseUrl : undefined;
        if (baseUrl !== undefined && !/^https?:\/\/[^/\s]+/.test(baseUrl)) {
          throw new PublishError(`--base-url "${baseUrl}" is not an http(s) URL`);
        }
        const json = opts.json === true;
        const progress = await pickProgress(json, opts.quiet === true, opts.verbose === true);
        const { catchInterrupts } = await modules.interrupt();
        const interrupts = catchInterrupts();
        let result;
        try {
          result = await publish({
            tree,
            openSource: () =>
              openSource(
                sourceSpec,
                tree.backend.scratchDir,
                (count) => progress.bytes(count),
                interrupts.signal,
              ),
            destinations,
            allTags: opts.allTags === true,
            baseUrl,
            // Neither flag: the record keeps what it was published with.
            protected: opts.protected === true ? true : opts.public === true ? false : undefined,
            lockTimeoutMs: Number(opts.lockTimeout) * 1000,
            progress,
            signal: interrupts.signal,
            onLateAbort: () => {
              progress.done();
              process.stderr.write(
                'derrick: interrupted too late to stop: the publish has begun committing and will complete\n',
              );
            },
          });
        } catch (error) {
          // A bar stopped mid-way gives the terminal back its cursor and line wrapping before any message.
          progress.done();
          if (!(error instanceof PublishInterruptedError)) throw error;
          process.stderr.write(`derrick: ${error.message}\n`);
          return interrupts.exitCode();
        } finally {
          interrupts.release();
        }
        if (json) out(JSON.stringify(result, null, 2));
        else if (opts.quiet !== true) {
          for (const repository of result.repositories) {
            for (const [tag, digest] of Object.entries(repository.tags))
              out(`published ${repository.name}:${tag} ${digest}`);
            for (const digest of repository.untagged) out(`published ${repository.name}@${digest}`);
          }
          out(
            `${result.manifests} manifest(s); ${result.blobsCopied} blob(s) copied (${formatBytes(result.bytesCopied)}), ${result.blobsReused} already present`,
          );
          for (const digest of result.foreignLayers)
            out(
              `note: non-distributable layer ${digest} is not in the source; clients fetch it from its urls`,
            );
        }
        // Interrupted once the commit had begun: published all the same (and said so), but still a signal's status.
        if (interrupts.received() !== undefined) return interrupts.exitCode();
        return 0;
      }),
    );

  program
    .command('unpublish')
    .description('remove a repository, a tag, or a manifest (content goes at the next gc)')
    .argument('<name[:tag|@digest]>')
    .addOption(dataDirOption())
    .option(
      '--lock-timeout <seconds>',
      'how long to wait for a publisher of the same repository',
      seconds,
      600,
    )
    .action(
      run(async (spec: string, opts: Record<string, unknown>) => {
        const { parseUnpublishTarget, unpublish } = await modules.unpublish();
        const target = parseUnpublishTarget(spec);
        const tree = await openTree(opts, 'existing');
        const result = await unpublish(tree, target, Number(opts.lockTimeout) * 1000);
        out(
          `unpublished ${spec}${result.repositoryRemoved && result.removed !== 'repository' ? ` (no tags left: ${result.name} removed)` : ''}`,
        );
        return 0;
      }),
    );

  program
    .command('gc')
    .description('delete content that no record references')
    .addOption(dataDirOption())
    .option('--dry-run', 'report what would be deleted and the bytes it would free')
    .option('--wait <seconds>', 'how long to wait for running publishers', seconds, 600)
    .option(
      '--min-age <seconds>',
      'on object storage, keep unreferenced objects modified more recently than this (publishes in flight)',
      seconds,
      DEFAULT_GC_MIN_AGE_SECONDS,
    )
    .option('--json', 'print the result as JSON')
    .action(
      run(async (opts: Record<string, unknown>) => {
        const [{ gc }, { formatBytes }] = await Promise.all([modules.gc(), modules.progress()]);
        const tree = await openTree(opts, 'existing');
        const result = await gc(tree, {
          dryRun: opts.dryRun === true,
          waitMs: Number(opts.wait) * 1000,
          minAgeSeconds: Number(opts.minAge),
          onWait: () => process.stderr.write('waiting for running publishers to finish\n'),
        });
        if (opts.json === true) out(JSON.stringify(result, null, 2));
        else {
          const verb = result.dryRun ? 'would free' : 'freed';
          if (result.contentFiles + result.links + result.stagingFiles === 0)
            out(result.dryRun ? 'would free nothing' : 'nothing to free');
          else
            out(
              `${verb} ${formatBytes(result.bytes)} (${result.bytes} bytes): ${result.contentFiles} content file(s), ${result.links} link(s), ${result.stagingFiles} staging file(s)`,
            );
          if (result.young > 0)
            out(`kept ${result.young} unreferenced object(s) too recent to take: ${result.rule}`);
        }
        return 0;
      }),
    );

  program
    .command('verify')
    .description('check every record and the content it references; exit 1 on any problem')
    .argument('[prefix]', 'only repositories under this name')
    .addOption(dataDirOption())
    .option('--no-hash', 'check presence and sizes only, not digests')
    .option('--json', 'print the result as JSON')
    .action(
      run(async (prefix: string | undefined, opts: Record<string, unknown>) => {
        const { verifyTree } = await modules.verify();
        const tree = await openTree(opts, 'existing');
        const result = await verifyTree(tree, {
          hash: opts.hash !== false,
          ...(prefix === undefined ? {} : { prefix }),
        });
        if (opts.json === true) out(JSON.stringify(result, null, 2));
        else {
          for (const { repository, problem } of result.problems) out(`${repository}: ${problem}`);
          out(
            `${result.repositories} repositories, ${result.files} files checked: ${result.problems.length === 0 ? 'no problems' : `${result.problems.length} problem(s)`}`,
          );
        }
        return result.problems.length === 0 ? 0 : 1;
      }),
    );

  program
    .command('ls')
    .description('list repositories and their tags')
    .argument('[prefix]', 'only repositories under this name')
    .addOption(dataDirOption())
    .option('--json', 'print the result as JSON')
    .action(
      run(async (prefix: string | undefined, opts: Record<string, unknown>) => {
        const tree = await openTree(opts, 'existing');
        const listing = [];
        let problems = 0;
        for await (const item of tree.walkRecords(prefix)) {
          if (item.error) {
            problems++;
            process.stderr.write(`derrick: ${item.error.message}\n`);
            continue;
          }
          const repository = item.repository;
          if (!repository) continue;
          listing.push({
            name: repository.name,
            format: repository.format,
            tags: Object.fromEntries(repository.tags),
            protected: repository.protected,
            ...(repository.pulp ? { url: repository.pulp.url, pulpVersion: repository.pulp.version } : {}),
          });
        }
        if (opts.json === true) out(JSON.stringify(listing, null, 2));
        else {
          for (const entry of listing) {
            const tags = Object.keys(entry.tags);
            const detail =
              entry.format === 'pulp2'
                ? `(Pulp 2 v${entry.pulpVersion ?? '?'} record → ${entry.url ?? ''})`
                : tags.join(' ') || '(no tags)';
            out(`${entry.name}\t${detail}${entry.protected ? '\tprotected' : ''}`);
          }
        }
        return problems === 0 ? 0 : 1;
      }),
    );

  program
    .command('migrate')
    .description(
      'lay Pulp 2 records (named by repository id) out by repository name, without copying content',
    )
    .argument('<pulp-dir>', 'a Pulp 2 published directory (with v2/app/*.json) or the app directory itself')
    .addOption(dataDirOption())
    .option('--dry-run', 'report what would be done')
    .option('--json', 'print the result as JSON')
    .action(
      run(async (pulpDir: string, opts: Record<string, unknown>) => {
        const { migrate } = await modules.migrate();
        const tree = await openTree(opts, 'new-or-existing');
        const result = await migrate(tree, pulpDir, { dryRun: opts.dryRun === true, lockTimeoutMs: 600_000 });
        if (opts.json === true) out(JSON.stringify(result, null, 2));
        else {
          const verb = opts.dryRun === true ? 'would migrate' : 'migrated';
          for (const { file, name } of result.migrated) out(`${verb} ${file} → ${name}`);
          for (const { file, name } of result.unchanged) out(`unchanged ${file} → ${name}`);
          for (const { name, files, reason } of result.conflicts)
            out(`conflict ${name}: ${reason}: ${files.join(', ')}`);
          for (const { file, reason } of result.invalid) out(`invalid ${file}: ${reason}`);
          out(
            `${result.migrated.length} migrated, ${result.unchanged.length} unchanged, ${result.conflicts.length} conflict(s), ${result.invalid.length} invalid`,
          );
        }
        return result.conflicts.length === 0 && result.invalid.length === 0 ? 0 : 1;
      }),
    );

  program
    .command('copy-tree')
    .description('copy a tree, or the repositories below a namespace, between directories and buckets')
    .argument('<from>', 'the tree to copy: a directory or s3://<bucket>/<prefix>')
    .argument('<to>', 'where to: a new or empty directory or prefix, or a tree to bring up to date')
    .option('--prefix <namespace>', 'only repositories below this name (and the one it names)')
    .option('--dry-run', 'report what would be copied')
    .option(
      '--lock-timeout <seconds>',
      'how long to wait for publishers or gc at the destination',
      seconds,
      600,
    )
    .option('--json', 'print the result as JSON')
    .action(
      run(async (fromLocation: string, toLocation: string, opts: Record<string, unknown>) => {
        const [{ copyTree }, { formatBytes }] = await Promise.all([modules.copyTree(), modules.progress()]);
        const from = await openTreeAt(fromLocation, 'existing');
        const to = await openTreeAt(toLocation, 'new-or-existing');
        const result = await copyTree(from, to, {
          dryRun: opts.dryRun === true,
          lockTimeoutMs: Number(opts.lockTimeout) * 1000,
          ...(typeof opts.prefix === 'string' ? { prefix: opts.prefix } : {}),
        });
        if (opts.json === true) out(JSON.stringify(result, null, 2));
        else {
          for (const { repository, problem } of result.problems) out(`${repository}: ${problem}`);
          const verb = opts.dryRun === true ? 'would copy' : 'copied';
          out(
            `${result.repositories} repositories: ${verb} ${result.recordsCopied} record(s), ${result.recordsUnchanged} unchanged; ${result.objectsCopied} object(s) (${formatBytes(result.bytesCopied)}), ${result.objectsPresent} already there${result.problems.length > 0 ? `; ${result.problems.length} problem(s)` : ''}`,
          );
        }
        return result.problems.length === 0 ? 0 : 1;
      }),
    );

  addServeCommand(program);
  addCompletionCommand(program, dataDirOption);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const { reportParseErrors, UsageError } = await import('./parse-errors.ts');
  try {
    reportParseErrors(program, argv);
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`derrick: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    throw error;
  }
}

// What an action did not catch itself (`derrick serve` runs outside run()) is still one line, not a stack trace.
await main(process.argv).catch((error: unknown) => report(error, DEFAULT_DATA_DIR));
