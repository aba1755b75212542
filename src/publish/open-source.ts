/**
 * Parses a source argument (`oci:<dir>[:<ref>]`, `docker-archive:<file>[:<ref>]`, `dir:<dir>`,
 * `docker://<registry>/<name>[:tag|@digest]`) and opens it. As in skopeo, a path ends at the first `:` after the
 * transport.
 */
import { promises as fs } from 'node:fs';
import { openDockerArchive } from './source-docker-archive.ts';
import { openSkopeoDir } from './source-dir.ts';
import { openOciLayout } from './source-oci.ts';
import { credentialsFromFiles, parseCreds } from './registry/credentials.ts';
import { parseRegistryReference } from './registry/reference.ts';
import { openRegistrySource } from './source-registry.ts';
import { SourceError, type ImageSource } from './source.ts';

export const SOURCE_FORMS =
  'oci:<dir>[:<ref>], docker-archive:<file>[:<name:tag>|:@<n>], dir:<dir> or docker://<registry>/<name>[:tag|@digest]';

/** How to reach a `docker://` source: skopeo's --creds, --tls-verify and --cert-dir. */
export interface RegistryFlags {
  /** `user:password`; else the auth files (registry/credentials.ts). */
  creds: string | undefined;
  tlsVerify: boolean;
  certDir: string | undefined;
  userAgent?: string;
}

export interface ParsedSource {
  transport: 'oci' | 'docker-archive' | 'dir';
  path: string;
  ref: string | undefined;
}

export function parseSource(spec: string): ParsedSource {
  const colon = spec.indexOf(':');
  const transport = colon === -1 ? '' : spec.slice(0, colon);
  const rest = colon === -1 ? '' : spec.slice(colon + 1);
  if (transport !== 'oci' && transport !== 'docker-archive' && transport !== 'dir') {
    throw new SourceError(`"${spec}" is not a source derrick reads; write ${SOURCE_FORMS}`);
  }
  if (transport === 'dir') return { transport, path: rest, ref: undefined };
  const split = rest.indexOf(':');
  const sourcePath = split === -1 ? rest : rest.slice(0, split);
  const ref = split === -1 ? undefined : rest.slice(split + 1);
  if (sourcePath === '') throw new SourceError(`"${spec}" names no path; write ${SOURCE_FORMS}`);
  if (ref === '') throw new SourceError(`"${spec}" ends with ":" but names no image after it`);
  return { transport, path: sourcePath, ref };
}

export async function openSource(
  spec: string,
  scratchDir: string,
  onBytes?: (bytes: number) => void,
  signal?: AbortSignal,
  registry: RegistryFlags = { creds: undefined, tlsVerify: true, certDir: undefined },
): Promise<ImageSource> {
  if (spec.startsWith('docker://')) {
    const reference = parseRegistryReference(spec.slice('docker://'.length));
    if ('error' in reference) throw new SourceError(reference.error);
    const credentials =
      registry.creds !== undefined
        ? parseCreds(registry.creds)
        : credentialsFromFiles(reference.ok)?.credentials;
    return openRegistrySource(reference.ok, {
      credentials,
      tlsVerify: registry.tlsVerify,
      certDir: registry.certDir,
      userAgent: registry.userAgent ?? 'derrick',
    });
  }
  const parsed = parseSource(spec);
  if (parsed.path === '') throw new SourceError(`"${spec}" names no path; write ${SOURCE_FORMS}`);
  const missing = await fs.stat(parsed.path).then(
    () => false,
    (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT',
  );
  if (missing) {
    const what = parsed.transport === 'docker-archive' ? 'file' : 'directory';
    throw new SourceError(`${parsed.transport}:${parsed.path}: the ${what} ${parsed.path} does not exist`);
  }
  switch (parsed.transport) {
    case 'oci':
      return openOciLayout(parsed.path, parsed.ref);
    case 'dir':
      return openSkopeoDir(parsed.path);
    case 'docker-archive':
      return openDockerArchive(scratchDir, parsed.path, parsed.ref, onBytes, signal);
  }
}
