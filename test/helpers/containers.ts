/**
 * A configuration for skopeo and podman that does not depend on the host's: no search registries, no stored
 * credentials (an empty auth file of the test's own), vfs storage, and a policy that accepts any image.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface ClientConfig {
  /** The signature policy file (`--policy` / `--signature-policy`). */
  policy: string;
  /** The environment that points the clients at these files (add it to process.env). */
  env: Record<string, string>;
}

/** Writes the client configuration into `dir` (created). */
export function containersClientConfig(dir: string): ClientConfig {
  mkdirSync(dir, { recursive: true });
  const policy = path.join(dir, 'policy.json');
  const env = {
    CONTAINERS_REGISTRIES_CONF: path.join(dir, 'registries.conf'),
    CONTAINERS_STORAGE_CONF: path.join(dir, 'storage.conf'),
    CONTAINERS_CONF: path.join(dir, 'containers.conf'),
    REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'),
  };
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  writeFileSync(env.CONTAINERS_REGISTRIES_CONF, 'unqualified-search-registries = []\n');
  // podman's --root/--runroot take over from these; it refuses a storage.conf without them.
  writeFileSync(
    env.CONTAINERS_STORAGE_CONF,
    `[storage]\ndriver = "vfs"\nrunroot = "${dir}/runroot"\ngraphroot = "${dir}/root"\n`,
  );
  writeFileSync(env.CONTAINERS_CONF, '');
  writeFileSync(env.REGISTRY_AUTH_FILE, '{"auths":{}}\n');
  return { policy, env };
}

/** podman's global flags for running as root with vfs storage and all its state in `dir`. */
export function podmanStateArgs(dir: string): string[] {
  return [
    ['--root', path.join(dir, 'root')],
    ['--runroot', path.join(dir, 'runroot')],
    ['--tmpdir', path.join(dir, 'tmp')],
    ['--storage-driver', 'vfs'],
    ['--cgroup-manager', 'cgroupfs'],
    ['--events-backend', 'none'],
  ].flat();
}
