/**
 * Command-line mistakes in derrick's one-line format, for every command: what is wrong, for which command, a
 * "did you mean" when a name is close to one that exists, and where the options are listed —
 *
 *     derrick: unknown option --lsiten for derrick serve (did you mean --listen?); see derrick serve --help
 *
 * Commander finds the mistakes; this turns its error (code and message) into that line, and main() prints it
 * with exit status 2.
 */
import type { Command, CommanderError, Option } from 'commander';
import { closest } from '../config/suggest.ts';

/** A mistake on the command line: the message is the line after `derrick: `. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `derrick serve`: the command as the user types it. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current; current = current.parent)
    names.unshift(current.name());
  return names.join(' ');
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

function longFlags(command: Command): string[] {
  return command.options.flatMap((option: Option) => (option.long === undefined ? [] : [option.long]));
}

/** The first '…' of commander's message. */
function quoted(message: string, index = 0): string {
  return [...message.matchAll(/'([^']*)'/g)][index]?.[1] ?? '';
}

function unknownOption(command: Command, message: string): string {
  const flag = quoted(message).replace(/=.*$/s, '');
  const name = commandPath(command);
  const flags = [...longFlags(command), '--help'];
  let hint = '';
  const guess = flag.startsWith('--')
    ? closest(
        flag.slice(2),
        flags.map((long) => long.slice(2)),
      )
    : undefined;
  if (guess !== undefined) hint = ` (did you mean --${guess}?)`;
  else {
    const owner = allCommands(command.parent ?? command).find(
      (other) => other !== command && longFlags(other).includes(flag),
    );
    if (owner) hint = ` (${flag} is an option of ${commandPath(owner)})`;
  }
  return `unknown option ${flag} for ${name}${hint}`;
}

function unknownCommand(command: Command, message: string): string {
  const word = quoted(message);
  const guess = closest(word, [...command.commands.map((sub) => sub.name()), 'help']);
  return `unknown command ${word}${guess === undefined ? '' : ` (did you mean ${guess}?)`}`;
}

/** The option of `command` that `flag` names (either form of a negatable one). */
function optionFor(command: Command, flag: string): Option | undefined {
  return command.options.find((option) => option.long === flag || option.short === flag);
}

/** Operands beyond what the command takes; a value after a flag that takes none gets its own hint. */
function excessArguments(command: Command, argv: readonly string[]): string {
  const taken = command.registeredArguments.length;
  const extra = command.args.slice(taken);
  const first = extra[0] ?? '';
  const name = commandPath(command);
  const before = argv[argv.lastIndexOf(first) - 1];
  const flag = before === undefined ? undefined : optionFor(command, before);
  if (flag && !flag.required && !flag.optional && flag.long !== undefined) {
    const positive = flag.long.replace(/^--no-/, '--');
    const negative = `--no-${positive.slice(2)}`;
    const forms = longFlags(command).includes(negative) ? ` (use ${positive} or ${negative})` : '';
    return `unexpected argument ${first} for ${name}: ${flag.long} takes no value${forms}`;
  }
  const usage = command.registeredArguments.map((arg) => {
    const text = `${arg.name()}${arg.variadic ? '...' : ''}`;
    return arg.required ? `<${text}>` : `[${text}]`;
  });
  const takes = taken === 0 ? 'it takes none' : `it takes ${usage.join(' ')}`;
  return `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.join(' ')} for ${name} (${takes})`;
}

function invalidValue(command: Command, message: string): string {
  const name = commandPath(command);
  const reason = message.replace(/^.*? is invalid(?: for argument '[^']*')?\.\s*/s, '');
  if (message.startsWith("error: command-argument value '"))
    return `<${quoted(message, 1)}> ${quoted(message)} for ${name}: ${reason}`;
  const flag =
    quoted(message)
      .split(/[ ,]/)
      .find((part) => part.startsWith('--')) ?? quoted(message);
  const fromEnv = /from env '([^']*)'/.exec(message)?.[1];
  return `${fromEnv === undefined ? flag : `${fromEnv} (for ${flag})`} ${quoted(message, 1)} for ${name}: ${reason}`;
}

/** The one line for commander's error on `command`, or undefined for what is no mistake (help, version). */
export function describeParseError(
  error: CommanderError,
  command: Command,
  argv: readonly string[],
): string | undefined {
  const name = commandPath(command);
  const see = `; see ${name} --help`;
  const message = error.message;
  switch (error.code) {
    case 'commander.help':
    case 'commander.helpDisplayed':
    case 'commander.version':
      return undefined;
    case 'commander.unknownOption':
      return unknownOption(command, message) + see;
    case 'commander.unknownCommand':
      return unknownCommand(command, message) + see;
    case 'commander.missingArgument':
      return `missing <${quoted(message)}> for ${name} (usage: ${name} ${command.usage()})${see}`;
    case 'commander.optionMissingArgument': {
      const flags = quoted(message);
      const placeholder = /<[^>]*>/.exec(flags)?.[0] ?? 'a value';
      const flag = flags.split(/[ ,]/).find((part) => part.startsWith('--')) ?? flags;
      return `${flag} needs a value (${placeholder}) for ${name}${see}`;
    }
    case 'commander.invalidArgument':
      return invalidValue(command, message) + see;
    case 'commander.excessArguments':
      return excessArguments(command, argv) + see;
    default:
      return `${message.replace(/^error: /, '').split('\n')[0] ?? ''} for ${name}${see}`;
  }
}

/**
 * Makes every command of `program` throw a UsageError (with its one line) for a mistake on the command line,
 * instead of printing commander's message and exiting; help and version still throw their CommanderError.
 * Throws the UsageError itself for `derrick help <no such command>`, which commander answers with the whole help.
 */
export function reportParseErrors(program: Command, argv: readonly string[]): void {
  const [word, topic] = argv.slice(2);
  if (
    word === 'help' &&
    topic !== undefined &&
    !topic.startsWith('-') &&
    !program.commands.some((sub) => sub.name() === topic)
  )
    throw new UsageError(`${unknownCommand(program, `'${topic}'`)}; see ${commandPath(program)} --help`);
  for (const command of allCommands(program)) {
    command.showHelpAfterError(false);
    command.showSuggestionAfterError(false);
    command.configureOutput({ outputError: () => {} });
    command.exitOverride((error: CommanderError) => {
      const line = describeParseError(error, command, argv);
      throw line === undefined ? error : new UsageError(line);
    });
  }
}
