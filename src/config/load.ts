/**
 * Loading the serve configuration: YAML file → DERRICK_* environment → flags → zod → frozen. An invalid
 * configuration stops the program with where the value came from (file, variable or flag), the key, and what
 * was expected — never "log and carry on".
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { z } from 'zod';
import { configSchema, envName, flagName, SCALAR_KEYS, type Config, type ScalarKey } from './schema.ts';

// yaml costs ~0.2 s to load: only a configuration file pays for it (start-up time is module loading).
const requireYaml = (): typeof import('yaml') =>
  createRequire(import.meta.url)('yaml') as typeof import('yaml');

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** The YAML file (--config), if any. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Flag values by key (`redirect.url` → the string given to --redirect-url). */
  flags?: Partial<Record<ScalarKey, string>>;
}

function convert(key: ScalarKey, raw: string, origin: string): unknown {
  switch (SCALAR_KEYS[key]) {
    case 'number': {
      const value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value))
        throw new ConfigError(`${origin}: expected a number, got "${raw}"`);
      return value;
    }
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`${origin}: expected true or false, got "${raw}"`);
    case 'json':
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        throw new ConfigError(`${origin}: expected JSON, got "${raw}"`);
      }
    case 'string':
      return raw;
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

function describe(error: z.ZodError, origins: Map<string, string>, file: string | undefined): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid configuration';
  const key = issue.path.map(String).join('.');
  let origin = origins.get(key);
  for (
    let parts = issue.path.map(String);
    origin === undefined && parts.length > 0;
    parts = parts.slice(0, -1)
  ) {
    origin = origins.get(parts.join('.'));
  }
  const where = origin ?? (file === undefined ? 'configuration' : file);
  return `${where}: ${key === '' ? '(top level)' : key}: ${issue.message}`;
}

/** Loads, validates and freezes the configuration. Throws ConfigError with file/variable/flag, key and fix. */
export function loadConfig(sources: ConfigSources = {}): Config {
  let raw: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  if (sources.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read the config file ${sources.file}: ${(error as Error).message}`);
    }
    try {
      const { parse: parseYaml } = requireYaml();
      const parsed: unknown = parseYaml(text);
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed))
          throw new ConfigError(`${sources.file}: expected a mapping of keys`);
        raw = parsed as Record<string, unknown>;
      }
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      const where =
        error instanceof requireYaml().YAMLParseError ? ` (line ${error.linePos?.[0].line ?? '?'})` : '';
      throw new ConfigError(
        `${sources.file}${where}: not valid YAML: ${(error as Error).message.split('\n')[0] ?? ''}`,
      );
    }
  }
  const env = sources.env ?? {};
  for (const key of Object.keys(SCALAR_KEYS) as ScalarKey[]) {
    const name = envName(key);
    const value = env[name];
    if (value !== undefined) {
      setPath(raw, key, convert(key, value, `environment variable ${name}`));
      origins.set(key, `environment variable ${name}`);
    }
  }
  for (const [key, value] of Object.entries(sources.flags ?? {}) as [ScalarKey, string | undefined][]) {
    if (value === undefined) continue;
    setPath(raw, key, convert(key, value, `--${flagName(key)}`));
    origins.set(key, `--${flagName(key)}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(describe(parsed.error, origins, sources.file));
  const config = parsed.data;
  if ((config.redirect.urlMatch === undefined) !== (config.redirect.urlReplace === undefined)) {
    throw new ConfigError('redirect.urlMatch and redirect.urlReplace go together: set both or neither');
  }
  if (config.catalog.defaultPageSize > config.catalog.maxPageSize) {
    throw new ConfigError('catalog.defaultPageSize is larger than catalog.maxPageSize');
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
