/**
 * Credentials for a registry: `--creds user[:password]`, else the files `skopeo login`, `podman login` and
 * `docker login` write, in the order skopeo reads them (containers-auth.json(5)):
 * `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`, `~/.config/containers/auth.json`,
 * `~/.docker/config.json`. Each has `{"auths": {"<key>": {"auth": base64("user:password")}}}`; a key is a registry
 * (`registry.example.com:5000`), or a namespace or repository in it (`registry.example.com/team`), the most
 * specific matching key winning; docker's keys may carry a scheme and a path (`https://index.docker.io/v1/`).
 * Credential helpers (`credsStore`, `credHelpers`) are not run: their credentials must come through --creds.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SourceError } from '../source.ts';
import type { Credentials } from './client.ts';
import { DOCKER_HUB, type RegistryReference } from './reference.ts';

/** A SourceError, so the command line gives its message alone. */
export class CredentialsError extends SourceError {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/** `user:password` (the password may hold colons). A lone user is refused: derrick does not prompt. */
export function parseCreds(text: string): Credentials {
  const colon = text.indexOf(':');
  if (colon <= 0)
    throw new CredentialsError(
      `--creds "${text.slice(0, 40)}" is not user:password (derrick does not prompt)`,
    );
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The auth files to read, in order, for this environment. */
export function authFiles(env: NodeJS.ProcessEnv = process.env, home = os.homedir()): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(path.join(env.XDG_CONFIG_HOME ?? path.join(home, '.config'), 'containers', 'auth.json'));
  files.push(path.join(env.DOCKER_CONFIG ?? path.join(home, '.docker'), 'config.json'));
  return files;
}

/** A key of `auths` as the registry/namespace it names: no scheme, no docker `/v1/` path, Docker Hub's aliases. */
function normalizeKey(key: string): string {
  let text = key.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (/^(?:index\.)?docker\.io(?:\/v[12])?$/.test(text) || text === 'registry-1.docker.io') return DOCKER_HUB;
  text = text.replace(/\/v[12]$/, '');
  return text;
}

/** The credentials the auth files hold for `reference`, with the file they came from; undefined if none. */
export function credentialsFromFiles(
  reference: RegistryReference,
  files: readonly string[] = authFiles(),
): { credentials: Credentials; file: string } | undefined {
  const wanted = `${reference.registry}/${reference.name}`;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // absent or unreadable: the next file
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CredentialsError(`${file} is not JSON; fix or remove it, or give --creds`);
    }
    const auths = (parsed as { auths?: unknown }).auths;
    if (typeof auths !== 'object' || auths === null) continue;
    let best: { length: number; auth: string } | undefined;
    for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
      const scope = normalizeKey(key);
      if (wanted !== scope && !wanted.startsWith(`${scope}/`)) continue;
      const auth = (entry as { auth?: unknown } | null)?.auth;
      if (typeof auth !== 'string' || auth === '') continue;
      if (!best || scope.length > best.length) best = { length: scope.length, auth };
    }
    if (!best) continue;
    const decoded = Buffer.from(best.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0)
      throw new CredentialsError(
        `${file}: the "auth" for ${reference.registry} is not base64 of user:password; log in again`,
      );
    return {
      credentials: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) },
      file,
    };
  }
  return undefined;
}
