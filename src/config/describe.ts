/**
 * What is wrong with a configuration, in one line: where the value came from (the file, the variable or the
 * flag), the key, and what is expected — with the key table's words (src/config/keys.ts), not zod's, and a
 * "did you mean" for a misspelt key at any depth.
 */
import type { z } from 'zod';
import { configSchema } from './schema.ts';
import { KEY_NAMES, KEYS, keyInfo, type ScalarKey } from './keys.ts';
import { closest } from './suggest.ts';

type Path = readonly (string | number)[];

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  in?: z.ZodType;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The schema with its optional/default wrappers taken off. */
function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (let def = defOf(current); ; def = defOf(current)) {
    const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (inner === undefined) return current;
    current = inner;
  }
}

/** The schema of the value at `path` (array indexes and record names included), or undefined. */
export function schemaAt(path: Path): z.ZodType | undefined {
  let current: z.ZodType | undefined = configSchema;
  for (const part of path) {
    if (current === undefined) return undefined;
    const def = defOf(unwrap(current));
    if (def.type === 'object') current = def.shape?.[String(part)];
    else if (def.type === 'array') current = def.element;
    else if (def.type === 'record') current = def.valueType;
    else return undefined;
  }
  return current;
}

/** The keys a mapping at `path` may have (empty when it is no mapping). */
export function keysAt(path: Path): string[] {
  const schema = schemaAt(path);
  const def = schema === undefined ? undefined : defOf(unwrap(schema));
  return def?.type === 'object' ? Object.keys(def.shape ?? {}) : [];
}

/** The default the schema gives a key when nothing sets it (undefined when it has none). */
export function schemaDefault(key: ScalarKey): unknown {
  const schema = schemaAt(key.split('.'));
  const result = schema?.safeParse(undefined);
  return result?.success ? result.data : undefined;
}

/** The value at `path` of the unvalidated configuration. */
export function valueAt(raw: unknown, path: Path): unknown {
  let current = raw;
  for (const part of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[String(part)];
  }
  return current;
}

/** A value as the message shows it: JSON, cut short. */
export function shown(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** "did you mean …?" for an unknown key `name` in the mapping at `parent`, or ''. */
function suggestKey(parent: Path, name: string): string {
  const join = (parts: Path): string => parts.join('.');
  const sibling = closest(name, keysAt(parent));
  if (sibling !== undefined) return `; did you mean "${join([...parent, sibling])}"?`;
  if (parent.length === 0 && name in KEYS) {
    const parts = name.split('.');
    const nested = parts.reduceRight(
      (inner, part, index) => (index === parts.length - 1 ? `${part}: …` : `${part}: { ${inner} }`),
      '',
    );
    return `; keys are nested in YAML: ${nested}`;
  }
  const elsewhere = closest(
    name,
    KEY_NAMES.filter((key) => key.includes('.')).map((key) => key.slice(key.lastIndexOf('.') + 1)),
  );
  if (elsewhere === undefined) return '';
  const full = KEY_NAMES.find((key) => key.endsWith(`.${elsewhere}`)) ?? elsewhere;
  return `; did you mean "${full}"?`;
}

export class Describer {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly origins: ReadonlyMap<string, string>,
    private readonly file: string | undefined,
  ) {}

  /** Where the value at `path` came from: its own origin, a parent's, else the file. */
  where(path: Path): string {
    for (let parts = path.map(String); parts.length > 0; parts = parts.slice(0, -1)) {
      const origin = this.origins.get(parts.join('.'));
      if (origin !== undefined) return origin;
    }
    return this.file ?? 'configuration';
  }

  /** `<where>: <key>: missing: <sibling> is set, and <why>`, naming the source of the sibling. */
  missing(key: ScalarKey, setKeys?: readonly string[]): string {
    const path = key.split('.');
    const parent = path.slice(0, -1);
    const siblings =
      setKeys ??
      keysAt(parent)
        .filter((name) => valueAt(this.raw, [...parent, name]) !== undefined)
        .map((name) => [...parent, name].join('.'));
    const why = keyInfo(key).required;
    if (siblings.length === 0 || why === undefined)
      return `${this.where(parent)}: ${key}: missing; expected ${keyInfo(key).expected}`;
    const set = `${siblings.join(', ')} ${siblings.length === 1 ? 'is' : 'are'} set`;
    return `${this.where(siblings[0]?.split('.') ?? parent)}: ${key}: missing: ${set}, and ${why}`;
  }

  /** The line for the first issue, a misspelt key before anything else (it is likely the cause of the rest). */
  describe(error: z.ZodError): string {
    const issues = [...error.issues].sort(
      (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
    );
    const issue = issues[0];
    if (!issue) return 'invalid configuration';
    const path = issue.path.filter((part) => typeof part !== 'symbol');
    const key = path.join('.');
    if (issue.code === 'unrecognized_keys') {
      const name = issue.keys[0] ?? '';
      const full = [...path, name].join('.');
      return `${this.where(path)}: ${full}: not a configuration key${suggestKey(path, name)}`;
    }
    const value = valueAt(this.raw, path);
    if (key in KEYS && issue.code !== 'custom') {
      const known = key as ScalarKey;
      if (value === undefined) return this.missing(known);
      return `${this.where(path)}: ${key}: expected ${keyInfo(known).expected}, got ${shown(value)}`;
    }
    const label = key === '' ? '(top level)' : key;
    if (issue.code === 'invalid_type') {
      if (value === undefined) return `${this.where(path)}: ${label}: missing`;
      const names = keysAt(path);
      const expected =
        names.length > 0
          ? `a mapping of ${names.map((name) => [...path, name].join('.')).join(', ')}`
          : issue.expected === 'array'
            ? 'a list'
            : `a ${issue.expected}`;
      return `${this.where(path)}: ${label}: expected ${expected}, got ${shown(value)}`;
    }
    return `${this.where(path)}: ${label}: ${issue.message}`;
  }
}
