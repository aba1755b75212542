/**
 * Docker token-auth scopes: `<type>[(<class>)]:<name>:<action>[,<action>…]`, e.g. `repository:team/app:pull`
 * or `registry:catalog:*`. The name is what lies between the first and the last colon.
 */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** Parses one scope; undefined for anything that is not `type:name:actions`. */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first || last === scope.length - 1) return undefined;
  const type = scope.slice(0, first).replace(/\([^)]*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((action) => action !== '');
  if (!/^[a-z0-9]+$/.test(type) || name === '' || actions.length === 0) return undefined;
  return { type, name, actions };
}

/** `scope` query values (repeated, or space-separated within one) → the accesses they ask for. */
export function parseScopes(values: readonly string[]): Access[] {
  const accesses: Access[] = [];
  for (const value of values)
    for (const scope of value.split(' ')) {
      if (scope === '') continue;
      const access = parseScope(scope);
      if (access) accesses.push(access);
    }
  return accesses;
}

export function scopeOf(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}
