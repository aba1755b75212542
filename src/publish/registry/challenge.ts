/**
 * `WWW-Authenticate` challenges (RFC 7235 §4.1, §2.1), as a registry sends them with a 401:
 *
 *     challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *     auth-param = token BWS "=" BWS ( token / quoted-string )
 *
 * One header may hold several challenges separated by commas (`Bearer realm="…",service="…", Basic realm="…"`).
 * Schemes are case-insensitive (lower-cased here), so are parameter names; values are kept as sent, quoted
 * strings unescaped. Pure: no I/O.
 */

export interface Challenge {
  /** Lower case: `bearer`, `basic`. */
  scheme: string;
  /** Parameter names lower-cased (`realm`, `service`, `scope`). */
  params: Record<string, string>;
}

/** RFC 7230 tchar. */
const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
/** A token68 (RFC 7235 §2.1) up to the end of its challenge: what some schemes send instead of parameters. */
const TOKEN68 = /^([A-Za-z0-9\-._~+/]+=*)[ \t]*(?:,|$)/;

export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const n = header.length;
  let i = 0;
  const skip = (chars: string): void => {
    while (i < n && chars.includes(header[i] ?? '')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && TCHAR.test(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  /** A quoted-string from its opening quote, unescaped; undefined when it is not closed. */
  const quoted = (): string | undefined => {
    let value = '';
    for (i++; i < n; i++) {
      const c = header[i] ?? '';
      if (c === '"') {
        i++;
        return value;
      }
      if (c === '\\' && i + 1 < n) i++;
      value += header[i] ?? '';
    }
    return undefined;
  };
  let current: Challenge | undefined;
  while (i < n) {
    skip(' \t,');
    const name = token();
    if (name === '') break; // not a token: keep what was understood
    skip(' \t');
    if (current !== undefined && header[i] === '=' && header[i + 1] !== '=') {
      i++;
      skip(' \t');
      const value = header[i] === '"' ? quoted() : token();
      if (value === undefined) break;
      current.params[name.toLowerCase()] = value;
      skip(' \t');
      if (i < n && header[i] !== ',') break;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    const token68 = TOKEN68.exec(header.slice(i));
    if (token68) {
      current.params.token68 = token68[1] ?? '';
      i += token68[0].length;
      current = undefined; // a token68 ends its challenge
    }
  }
  return challenges;
}
