/**
 * `dir:<dir>` — skopeo's directory format: `manifest.json` (the manifest, byte for byte), `version`, each blob
 * named by its hex digest, and for `skopeo copy --all` each child manifest as `<hex>.manifest.json`.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseDigest, sha256Digest } from '../oci/digest.ts';
import { fileBlob, ioReason, readManifestFile, SourceError, type ImageSource } from './source.ts';

export async function openSkopeoDir(dir: string): Promise<ImageSource> {
  const stat = await fs.stat(dir).catch((error: unknown) => {
    throw new SourceError(`cannot read ${dir}: ${ioReason(error)}`);
  });
  if (!stat.isDirectory())
    throw new SourceError(`${dir} is not a directory (dir:<dir> is skopeo's directory format)`);
  const version = await fs.readFile(path.join(dir, 'version'), 'utf8').catch(() => undefined);
  if (version === undefined || !version.startsWith('Directory Transport Version:')) {
    throw new SourceError(
      `${dir} is not a skopeo dir: image (no version file); write one with skopeo copy … dir:${dir}`,
    );
  }
  const rootFile = path.join(dir, 'manifest.json');
  const rootBytes = await fs.readFile(rootFile).catch((error: unknown) => {
    throw new SourceError(`cannot read ${rootFile}: ${ioReason(error)}`);
  });
  const rootDigest = sha256Digest(rootBytes);
  const fileFor = (digest: string, suffix: string): string | undefined => {
    const parsed = parseDigest(digest);
    if ('error' in parsed) return undefined;
    const base = parsed.algorithm === 'sha256' ? parsed.hex : `${parsed.algorithm}-${parsed.hex}`;
    return path.join(dir, base + suffix);
  };

  return {
    description: `dir:${dir}`,
    roots: () =>
      Promise.resolve([
        { digest: rootDigest, mediaType: undefined, size: rootBytes.length, refName: undefined },
      ]),
    candidateReferrers: () => Promise.resolve([]),
    async readManifest(digest) {
      if (digest === rootDigest) return { bytes: rootBytes, where: rootFile };
      const file = fileFor(digest, '.manifest.json');
      return file === undefined ? Promise.resolve(undefined) : readManifestFile(file);
    },
    blob(digest) {
      const file = fileFor(digest, '');
      return file === undefined ? Promise.resolve(undefined) : fileBlob(file);
    },
    close: () => Promise.resolve(),
  };
}
