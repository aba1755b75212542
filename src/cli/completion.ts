/**
 * `derrick completion bash|zsh|fish`: a completion script for the shell, derived from the commander program
 * itself (its commands, their options and arguments), so it cannot fall behind the command line. Repository
 * names come from the tree at completion time: the scripts call the hidden `derrick completion --names=<word>`,
 * which prints the names that start with <word> (or, after `name:`, that repository's `name:tag`s).
 */
import { Argument, Command, Option } from 'commander';
import {
  bashScript,
  fishScript,
  zshScript,
  type CommandSpec,
  type Kind,
  type OptionSpec,
  type ValueSpec,
} from './completion-scripts.ts';

const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** An argument's kind, from its name: `<name[:tag]...>`, `[prefix]`, `<pulp-dir>`, `[command]`. */
function argumentKind(label: string, choices: readonly string[] | undefined): ValueSpec {
  const spec = (kind: Kind): ValueSpec => ({ kind, words: choices ? [...choices] : [], label });
  if (choices) return spec('words');
  if (/tag/.test(label)) return spec('tagged');
  if (label === 'prefix' || label.startsWith('name')) return spec('names');
  if (label === 'command') return spec('commands');
  return spec(/dir/.test(label) ? 'dirs' : 'files');
}

/** An option's value's kind, from its choices, its attribute (dataDir) or its placeholder (`<dir>`, `<seconds>`). */
function optionSpec(option: Option): OptionSpec {
  const flags = [option.short, option.long].filter((flag): flag is string => flag !== undefined);
  const spec: OptionSpec = { flags, description: option.description };
  if (!option.required && !option.optional) return spec;
  const label = /[<[]([^>\]]*)[>\]]/.exec(option.flags)?.[1] ?? 'value';
  const value = (kind: Kind): ValueSpec => ({ kind, words: [...(option.argChoices ?? [])], label });
  if (option.argChoices) spec.value = value('words');
  else if (option.attributeName() === 'dataDir' || /dir/.test(label)) spec.value = value('dirs');
  // Numbers and URLs cannot be guessed; any other value may be a file, as bash completes by default.
  else spec.value = value(/second|url|number|count|size/.test(label) ? 'none' : 'files');
  return spec;
}

/** The program's own options (as command `.`), then each visible command's, as `derrick --help` lists them. */
function describeProgram(program: Command): CommandSpec[] {
  const help = program.createHelp();
  const spec = (command: Command, name: string): CommandSpec => ({
    name,
    description: command.description(),
    options: help.visibleOptions(command).map(optionSpec),
    args: command.registeredArguments.map((argument) => argumentKind(argument.name(), argument.argChoices)),
    variadic: command.registeredArguments.at(-1)?.variadic ?? false,
  });
  return [
    spec(program, '.'),
    ...help.visibleCommands(program).map((command) => spec(command, command.name())),
  ];
}
/** Repository names starting with `word`, or `name:tag` for each tag of `name` when `word` is `name:…`. */
async function printNames(dataDir: string, word: string): Promise<void> {
  const [{ Tree }, { validateName }] = await Promise.all([
    import('../store/tree.ts'),
    import('../oci/names.ts'),
  ]);
  const tree = new Tree(dataDir);
  const colon = word.indexOf(':');
  const lines: string[] = [];
  if (colon >= 0) {
    const name = word.slice(0, colon);
    const lookup = validateName(name).ok ? await tree.readRecord(name) : undefined;
    if (lookup?.found)
      for (const tag of lookup.repository.tags.keys())
        if (`${name}:${tag}`.startsWith(word)) lines.push(`${name}:${tag}`);
  } else {
    // Names come in sorted order, so those that start with `word` are one run, from just before `word` on.
    for await (const name of tree.walkNames(word === '' ? {} : { after: word.slice(0, -1) })) {
      if (name.startsWith(word)) lines.push(name);
      else if (name > word) break;
    }
  }
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
}

/** Registers `derrick completion`; `dataDirOption` is the --data-dir option every command takes. */
export function addCompletionCommand(program: Command, dataDirOption: () => Option): void {
  program
    .command('completion')
    .description('print a completion script for bash, zsh or fish (see the README)')
    .addArgument(new Argument('[shell]', 'the shell to print the script for').choices(SHELLS))
    .addOption(dataDirOption().hideHelp())
    .addOption(new Option('--names <word>', 'print the repository names that start with <word>').hideHelp())
    .action(
      async (shell: string | undefined, opts: { dataDir: string; names?: string }, command: Command) => {
        if (opts.names !== undefined) {
          // Called by the scripts on every Tab: whatever goes wrong (no tree, unreadable records), print nothing.
          await printNames(opts.dataDir, opts.names).catch(() => undefined);
          return;
        }
        if (shell === undefined) {
          process.stderr.write(
            'derrick: completion needs a shell — derrick completion bash (or zsh, or fish)\n',
          );
          process.exitCode = 1;
          return;
        }
        const program = command.parent ?? command;
        const specs = describeProgram(program);
        const prog = program.name();
        const script =
          shell === 'bash'
            ? bashScript(specs, prog)
            : shell === 'zsh'
              ? zshScript(specs, prog)
              : fishScript(specs, prog);
        process.stdout.write(script);
      },
    );
}
