/**
 * `derrick completion bash|zsh|fish`: each script is loaded into the real shell and asked for completions the
 * way the shell asks when Tab is pressed. The scripts call `derrick` (here a wrapper on PATH that runs the CLI
 * from source) for repository names, so those come from a real published tree.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, REPO_ROOT, run, runDerrick, tempDir, TSX } from '../helpers/cli.ts';

const temp = tempDir('derrick-completion-');
after(() => temp.cleanup());
const tree = path.join(temp.dir, 'tree');
const binDir = path.join(temp.dir, 'bin');
const scripts: Record<string, string> = {};
const quote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
const env = { PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}` };

before(async () => {
  mkdirSync(binDir);
  writeFileSync(
    path.join(binDir, 'derrick'),
    `#!/bin/sh\nexec ${quote(process.execPath)} --import ${quote(TSX)} ${quote(CLI)} "$@"\n`,
  );
  chmodSync(path.join(binDir, 'derrick'), 0o755);
  const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
  for (const targets of [['team/app:1.0', 'team/app:2.0'], ['team/tools'], ['demo/hello']]) {
    const published = await runDerrick(['publish', demo, ...targets, '--data-dir', tree, '--quiet']);
    assert.equal(published.code, 0, published.stderr);
  }
  for (const shell of ['bash', 'zsh', 'fish']) {
    const printed = await runDerrick(['completion', shell]);
    assert.equal(printed.code, 0, printed.stderr);
    scripts[shell] = path.join(temp.dir, `derrick.${shell}`);
    writeFileSync(scripts[shell], printed.stdout);
  }
});

/**
 * Calls the bash script's completion function once per line, with COMP_WORDS split as bash splits them
 * (COMP_WORDBREAKS: `name:tag` is three words, `--opt=value` too), and returns each COMPREPLY.
 */
async function bashComplete(
  lines: string[][],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string[][]> {
  const program = [
    `source ${quote(scripts.bash ?? '')}`,
    'ask() {',
    '  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}',
    '  COMPREPLY=(); _derrick_complete || echo "<failed>"',
    '  printf "%s\\n" "${COMPREPLY[@]}" "<end>"',
    '}',
    ...lines.map((words) => `ask ${words.map(quote).join(' ')}`),
    'echo "<still running>"',
  ].join('\n');
  const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', program], {
    cwd: options.cwd ?? temp.dir,
    env: { ...env, ...options.env },
  });
  assert.match(stdout, /<still running>\n$/);
  assert.doesNotMatch(stdout, /<failed>/);
  return stdout
    .replace(/<still running>\n$/, '')
    .split('<end>\n')
    .slice(0, -1)
    .map((reply) => reply.split('\n').filter((word) => word !== ''));
}

/** What zsh's completion system offers for `line` (typed, then Tab), driven through a pseudo-terminal by zpty. */
async function zshComplete(line: string): Promise<string[]> {
  const hits = path.join(temp.dir, 'zsh-hits');
  writeFileSync(hits, '');
  const driver = [
    'zmodload zsh/zpty',
    'zpty z zsh -f -i',
    `zpty -w z ${quote(`PS1='<''ready>'; autoload -U compinit; compinit -u -D; source ${quote(scripts.zsh ?? '')}`)}`,
    // Every candidate the completion functions add, whatever their display, goes to the hits file.
    `zpty -w z ${quote(`compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return; fi; local -a hits; builtin compadd -A hits "$@"; print -rl -- $hits >> ${quote(hits)}; builtin compadd "$@"; }`)}`,
    "zpty -r z out '*<ready>*'",
    "zpty -r z out '*<ready>*'",
    `zpty -w -n z ${quote(line)}$'\\t'`,
    `zpty -w z $'\\C-u print "<""end>"'`,
    "zpty -r z out '*<end>*'",
    'zpty -d z',
  ].join('\n');
  await run('zsh', ['-f', '-c', driver], { cwd: temp.dir, env });
  const { stdout } = await run('cat', [hits]);
  return [...new Set(stdout.split('\n').filter((word) => word !== ''))].sort();
}

