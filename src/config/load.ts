/**
 * Loading the serve configuration: YAML file → DERRICK_* environment → flags → zod → frozen. An invalid
 * configuration stops the program with where the value came from (file, variable or flag), the key, and what
 * was expected — never "log and carry on".
 */
import { Describer, shown } from './describe.ts';
import { envName, flagName, KEY_NAMES, keyInfo, OTHER_VARIABLES, type ScalarKey } from './keys.ts';
import { configSchema, type Config } from './schema.ts';
import { closest } from './suggest.ts';
import { ConfigError, readYamlMapping } from './yaml-file.ts';

export { ConfigError };

export interface ConfigSources {
  /** The YAML file (--config), if any. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Flag values by key (`redirect.url` → the string given to --redirect-url; booleans as booleans). */
  flags?: Partial<Record<ScalarKey, string | boolean>>;
  /** Told what is suspicious but not wrong (a DERRICK_* variable that is no key); one line each. */
  warn?: (message: string) => void;
}

function convert(key: ScalarKey, raw: string | boolean, origin: string): unknown {
  const { type, expected } = keyInfo(key);
  if (typeof raw === 'boolean') {
    if (type === 'boolean') return raw;
    throw new ConfigError(`${origin}: ${key}: expected ${expected}, got no value`);
  }
  switch (type) {
    case 'number': {
      const value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value))
        throw new ConfigError(`${origin}: ${key}: expected ${expected}, got "${raw}"`);
      return value;
    }
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`${origin}: ${key}: expected true or false, got "${raw}"`);
    case 'json':
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        throw new ConfigError(`${origin}: ${key}: expected JSON: ${expected}, got ${shown(raw)}`);
      }
    case 'string':
      return raw;
  }
}

/** A DERRICK_* variable that no key reads: worth a word, since a typo would otherwise be silently ignored. */
function unknownVariables(env: NodeJS.ProcessEnv, warn: (message: string) => void): void {
  const known = new Map(KEY_NAMES.map((key) => [envName(key), key]));
  for (const name of Object.keys(env)) {
    if (!name.startsWith('DERRICK_') || known.has(name) || OTHER_VARIABLES.includes(name)) continue;
    const guess = closest(name, known.keys());
    warn(
      `environment variable ${name} is not a configuration key${guess === undefined ? '' : ` (did you mean ${guess}?)`}; it is ignored`,
    );
  }
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] ?? key] = value;
}

/** Loads, validates and freezes the configuration. Throws ConfigError with file/variable/flag, key and fix. */
export function loadConfig(sources: ConfigSources = {}): Config {
  let raw: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  if (sources.file !== undefined) raw = readYamlMapping(sources.file).value;
  const env = sources.env ?? {};
  if (sources.warn) unknownVariables(env, sources.warn);
  for (const key of KEY_NAMES) {
    const name = envName(key);
    const value = env[name];
    if (value !== undefined) {
      setPath(raw, key, convert(key, value, `environment variable ${name}`));
      origins.set(key, `environment variable ${name}`);
    }
  }
  for (const [key, value] of Object.entries(sources.flags ?? {}) as [
    ScalarKey,
    string | boolean | undefined,
  ][]) {
    if (value === undefined) continue;
    setPath(raw, key, convert(key, value, `--${flagName(key)}`));
    origins.set(key, `--${flagName(key)}`);
  }
  const describer = new Describer(raw, origins, sources.file);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(describer.describe(parsed.error));
  const config = parsed.data;
  if (config.redirect.urlMatch !== undefined && config.redirect.urlReplace === undefined)
    throw new ConfigError(describer.missing('redirect.urlReplace', ['redirect.urlMatch']));
  if (config.redirect.urlReplace !== undefined && config.redirect.urlMatch === undefined)
    throw new ConfigError(describer.missing('redirect.urlMatch', ['redirect.urlReplace']));
  if (config.serve.sendfile !== 'off' && config.dataDir.startsWith('s3://'))
    throw new ConfigError(
      `${describer.where(['serve', 'sendfile'])}: serve.sendfile: ${config.serve.sendfile} needs a tree on a local file system, and ${config.dataDir} is a bucket; set serve.sendfile to off (an s3:// tree is served from the bucket, or redirected to it with mode redirect)`,
    );
  const { defaultPageSize, maxPageSize } = config.catalog;
  if (defaultPageSize > maxPageSize) {
    throw new ConfigError(
      `${describer.where(['catalog', 'defaultPageSize'])}: catalog.defaultPageSize: expected at most catalog.maxPageSize (${maxPageSize}), got ${defaultPageSize}`,
    );
  }
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
