/**
 * The derrick command line: the program, publish, and main(). With command-kit.ts, tree-commands.ts,
 * serve-command.ts and completion.ts, the only place that prints to a terminal or sets the exit status.
 */
// Each command loads its modules when it runs (dynamic imports: command-kit.ts), so `derrick serve` starts without
// the publisher's and `derrick ls` without the server's: start-up time is module loading.
import { Command, CommanderError, Option } from 'commander';
import {
  DEFAULT_DATA_DIR,
  dataDirOption,
  jobsCount,
  modules,
  openTree,
  out,
  pickProgress,
  report,
  run,
  seconds,
  trueOrFalse,
} from './command-kit.ts';
import { addCompletionCommand } from './completion.ts';
import { addServeCommand } from './serve-command.ts';
import { addSyncCommand } from './sync-command.ts';
import { addTreeCommands } from './tree-commands.ts';
import { packageVersion } from './version.ts';

export function buildProgram(): Command {
  const program = new Command('derrick')
    .description('A database-free container registry: publish images as files, serve them to any client.')
    .version(packageVersion());
  program.exitOverride();

  program
    .command('publish')
    .description('publish an image into the published tree, atomically')
    .argument(
      '<source>',
      'oci:<dir>[:<ref>], docker-archive:<file>[:<name:tag>|:@<n>], dir:<dir> or docker://<registry>/<name>[:tag|@digest]',
    )
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
    .option('--jobs <n>', 'blobs copied at once, 1 to 32', jobsCount, 4)
    .option(
      '--platform <os/arch[/variant]>',
      'keep only these platforms of an index (repeatable, or comma-separated)',
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .option(
      '--creds <user:password>',
      'docker:// sources: credentials (default: the auth file of skopeo, podman or docker login)',
    )
    .addOption(
      new Option(
        '--tls-verify [bool]',
        'docker:// sources: verify the registry’s certificate (and use HTTPS)',
      )
        .argParser(trueOrFalse)
        .default(true),
    )
    .option('--cert-dir <dir>', 'docker:// sources: *.crt CAs, and a client *.cert with its *.key')
    .option('--json', 'print the result as JSON on stdout, and progress as JSON lines on stderr')
    .addOption(new Option('-q, --quiet', 'print nothing but errors').conflicts('verbose'))
    .option('-v, --verbose', 'print progress as plain lines when stderr is not a terminal')
    .action(
      run(async (sourceSpec: string, targets: string[], opts: Record<string, unknown>) => {
        const [
          { parseDestinations },
          { publish, PublishError, PublishInterruptedError },
          { openSource },
          { formatBytes },
          { parsePlatforms },
        ] = await Promise.all([
          modules.targets(),
          modules.publisher(),
          modules.openSource(),
          modules.progress(),
          modules.platforms(),
        ]);
        const destinations = parseDestinations(targets, opts.allTags === true);
        const tree = await openTree(opts, 'new-or-existing');
        const baseUrl = typeof opts.baseUrl === 'string' ? opts.baseUrl : undefined;
        if (baseUrl !== undefined && !/^https?:\/\/[^/\s]+/.test(baseUrl)) {
          throw new PublishError(`--base-url "${baseUrl}" is not an http(s) URL`);
        }
        const platformTexts = opts.platform as string[];
        const platforms = platformTexts.length > 0 ? parsePlatforms(platformTexts.join(',')) : undefined;
        if (platforms && 'error' in platforms) throw new PublishError(platforms.error);
        const json = opts.json === true;
        // --json: the result alone on stdout, progress as JSON lines on stderr (progress-json.ts).
        const progress =
          json && opts.quiet !== true
            ? (await modules.progressJson()).jsonProgress(process.stderr)
            : await pickProgress(json, opts.quiet === true, opts.verbose === true);
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
                {
                  creds: typeof opts.creds === 'string' ? opts.creds : undefined,
                  tlsVerify: opts.tlsVerify !== false,
                  certDir: typeof opts.certDir === 'string' ? opts.certDir : undefined,
                  userAgent: `derrick/${packageVersion()}`,
                },
              ),
            destinations,
            allTags: opts.allTags === true,
            baseUrl,
            // Neither flag: the record keeps what it was published with.
            protected: opts.protected === true ? true : opts.public === true ? false : undefined,
            lockTimeoutMs: Number(opts.lockTimeout) * 1000,
            jobs: Number(opts.jobs),
            ...(platforms ? { platforms } : {}),
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

  addSyncCommand(program);
  addTreeCommands(program);
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