/** What fish offers for `line` (`complete -C`, as on Tab). */
async function fishComplete(line: string): Promise<string[]> {
  const { stdout } = await run(
    'fish',
    ['--no-config', '-c', `source ${quote(scripts.fish ?? '')}; complete -C ${quote(line)}`],
    { cwd: temp.dir, env },
  );
  return stdout
    .split('\n')
    .filter((entry) => entry !== '')
    .map((entry) => entry.split('\t')[0] ?? '')
    .sort();
}

/** The commands and option flags `derrick [command] --help` lists: what the scripts must offer, no more. */
async function helpListing(args: string[]): Promise<{ commands: string[]; options: string[] }> {
  const { stdout } = await runDerrick([...args, '--help']);
  const section = (title: string): string[] =>
    (stdout.split(`\n${title}:\n`)[1] ?? '').split('\n\n')[0]?.split('\n') ?? [];
  const commands = section('Commands').flatMap((line) => /^ {2}([a-z-]+)/.exec(line)?.[1] ?? []);
  const options = section('Options').flatMap((line) =>
    [...(/^ {2}(-[^ ].*?)(?: {2,}|$)/.exec(line)?.[1]?.split(', ') ?? [])].map(
      (flag) => flag.split(' ')[0] ?? '',
    ),
  );
  return { commands: commands.sort(), options: options.sort() };
}

describe('derrick completion bash', () => {
  test('completes the commands, then the options of the command being typed', async () => {
    const [all, un, gc, serve, global] = await bashComplete([
      ['derrick', ''],
      ['derrick', 'un'],
      ['derrick', 'gc', '--'],
      ['derrick', 'serve', '--'],
      ['derrick', '-'],
    ]);
    const program = await helpListing([]);
    assert.ok(program.commands.includes('unpublish') && program.options.includes('--version'));
    assert.deepEqual(all?.sort(), program.commands);
    assert.deepEqual(un, ['unpublish']);
    const gcListing = await helpListing(['gc']);
    assert.ok(gcListing.options.includes('--dry-run'), gcListing.options.join(' '));
    assert.deepEqual(
      gc?.sort(),
      gcListing.options.filter((flag) => flag.startsWith('--')),
    );
    const serveListing = await helpListing(['serve']);
    assert.deepEqual(
      serve?.sort(),
      serveListing.options.filter((flag) => flag.startsWith('--')),
    );
    assert.deepEqual(global?.sort(), program.options);
  });

  test('completes the repository names of the tree --data-dir names, for unpublish and ls', async () => {
    const [unpublish, ls, equals, none] = await bashComplete([
      ['derrick', 'unpublish', '--data-dir', tree, 'team/'],
      ['derrick', 'ls', '--data-dir', tree, ''],
      ['derrick', 'ls', '--data-dir', '=', tree, 'de'],
      ['derrick', 'ls', '--data-dir', tree, 'nothing/'],
    ]);
    assert.deepEqual(unpublish, ['team/app', 'team/tools']);
    assert.deepEqual(ls, ['demo/hello', 'team/app', 'team/tools']);
    assert.deepEqual(equals, ['demo/hello']);
    assert.deepEqual(none, []);
  });

  test('takes the tree from $DERRICK_DATA_DIR, else from ./data', async () => {
    const [fromEnv] = await bashComplete([['derrick', 'ls', 'team/t']], { env: { DERRICK_DATA_DIR: tree } });
    assert.deepEqual(fromEnv, ['team/tools']);
    const [fromCwd] = await bashComplete([['derrick', 'unpublish', 'de']], { cwd: path.dirname(tree) });
    assert.deepEqual(fromCwd, [], 'no ./data here');
    mkdirSync(path.join(temp.dir, 'cwd'));
    await run('ln', ['-s', tree, path.join(temp.dir, 'cwd', 'data')]);
    const [fromData] = await bashComplete([['derrick', 'unpublish', 'de']], {
      cwd: path.join(temp.dir, 'cwd'),
    });
    assert.deepEqual(fromData, ['demo/hello']);
  });

  test('completes the tags after name: for unpublish, as the text bash replaces after the colon', async () => {
    const [tags, two, forLs] = await bashComplete([
      ['derrick', 'unpublish', '--data-dir', tree, 'team/app', ':'],
      ['derrick', 'unpublish', '--data-dir', tree, 'team/app', ':', '2'],
      ['derrick', 'ls', '--data-dir', tree, 'team/app', ':'],
    ]);
    assert.deepEqual(tags, ['1.0', '2.0']);
    assert.deepEqual(two, ['2.0']);
    assert.deepEqual(forLs, [], 'ls takes a prefix, not a tag');
  });

  test('completes option values: directories after --data-dir, the shells after completion', async () => {
    mkdirSync(path.join(temp.dir, 'values', 'dir-a'), { recursive: true });
    writeFileSync(path.join(temp.dir, 'values', 'file-b'), '');
    const [dirs, shells] = await bashComplete(
      [
        ['derrick', 'gc', '--data-dir', ''],
        ['derrick', 'completion', ''],
      ],
      { cwd: path.join(temp.dir, 'values') },
    );
    assert.deepEqual(dirs, ['dir-a']);
    assert.deepEqual(shells, ['bash', 'zsh', 'fish']);
  });

  test('offers nothing, and leaves the shell running, when the tree or derrick itself is missing', async () => {
    const [noTree, fileTree, noDerrick] = await bashComplete([
      ['derrick', 'unpublish', '--data-dir', path.join(temp.dir, 'absent'), ''],
      ['derrick', 'ls', '--data-dir', scripts.bash ?? '', ''],
      [path.join(temp.dir, 'absent', 'derrick'), 'ls', '--data-dir', tree, ''],
    ]);
    assert.deepEqual([noTree, fileTree, noDerrick], [[], [], []]);
  });
});

