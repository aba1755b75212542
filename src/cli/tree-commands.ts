/**
 * The commands that work on a published tree after publish: unpublish, gc, verify, ls, migrate and copy-tree.
 */
import type { Command } from 'commander';
import { DEFAULT_GC_MIN_AGE_SECONDS } from '../store/backend.ts';
import { dataDirOption, modules, openTree, openTreeAt, out, run, seconds } from './command-kit.ts';

export function addTreeCommands(program: Command): void {
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
}
