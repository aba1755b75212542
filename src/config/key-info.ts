/**
 * What the configuration's key table (keys.ts) says of each key, and the phrases its entries share.
 */

export type KeyType = 'string' | 'number' | 'boolean' | 'json';

export interface KeyInfo {
  /** How the string of a variable or flag becomes the value (json: the structured keys). */
  type: KeyType;
  /** The schema's default, as the YAML would write it; absent = none. */
  default?: string | number | boolean | readonly never[] | Readonly<Record<string, never>>;
  /** Shown instead of the default when the default is worked out at run time. */
  defaultText?: string;
  /** One line, Markdown: the --help text and the start of the doc's row. */
  meaning: string;
  /** More for the doc's row only. */
  details?: string;
  /** What a valid value is, for errors: `expected <this>`. */
  expected: string;
  /** Why the key must be set once another key of its section is (`missing: tls.cert is set, and <this>`). */
  required?: string;
  /** The flag's value placeholder (`--listen <host:port>`); booleans have none. */
  value?: string;
}

export const whole = (minimum: number): string => `a whole number ≥ ${minimum}`;
export const SECONDS = 'a number of seconds ≥ 0';
