/**
 * Redirect URLs: the repository's base URL + a content path, then Crane's url_match/url_replace rewrite, then
 * (when configured) Crane's signed-URL token: token = "exp=<unix time + ttl>~", hmac = HMAC-<algo>(hex-decoded
 * secret, token + "url=" + <path of the URL>), appended as `?<param>=<token>hmac=<hex>` (`&` when the URL has a
 * query already).
 */
import { createHmac } from 'node:crypto';
import type { Config } from '../config/schema.ts';

export type RedirectConfig = Config['redirect'];

export function signUrl(
  url: string,
  token: NonNullable<RedirectConfig['token']>,
  nowSeconds: number,
): string {
  const parsed = new URL(url);
  const value = `exp=${Math.floor(nowSeconds) + token.ttlSeconds}~`;
  const hmac = createHmac(token.algorithm, Buffer.from(token.secret, 'hex'))
    .update(`${value}url=${parsed.pathname}`)
    .digest('hex');
  return `${url}${url.includes('?') ? '&' : '?'}${token.param}=${value}hmac=${hmac}`;
}

export function joinUrl(base: string, relative: string): string {
  return `${base.replace(/\/+$/, '')}/${relative}`;
}

/** The final redirect URL for `relative` below `base`. */
export function redirectUrl(
  config: RedirectConfig,
  base: string,
  relative: string,
  nowSeconds = Date.now() / 1000,
): string {
  let url = joinUrl(base, relative);
  if (config.urlMatch !== undefined && config.urlReplace !== undefined)
    url = url.replaceAll(config.urlMatch, config.urlReplace);
  return config.token ? signUrl(url, config.token, nowSeconds) : url;
}
