/**
 * Builds OCI image layouts from nothing, offline and deterministically: layers, configs, image manifests
 * (OCI or Docker schema 2), indexes, and artifacts with a `subject`. Used by the demo-image script and the tests.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  artifactType?: string;
  urls?: string[];
}

const FIXED_TIME = new Date('2024-01-01T00:00:00Z');

/** A deterministic uncompressed tar of `files` (path → content), with their parent directories. */
export async function makeTar(files: Record<string, string | Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  const dirs = new Set<string>();
  for (const name of Object.keys(files).sort()) {
    const parts = name.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!dirs.has(dir)) {
        dirs.add(dir);
        pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, mtime: FIXED_TIME, uid: 0, gid: 0 });
      }
    }
    const content = files[name] ?? '';
    pack.entry(
      { name, mode: 0o644, mtime: FIXED_TIME, uid: 0, gid: 0 },
      typeof content === 'string' ? Buffer.from(content) : content,
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export class LayoutBuilder {
  private readonly entries: Descriptor[] = [];

  constructor(readonly dir: string) {
    mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  }

  /** Writes bytes as a blob; returns its descriptor. */
  blob(bytes: Buffer, mediaType: string): Descriptor {
    const digest = sha256(bytes);
    writeFileSync(path.join(this.dir, 'blobs', 'sha256', digest.slice(7)), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  json(value: unknown, mediaType: string): Descriptor {
    return this.blob(Buffer.from(JSON.stringify(value)), mediaType);
  }

  async layer(
    files: Record<string, string | Buffer>,
    mediaType: string = MT.ociLayerGzip,
  ): Promise<{ descriptor: Descriptor; diffId: string }> {
    const raw = await makeTar(files);
    const bytes = mediaType.endsWith('gzip') ? gzipSync(raw, { level: 9 }) : raw;
    return { descriptor: this.blob(bytes, mediaType), diffId: sha256(raw) };
  }

  /** An image: a config naming `platform`, layers from `files`, as an OCI or Docker schema 2 manifest. */
  async image(options: {
    platform?: Platform;
    files?: Record<string, string | Buffer>;
    extraLayers?: { descriptor: Descriptor; diffId: string }[];
    docker?: boolean;
    cmd?: string[];
    annotations?: Record<string, string>;
  }): Promise<Descriptor> {
    const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
    const layers = [];
    if (options.files)
      layers.push(await this.layer(options.files, options.docker ? MT.dockerLayer : MT.ociLayerGzip));
    layers.push(...(options.extraLayers ?? []));
    const config = this.json(
      {
        architecture: platform.architecture,
        os: platform.os,
        ...(platform.variant ? { variant: platform.variant } : {}),
        created: FIXED_TIME.toISOString(),
        config: { Cmd: options.cmd ?? ['/hello'], Env: ['PATH=/usr/bin:/bin'] },
        rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
        history: layers.map(() => ({
          created: FIXED_TIME.toISOString(),
          created_by: 'derrick test builder',
        })),
      },
      options.docker ? MT.dockerConfig : MT.ociConfig,
    );
    const mediaType = options.docker ? MT.dockerManifest : MT.ociManifest;
    const manifest = this.json(
      {
        schemaVersion: 2,
        mediaType,
        config,
        layers: layers.map((layer) => layer.descriptor),
        ...(options.annotations ? { annotations: options.annotations } : {}),
      },
      mediaType,
    );
    return { ...manifest, platform };
  }

  /** An index (or Docker manifest list) of `children`, each carrying its platform. */
  index(children: Descriptor[], docker = false): Descriptor {
    const mediaType = docker ? MT.dockerList : MT.ociIndex;
    return this.json({ schemaVersion: 2, mediaType, manifests: children }, mediaType);
  }

  /** An OCI 1.1 artifact (e.g. a signature or SBOM) whose subject is `subject`. */
  artifact(
    subject: Descriptor,
    artifactType: string,
    payload: string,
    annotations?: Record<string, string>,
  ): Descriptor {
    const empty = this.blob(Buffer.from('{}'), MT.ociEmpty);
    const layer = this.blob(Buffer.from(payload), 'text/plain');
    const { platform: _platform, ...subjectDescriptor } = subject;
    return this.json(
      {
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        artifactType,
        config: empty,
        layers: [layer],
        subject: subjectDescriptor,
        ...(annotations ? { annotations } : {}),
      },
      MT.ociManifest,
    );
  }

  /** Names `descriptor` in index.json (`ref` → org.opencontainers.image.ref.name), or lists it unnamed. */
  add(descriptor: Descriptor, ref?: string): this {
    const { platform: _platform, ...rest } = descriptor;
    this.entries.push(
      ref === undefined ? rest : { ...rest, annotations: { 'org.opencontainers.image.ref.name': ref } },
    );
    return this;
  }

  write(): string {
    writeFileSync(path.join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      path.join(this.dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: this.entries }),
    );
    return this.dir;
  }
}
