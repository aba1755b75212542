/**
 * Opening the upstreams a sync file names: registries with their credentials (written in the file, in a file, or
 * in an environment variable; else the login commands' auth files) and TLS, trees with --data-dir's own opener.
 * A credential that cannot be read is one line naming the upstream and where the password was to come from.
 */
import { readFileSync } from 'node:fs';
import type { SyncConfig, SyncUpstream } from '../config/sync-schema.ts';
import { ConfigError } from '../config/yaml-file.ts';
import type { Credentials } from '../publish/registry/client.ts';
import { registryUpstream } from '../publish/sync/upstream-registry.ts';
import { treeUpstream } from '../publish/sync/upstream-tree.ts';
import type { Upstream } from '../publish/sync/upstream.ts';
import { openTreeAt } from './command-kit.ts';

export interface OpenUpstreamsOptions {
  file: string;
  scratchDir: string;
  userAgent: string;
  signal: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

function credentialsOf(
  key: string,
  upstream: SyncUpstream,
  options: OpenUpstreamsOptions,
): Credentials | undefined {
  const given = upstream.credentials;
  if (!given) return undefined;
  const where = `${options.file}: upstreams.${key}.credentials`;
  let password = given.password;
  if (given.passwordFile !== undefined) {
    try {
      password = readFileSync(given.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new ConfigError(
        `${where}.passwordFile: cannot read ${given.passwordFile}: ${(error as Error).message}`,
      );
    }
  }
  if (given.passwordEnv !== undefined) {
    password = (options.env ?? process.env)[given.passwordEnv];
    if (password === undefined)
      throw new ConfigError(`${where}.passwordEnv: the environment variable ${given.passwordEnv} is not set`);
  }
  return { username: given.username, password: password ?? '' };
}

/** Every upstream of the file, opened; the caller closes them. */
export async function openUpstreams(
  config: SyncConfig,
  options: OpenUpstreamsOptions,
): Promise<Map<string, Upstream>> {
  const opened = new Map<string, Upstream>();
  for (const [key, upstream] of Object.entries(config.upstreams)) {
    if (upstream.tree !== undefined) {
      opened.set(key, treeUpstream(await openTreeAt(upstream.tree, 'existing')));
      continue;
    }
    opened.set(
      key,
      registryUpstream({
        registry: upstream.registry ?? '',
        credentials: credentialsOf(key, upstream, options),
        tlsVerify: upstream.tlsVerify,
        certDir: upstream.certDir,
        userAgent: options.userAgent,
        scratchDir: options.scratchDir,
        signal: options.signal,
      }),
    );
  }
  return opened;
}
