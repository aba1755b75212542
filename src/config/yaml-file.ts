/**
 * Reading a YAML configuration file (`derrick serve --config`, `derrick sync <file>`) into a plain mapping, with
 * every problem as one line naming the file and, for syntax, the line and column. yaml costs ~0.2 s to load: only
 * a configuration file pays for it (start-up time is module loading).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const requireYaml = (): typeof import('yaml') =>
  createRequire(import.meta.url)('yaml') as typeof import('yaml');

/** One line, whatever keys and values it quotes: a control character (CR, LF, …) is shown as its escape. */
export function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this replaces
  return message.replace(/[\u0000-\u001f\u007f]/g, (char) => JSON.stringify(char).slice(1, -1));
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(oneLine(message));
    this.name = 'ConfigError';
  }
}

export interface YamlMapping {
  /** The mapping (empty for an empty file). */
  value: Record<string, unknown>;
  /** The line (1-based) a key path starts at, when the file has it: for messages. */
  lineOf: (path: readonly (string | number)[]) => number | undefined;
}

/** Reads `file` as a YAML mapping; throws ConfigError naming the file (and the line for syntax errors). */
export function readYamlMapping(file: string): YamlMapping {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${file}: ${(error as Error).message}`);
  }
  const yaml = requireYaml();
  try {
    // Silent: the yaml library would print its warnings (an unknown tag, a collection as a key) to stderr as
    // several lines of its own. A warning is a mistake in the file, reported as an error here; a collection key
    // becomes a string that the caller's key check names.
    const document = yaml.parseDocument(text, { logLevel: 'silent' });
    const problem = document.errors[0] ?? document.warnings[0];
    if (problem) throw problem;
    const parsed: unknown = document.toJS();
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed)))
      throw new ConfigError(`${file}: expected a mapping of keys`);
    const counter = new yaml.LineCounter();
    const located = yaml.parseDocument(text, { logLevel: 'silent', lineCounter: counter });
    const lineOf = (path: readonly (string | number)[]): number | undefined => {
      for (let parts = [...path]; parts.length > 0; parts = parts.slice(0, -1)) {
        const node = located.getIn(parts, true) as { range?: [number, number, number] } | undefined;
        const offset = node?.range?.[0];
        if (offset !== undefined) return counter.linePos(offset).line;
      }
      return undefined;
    };
    return { value: (parsed ?? {}) as Record<string, unknown>, lineOf };
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const position = error instanceof yaml.YAMLError ? error.linePos?.[0] : undefined;
    const where = position ? ` (line ${position.line}, column ${position.col})` : '';
    // The library's message repeats the position and then quotes the lines around it: its first clause is enough.
    const what = ((error as Error).message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${file}${where}: not valid YAML: ${what}`);
  }
}