describe('derrick completion --names (what the scripts call)', () => {
  test('prints the names under a prefix, or name:tag after a colon, one a line', async () => {
    const names = await runDerrick(['completion', '--names=team/', '--data-dir', tree]);
    assert.equal(names.stdout, 'team/app\nteam/tools\n');
    const tags = await runDerrick(['completion', '--names=team/app:', '--data-dir', tree]);
    assert.equal(tags.stdout, 'team/app:1.0\nteam/app:2.0\n');
  });

  test('prints nothing and exits 0 where there is no tree', async () => {
    for (const dataDir of [path.join(temp.dir, 'absent'), scripts.bash ?? '']) {
      const result = await runDerrick(['completion', '--names=', '--data-dir', dataDir]);
      assert.deepEqual([result.code, result.stdout, result.stderr], [0, '', '']);
    }
  });

  test('derrick completion without a shell says which shells there are, in one line', async () => {
    const result = await runDerrick(['completion']);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      'derrick: completion needs a shell — derrick completion bash (or zsh, or fish)\n',
    );
  });
});

describe('derrick completion zsh', () => {
  test('is valid zsh (zsh -n)', async () => {
    await run('zsh', ['-n', scripts.zsh ?? '']);
  });

  test('offers commands, options, repository names and tags through compinit', async () => {
    assert.deepEqual(await zshComplete('derrick unp'), ['unpublish']);
    assert.deepEqual(await zshComplete('derrick gc --d'), ['--data-dir', '--dry-run']);
    assert.deepEqual(await zshComplete(`derrick unpublish --data-dir ${tree} team/`), [
      'team/app',
      'team/tools',
    ]);
    assert.deepEqual(await zshComplete(`derrick unpublish --data-dir=${tree} team/app:`), [
      'team/app:1.0',
      'team/app:2.0',
    ]);
    assert.deepEqual(await zshComplete(`derrick ls --data-dir=${tree} team/app:`), []);
  });
});

describe('derrick completion fish', () => {
  test('is valid fish (fish --no-execute)', async () => {
    await run('fish', ['--no-config', '--no-execute', scripts.fish ?? '']);
  });

  test('offers commands, options, repository names and tags to complete -C', async () => {
    assert.deepEqual(await fishComplete('derrick unp'), ['unpublish']);
    assert.deepEqual(await fishComplete('derrick gc --d'), ['--data-dir', '--dry-run']);
    assert.deepEqual(await fishComplete(`derrick ls --data-dir ${tree} team/`), ['team/app', 'team/tools']);
    assert.deepEqual(await fishComplete(`derrick unpublish --data-dir ${tree} team/app:`), [
      'team/app:1.0',
      'team/app:2.0',
    ]);
    assert.deepEqual(await fishComplete(`derrick ls --data-dir ${tree} team/app:`), []);
  });
});
