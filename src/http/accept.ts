/**
 * What an `Accept` header accepts: media types with q > 0 (parameters and q-values parsed), and wildcards.
 */
export interface Accepted {
  /** Media types the client accepts explicitly (lower-cased, parameters dropped). */
  types: ReadonlySet<string>;
  /** `*\/*` was accepted. */
  any: boolean;
  /** Types refused with q=0, which a wildcard does not bring back. */
  refused: ReadonlySet<string>;
  /** The header was absent: the registry convention is a client that knows no manifest lists. */
  absent: boolean;
}

export function parseAccept(header: string | string[] | undefined): Accepted {
  if (header === undefined) return { types: new Set(), any: false, refused: new Set(), absent: true };
  const types = new Set<string>();
  const refused = new Set<string>();
  let any = false;
  for (const part of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [rawType, ...params] = part.split(';');
    const type = (rawType ?? '').trim().toLowerCase();
    if (type === '') continue;
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=').map((piece) => piece.trim());
      if (key?.toLowerCase() === 'q') q = Number(value);
    }
    if (!(q > 0)) {
      refused.add(type);
      continue;
    }
    if (type === '*/*') any = true;
    else types.add(type);
  }
  for (const type of refused) types.delete(type);
  return { types, any, refused, absent: false };
}

export function accepts(accepted: Accepted, mediaType: string): boolean {
  return !accepted.refused.has(mediaType) && (accepted.any || accepted.types.has(mediaType));
}
