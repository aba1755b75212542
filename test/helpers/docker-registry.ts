/**
 * Debian's `docker-registry` (CNCF distribution 2.8) on loopback, for tests that mirror from a real registry:
 * plain HTTP or TLS (`http.tls`, with `clientcas` for mutual TLS), optionally with htpasswd users. It has no
 * referrers API (it answers 404), which is what registries of its generation do. Stopped by the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { writeHtpasswd } from './auth.ts';
import { freePort } from './nginx.ts';
import { stopChild } from './processes.ts';

export interface DockerRegistry {
  /** `127.0.0.1:<port>`. */
  address: string;
  stop(): Promise<void>;
}

export interface DockerRegistryOptions {
  /** user → password, checked with htpasswd (realm `test-realm`). */
  users?: Record<string, string>;
  /** Serve TLS with this certificate; `clientCa`: and ask for a client certificate it signed. */
  tls?: { cert: string; key: string; clientCa?: string };
}

/** Starts docker-registry with its storage and config in `dir` (made if need be); resolves once it accepts connections. */
export async function startDockerRegistry(
  dir: string,
  options: DockerRegistryOptions = {},
): Promise<DockerRegistry> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const auth: Record<string, unknown> = {};
  if (options.users) {
    const htpasswd = path.join(dir, 'registry.htpasswd');
    writeHtpasswd(htpasswd, options.users);
    auth.htpasswd = { realm: 'test-realm', path: htpasswd };
  }
  const tls = options.tls
    ? {
        certificate: options.tls.cert,
        key: options.tls.key,
        ...(options.tls.clientCa ? { clientcas: [options.tls.clientCa] } : {}),
      }
    : undefined;
  const config = path.join(dir, 'registry.yml');
  writeFileSync(
    config,
    stringify({
      version: 0.1,
      log: { level: 'error', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: path.join(dir, 'registry-storage') } },
      http: { addr: `127.0.0.1:${port}`, ...(tls ? { tls } : {}) },
      ...(options.users ? { auth } : {}),
    }),
  );
  // Go's AWS SDK refuses to start with AWS_CA_BUNDLE set and no S3 in use (this machine sets it).
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  const child: ChildProcess = spawn('docker-registry', ['serve', config], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const address = `127.0.0.1:${port}`;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline && child.exitCode === null;) {
    if (await accepts(port)) return { address, stop: () => stopChild(child) };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopChild(child);
  throw new Error(`docker-registry did not start: ${stderr}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
