/**
 * Loading `derrick sync`'s file: YAML → zod → SyncConfig, every problem one line with the file, the line, the key
 * path and what is expected (a misspelt key with a "did you mean"), as `derrick serve --config` reports its own.
 */
import { shown, valueAt } from './describe.ts';
import { closest } from './suggest.ts';
import { syncKeysAt, syncSchema, type SyncConfig } from './sync-schema.ts';
import { ConfigError, readYamlMapping } from './yaml-file.ts';

export { ConfigError };

/** `repositories[0].tags.include` */
function formatPath(path: readonly (string | number)[]): string {
  return path
    .map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`))
    .join('');
}

export function loadSyncConfig(file: string): SyncConfig {
  const { value, lineOf } = readYamlMapping(file);
  const parsed = syncSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  // A misspelt key first: it is likely the cause of the rest.
  const issues = [...parsed.error.issues].sort(
    (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
  );
  const issue = issues[0];
  if (!issue) throw new ConfigError(`${file}: invalid`);
  const path = issue.path.filter((part): part is string | number => typeof part !== 'symbol');
  const where = (at: readonly (string | number)[]): string => {
    const line = lineOf(at);
    return line === undefined ? file : `${file}:${line}`;
  };
  if (issue.code === 'unrecognized_keys') {
    const name = issue.keys[0] ?? '';
    const guess = closest(name, syncKeysAt(path));
    const keys = syncKeysAt(path).join(', ');
    throw new ConfigError(
      `${where([...path, name])}: ${formatPath([...path, name])}: not a key here${guess === undefined ? `; keys are ${keys}` : `; did you mean "${guess}"?`}`,
    );
  }
  const label = path.length === 0 ? '(top level)' : formatPath(path);
  const got = valueAt(value, path);
  if (issue.code === 'invalid_type') {
    if (got === undefined) throw new ConfigError(`${where(path)}: ${label}: missing`);
    const expected =
      issue.expected === 'array'
        ? 'a list'
        : issue.expected === 'object'
          ? 'a mapping'
          : `a ${issue.expected}`;
    throw new ConfigError(`${where(path)}: ${label}: expected ${expected}, got ${shown(got)}`);
  }
  if (issue.code === 'invalid_value')
    throw new ConfigError(
      `${where(path)}: ${label}: expected one of ${issue.values.map((item) => JSON.stringify(item)).join(', ')}, got ${shown(got)}`,
    );
  throw new ConfigError(`${where(path)}: ${label}: ${issue.message}`);
}
