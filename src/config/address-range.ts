/** An IP address or CIDR range as written in `trustedProxies`: `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`. No zod. */
import { isIP } from 'node:net';

export interface AddressRange {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** The range, or why the text is not one. */
export function parseAddressRange(text: string): AddressRange | string {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0)
    return `expected an IP address or CIDR range (10.0.0.0/8, fd00::/8), not ${JSON.stringify(text)}`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const bits = version === 4 ? 32 : 128;
  if (slash === -1) return { address, prefix: bits, family };
  const prefixText = text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= bits))
    return `expected a prefix length from 0 to ${bits} after the / in ${JSON.stringify(text)}`;
  return { address, prefix, family };
}
