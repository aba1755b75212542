/**
 * `derrick sync <sync.yaml>`: the command line of publish/sync/sync.ts — a line per image that changed (and per
 * unchanged one with --verbose), a summary, exit 1 when any image or repository failed (the others still
 * finish), the summary as JSON with --json.
 */
import { type Command, Option } from 'commander';
import { dataDirOption, modules, openTree, out, pickProgress, run, seconds } from './command-kit.ts';
import { packageVersion } from './version.ts';

export function addSyncCommand(program: Command): void {
  program
    .command('sync')
    .description('mirror repositories from registries or other trees, as a sync file says')
    .argument('<sync.yaml>', 'upstreams and the repositories to mirror (docs/mirroring.md)')
    .addOption(dataDirOption())
    .option('--dry-run', 'ask the upstreams and say what would change; change nothing')
    .option('--lock-timeout <seconds>', 'how long to wait for other publishers or gc', seconds, 600)
    .option('--json', 'print the summary as JSON on stdout (no progress)')
    .addOption(new Option('-q, --quiet', 'print only failures and the summary').conflicts('verbose'))
    .option('-v, --verbose', 'also print the unchanged images')
    .action(
      run(async (file: string, opts: Record<string, unknown>) => {
        const [{ loadSyncConfig }, { sync }, { openUpstreams }, { formatBytes }, { catchInterrupts }] =
          await Promise.all([
            modules.syncLoad(),
            modules.sync(),
            modules.syncUpstreams(),
            modules.progress(),
            modules.interrupt(),
          ]);
        const config = loadSyncConfig(file);
        const dryRun = opts.dryRun === true;
        const tree = await openTree(opts, dryRun ? 'existing' : 'new-or-existing');
        const json = opts.json === true;
        const quiet = opts.quiet === true;
        const verbose = opts.verbose === true;
        const progress = await pickProgress(json, quiet, false);
        const interrupts = catchInterrupts();
        const upstreams = await openUpstreams(config, {
          file,
          scratchDir: tree.backend.scratchDir,
          userAgent: `derrick/${packageVersion()}`,
          signal: interrupts.signal,
        });
        const would = dryRun ? 'would be ' : '';
        try {
          const summary = await sync({
            tree,
            config,
            upstreams,
            dryRun,
            lockTimeoutMs: Number(opts.lockTimeout) * 1000,
            progress,
            signal: interrupts.signal,
            onImage: (image) => {
              if (json) return;
              const what = image.tag === '' ? image.repository : `${image.repository}:${image.tag}`;
              if (image.action === 'failed') {
                progress.done();
                process.stderr.write(`derrick: ${what} (from ${image.from}): ${image.problem ?? 'failed'}\n`);
              } else if (!quiet && (image.action !== 'unchanged' || verbose)) {
                progress.done();
                out(`${would}${image.action} ${what} ${image.digest ?? ''}`.trimEnd());
              }
            },
          });
          if (json) out(JSON.stringify(summary, null, 2));
          else
            out(
              `${dryRun ? 'dry run: ' : ''}${summary.added} added, ${summary.updated} updated, ${summary.unchanged} unchanged, ${summary.pruned} pruned, ${summary.failed} failed; ${summary.blobsCopied} blob(s) copied (${formatBytes(summary.bytesCopied)}), ${summary.blobsReused} already present`,
            );
          return summary.failed === 0 ? 0 : 1;
        } catch (error) {
          progress.done();
          const { PublishInterruptedError } = await modules.publisher();
          if (!(error instanceof PublishInterruptedError) && !interrupts.signal.aborted) throw error;
          process.stderr.write(
            'derrick: interrupted: images already synced stay published; run again to go on\n',
          );
          return interrupts.exitCode();
        } finally {
          interrupts.release();
          await Promise.all([...upstreams.values()].map((upstream) => upstream.close()));
        }
      }),
    );
}
