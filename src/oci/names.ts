/**
 * Repository names, tags and references, by the OCI distribution-spec grammar.
 * Pure: no I/O. Everything that reaches the file system is checked here first.
 */

/** One path component of a repository name: lower-case alphanumerics joined by `.`, `_`, `__` or dashes. */
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
/** A tag: up to 128 characters, word characters, dots and dashes, not starting with `.` or `-`. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** The whole-name grammar, for schemas (validateName gives the better message). */
export const NAME_PATTERN =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
export const TAG_PATTERN = TAG;

/** distribution limits the whole name (with a registry host) to 255 characters; we hold the path to that. */
export const MAX_NAME_LENGTH = 255;

export type Validation = { ok: true } | { ok: false; reason: string };

/**
 * Checks a repository name (`library/busybox`) against the distribution-spec grammar.
 * @example validateName('library/busybox') // { ok: true }
 * @example validateName('../etc')          // { ok: false, reason: '…' }
 */
export function validateName(name: string): Validation {
  if (name.length === 0) return { ok: false, reason: 'the repository name is empty' };
  if (name.length > MAX_NAME_LENGTH) {
    return {
      ok: false,
      reason: `the repository name is ${name.length} characters long; at most ${MAX_NAME_LENGTH}`,
    };
  }
  const components = name.split('/');
  for (const component of components) {
    if (component === '') return { ok: false, reason: `"${name}" has an empty path component` };
    if (!COMPONENT.test(component)) {
      return {
        ok: false,
        reason: `"${component}" in "${name}" is not a valid name component (lower-case letters, digits, and . _ __ - between them)`,
      };
    }
  }
  return { ok: true };
}

export function isValidName(name: string): boolean {
  return validateName(name).ok;
}

/** Checks a tag (`latest`, `v1.2.3`). */
export function validateTag(tag: string): Validation {
  if (TAG.test(tag)) return { ok: true };
  if (tag.length > 128) return { ok: false, reason: `the tag is ${tag.length} characters long; at most 128` };
  return {
    ok: false,
    reason: `"${tag}" is not a valid tag (letters, digits, _ . - ; at most 128; not starting with . or -)`,
  };
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * Splits `name[:tag]` as written on a command line (`library/busybox:1.36`). The tag is whatever follows the
 * last `:` (names cannot hold one); `@digest` references are not tags and are refused by the caller.
 */
export function splitNameAndTag(spec: string): { name: string; tag: string | undefined } {
  const colon = spec.lastIndexOf(':');
  if (colon === -1) return { name: spec, tag: undefined };
  return { name: spec.slice(0, colon), tag: spec.slice(colon + 1) };
}
