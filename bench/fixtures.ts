/**
 * The benchmark fixtures: the main tree (published with the real `derrick publish`), repositories with many tags,
 * generated trees of 100 to 100,000 repositories in the real record format, and the same images loaded into a
 * docker-registry for comparison.
 *
 * Everything lives under the work directory, at fixed places, so that anything holding a `Fixtures` can find the
 * OCI layouts again (`layoutsOf`):
 *
 *   <workDir>/layouts/{small,multi,blob1m,blob1g}   OCI image layouts (blob1g: full size only)
 *   <workDir>/data                                  the main tree
 *   <workDir>/tree-<n>                              a generated tree of n repositories
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { LayoutBuilder, type Descriptor } from '../scripts/oci-builder.ts';
import { serializeRecord, type Repository } from '../src/store/record.ts';
import { Tree } from '../src/store/tree.ts';
import { multiPlatformLayout } from '../test/helpers/images.ts';
import { DERRICK_BIN, derrickNodeFlags } from './servers.ts';
import type { BenchSize, Fixtures } from './types.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..');

// ---------------------------------------------------------------------------------------------------------------
// Running the real CLI

export interface DerrickCli {
  /** The program to spawn (node) and the arguments that come before derrick's own. */
  command: string;
  args: string[];
  /**
   * dist: the bundled CLI (bin/derrick.js, with the node flags its exec line gives); source: src/cli/main.ts through
   * tsx (slower to start); tsc: tsc's one module per file, the build before the bundle (bench/measures-startup.ts).
   */
  from: 'dist' | 'source' | 'tsc';
}

let cachedCli: DerrickCli | undefined;

/** The newest modification time of any file below `dir` (is dist/ older than src/?). */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * How to run `derrick`: the bundled CLI when dist/ is built and no older than src/ (run `npm run build`), else
 * the source through tsx — with a warning, since tsx compiles at every start and so slows every spawn. `serve`:
 * with the node flags bin/derrick.js gives `derrick serve`.
 */
export function derrickCli(command: 'serve' | 'other' = 'other'): DerrickCli {
  const cli = anyCli();
  if (command === 'other' || cli.from !== 'dist') return cli;
  return { ...cli, args: [...derrickNodeFlags('serve'), DERRICK_BIN] };
}

function anyCli(): DerrickCli {
  if (cachedCli) return cachedCli;
  const distMain = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');
  const fresh =
    existsSync(distMain) && statSync(distMain).mtimeMs >= newestMtime(path.join(REPO_ROOT, 'src'));
  if (fresh) {
    cachedCli = { command: process.execPath, args: [...derrickNodeFlags(), DERRICK_BIN], from: 'dist' };
  } else {
    console.warn(
      `bench: ${existsSync(distMain) ? 'dist/ is older than src/' : 'dist/ is not built'}; running derrick from source through tsx (run npm run build for the bundled CLI)`,
    );
    cachedCli = {
      command: process.execPath,
      args: ['--import', import.meta.resolve('tsx'), path.join(REPO_ROOT, 'src', 'cli', 'main.ts')],
      from: 'source',
    };
  }
  return cachedCli;
}

/** Runs `derrick <args>` to completion; rejects with its output when it exits non-zero. */
export function runDerrick(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const cli = derrickCli();
  return runCommand(cli.command, [...cli.args, ...args]);
}

/** Runs a command from the repository's root; its output, or an error with its stderr when it fails. */
export function runCommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else {
        const shown = args.map((arg) => (arg.length > 80 ? `…${arg.slice(-60)}` : arg)).join(' ');
        reject(new Error(`${path.basename(command)} ${shown} exited ${signal ?? code}: ${stderr}${stdout}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// OCI layouts

export interface BenchLayouts {
  /** One linux/amd64 image, one small gzip layer. */
  small: string;
  /** An OCI index of linux/amd64 + linux/arm64/v8. */
  multi: string;
  /** One image whose only layer is 1 MiB of random bytes. */
  blob1m: string;
  /** One image whose only layer is 1 GiB of random bytes (full size only; the directory is absent otherwise). */
  blob1g: string;
}

/** Where buildFixtures put its OCI layouts (each names its image `latest`). */
export function layoutsOf(fixtures: Pick<Fixtures, 'workDir'>): BenchLayouts {
  const dir = path.join(fixtures.workDir, 'layouts');
  return {
    small: path.join(dir, 'small'),
    multi: path.join(dir, 'multi'),
    blob1m: path.join(dir, 'blob1m'),
    blob1g: path.join(dir, 'blob1g'),
  };
}

/** Layer media type of the random layers: uncompressed, so the diff ID is the digest (nobody unpacks them). */
const RAW_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const CHUNK = 4 * 1024 * 1024;

/**
 * Writes `size` random bytes as a blob of the layout at `dir`, in chunks (never more than 4 MiB in memory),
 * hashing as it goes; returns its descriptor.
 */
export async function writeRandomBlob(dir: string, size: number, mediaType = RAW_LAYER): Promise<Descriptor> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await fs.mkdir(blobs, { recursive: true });
  const temp = path.join(blobs, `.random-${process.pid}-${Date.now()}`);
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(Math.min(CHUNK, size));
  const handle = await fs.open(temp, 'w');
  try {
    for (let written = 0; written < size;) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, size - written));
      randomFillSync(chunk);
      hash.update(chunk);
      await handle.write(chunk);
      written += chunk.length;
    }
  } catch (error) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  const hex = hash.digest('hex');
  await fs.rename(temp, path.join(blobs, hex));
  return { mediaType, digest: `sha256:${hex}`, size };
}

/** An OCI layout at `dir` with one image named `latest` whose only layer is `size` random bytes. */
export async function randomImageLayout(
  dir: string,
  size: number,
): Promise<{ manifest: Descriptor; layer: Descriptor; layerFile: string }> {
  const builder = new LayoutBuilder(dir);
  const layer = await writeRandomBlob(dir, size);
  const manifest = await builder.image({ extraLayers: [{ descriptor: layer, diffId: layer.digest }] });
  builder.add(manifest, 'latest').write();
  return { manifest, layer, layerFile: path.join(dir, 'blobs', 'sha256', layer.digest.slice(7)) };
}

async function smallLayout(dir: string): Promise<Descriptor> {
  const builder = new LayoutBuilder(dir);
  const image = await builder.image({ files: { 'hello.txt': 'hello from the derrick benchmark\n' } });
  builder.add(image, 'latest').write();
  return image;
}

// ---------------------------------------------------------------------------------------------------------------
// Trees

const SIZES: Record<
  BenchSize,
  { tags: [number, number]; trees: [number, number, number]; blob1GiB: boolean }
> = {
  tiny: { tags: [10, 200], trees: [10, 100, 1000], blob1GiB: false },
  quick: { tags: [10, 10_000], trees: [100, 10_000, 100_000], blob1GiB: false },
  full: { tags: [10, 10_000], trees: [100, 10_000, 100_000], blob1GiB: true },
};

/** The i-th tag of a many-tags repository: zero-padded, so byte order is numeric order. */
export function benchTag(i: number): string {
  return `t${String(i).padStart(5, '0')}`;
}

/** The i-th repository of a generated tree: spread over 100 namespace directories. */
export function generatedName(i: number): string {
  return `org-${i % 100}/repo-${i}`;
}

async function readPublished(tree: Tree, name: string): Promise<Repository> {
  const lookup = await tree.readRecord(name);
  if (!lookup.found) throw new Error(`bench: ${name} is not in ${tree.location} after publishing it`);
  return lookup.repository;
}

/** Replaces the tags of the published `name` with `count` tags, all on the manifest it has now. */
async function retag(dataDir: string, name: string, count: number): Promise<void> {
  const tree = new Tree(dataDir);
  const repository = await readPublished(tree, name);
  const digest = [...repository.tags.values()][0];
  if (digest === undefined) throw new Error(`bench: ${name} has no tag after publishing it`);
  const tags = new Map<string, string>();
  for (let i = 0; i < count; i++) tags.set(benchTag(i), digest);
  await tree.writeRecord({ ...repository, tags });
}

/**
 * A tree of `count` repositories, all the same small image: one real publish (as `org-0/repo-0`), then the other
 * records written directly, the published record under a new name (serializeRecord), in parallel batches.
 *
 * Only record files are written for the generated repositories, not their v2/web content links: these trees are
 * measured through _catalog, start-up and memory, which read records and nothing else. Serve mode still answers
 * every repository's manifests and blobs (it reads v2/content, which the one real publish filled); only a web
 * server or CDN serving v2/web (redirect mode) would miss them.
 */
export async function generateTree(dataDir: string, count: number, smallLayoutDir: string): Promise<void> {
  const first = generatedName(0);
  await runDerrick(['publish', `oci:${smallLayoutDir}:latest`, first, '--data-dir', dataDir, '-q']);
  const template = await readPublished(new Tree(dataDir), first);
  const appDir = path.join(dataDir, 'v2', 'app');
  const namespaces = new Set<string>();
  for (let i = 0; i < Math.min(count, 100); i++) namespaces.add(generatedName(i).split('/')[0] ?? '');
  await Promise.all(
    [...namespaces].map((namespace) => fs.mkdir(path.join(appDir, namespace), { recursive: true })),
  );
  const batch = 256;
  for (let start = 1; start < count; start += batch) {
    const writes = [];
    for (let i = start; i < Math.min(start + batch, count); i++) {
      const name = generatedName(i);
      writes.push(fs.writeFile(path.join(appDir, `${name}.json`), serializeRecord({ ...template, name })));
    }
    await Promise.all(writes);
  }
}

export async function buildFixtures(workDir: string, size: BenchSize): Promise<Fixtures> {
  const plan = SIZES[size];
  const layouts = layoutsOf({ workDir });
  const dataDir = path.join(workDir, 'data');
  await fs.mkdir(workDir, { recursive: true });

  const small = await smallLayout(layouts.small);
  const { index: multi } = await multiPlatformLayout(layouts.multi);
  const blob1m = await randomImageLayout(layouts.blob1m, 1024 * 1024);
  const blob1g = plan.blob1GiB ? await randomImageLayout(layouts.blob1g, 1024 * 1024 * 1024) : undefined;

  const tags10 = 'bench/tags10';
  const tags10k = 'bench/tags10k'; // 200 tags in tiny size, under the same name
  const publishMain = async (): Promise<void> => {
    const publish = (layout: string, ...targets: string[]) =>
      runDerrick(['publish', `oci:${layout}:latest`, ...targets, '--data-dir', dataDir, '-q']);
    await publish(layouts.small, 'bench/small:latest', tags10, tags10k);
    await publish(layouts.multi, 'bench/multi:latest');
    await publish(layouts.blob1m, 'bench/blob1m:latest');
    if (blob1g) await publish(layouts.blob1g, 'bench/blob1g:latest');
    await retag(dataDir, tags10, plan.tags[0]);
    await retag(dataDir, tags10k, plan.tags[1]);
  };
  const trees = plan.trees.map((repositories) => ({
    repositories,
    dataDir: path.join(workDir, `tree-${repositories}`),
  }));
  const generateTrees = async (): Promise<void> => {
    // One after another (they are disk-bound), alongside the main tree's publishes.
    for (const tree of trees) await generateTree(tree.dataDir, tree.repositories, layouts.small);
  };
  // Both run to their end even when one fails, so no derrick publish is left writing into the work directory.
  const results = await Promise.allSettled([publishMain(), generateTrees()]);
  for (const result of results) if (result.status === 'rejected') throw result.reason;

  return {
    workDir,
    dataDir,
    image: { name: 'bench/small', tag: 'latest', digest: small.digest, mediaType: small.mediaType },
    index: { name: 'bench/multi', tag: 'latest', digest: multi.digest, mediaType: multi.mediaType },
    blob1MiB: { name: 'bench/blob1m', digest: blob1m.layer.digest, size: blob1m.layer.size },
    blob1GiB: blob1g
      ? { name: 'bench/blob1g', digest: blob1g.layer.digest, size: blob1g.layer.size }
      : undefined,
    tags10,
    tags10k,
    trees,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// docker-registry

async function skopeoCopy(layout: string, registry: string, reference: string): Promise<void> {
  await runCommand('skopeo', [
    'copy',
    '--quiet',
    '--dest-tls-verify=false',
    '--all',
    // Unchanged bytes, so docker-registry serves the very manifests and blobs derrick does (without it, skopeo
    // gzips the uncompressed random layers on the way, and the 1 MiB image gets other digests).
    '--preserve-digests',
    `oci:${layout}:latest`,
    `docker://${registry}/${reference}`,
  ]);
}

/** Puts `manifest` under every tag of `tags` in docker-registry's repository `name`: PUTs, 50 at a time. */
async function putTags(registry: string, name: string, tags: string[], manifest: Buffer, mediaType: string) {
  for (let start = 0; start < tags.length; start += 50) {
    await Promise.all(
      tags.slice(start, start + 50).map(async (tag) => {
        const response = await fetch(`http://${registry}/v2/${name}/manifests/${tag}`, {
          method: 'PUT',
          headers: { 'content-type': mediaType },
          body: manifest,
        });
        const text = await response.text();
        if (response.status !== 201) {
          throw new Error(`docker-registry: PUT ${name}:${tag} answered ${response.status}: ${text}`);
        }
      }),
    );
  }
}

/**
 * Writes the tag links a manifest PUT would write, straight into docker-registry's filesystem storage (distribution
 * 2.x layout: `_manifests/tags/<tag>/current/link` and `_manifests/tags/<tag>/index/sha256/<hex>/link`, each
 * holding the digest). The manifest's revision and blobs must already be in the repository (one real copy).
 * docker-registry with filesystem storage and no cache reads these files at each request.
 */
async function writeTagLinks(
  storageDir: string,
  name: string,
  tags: string[],
  digest: string,
): Promise<void> {
  const tagsDir = path.join(
    storageDir,
    'docker',
    'registry',
    'v2',
    'repositories',
    ...name.split('/'),
    '_manifests',
    'tags',
  );
  const [algorithm = 'sha256', hex = ''] = digest.split(':');
  for (let start = 0; start < tags.length; start += 256) {
    await Promise.all(
      tags.slice(start, start + 256).map(async (tag) => {
        const current = path.join(tagsDir, tag, 'current');
        const index = path.join(tagsDir, tag, 'index', algorithm, hex);
        await Promise.all([fs.mkdir(current, { recursive: true }), fs.mkdir(index, { recursive: true })]);
        await Promise.all([
          fs.writeFile(path.join(current, 'link'), digest),
          fs.writeFile(path.join(index, 'link'), digest),
        ]);
      }),
    );
  }
}

/**
 * Loads the fixtures' images into a running docker-registry on 127.0.0.1:`registryPort`, under the same names,
 * tags and digests as in the main tree: the small image, the multi-platform index (all platforms), the 1 MiB image,
 * and the many-tags repositories (one skopeo copy, then the same manifest under every other tag). Not the 1 GiB
 * image.
 *
 * The other tags are PUT, 50 at a time — about 3 ms each on a 2-CPU box, so ~30 s for 10,000. With
 * `storageDir` (the registry's filesystem `rootdirectory`) they are written as the files a PUT leaves instead, in
 * about a second, and one of them is checked over HTTP.
 */
export async function loadIntoDockerRegistry(
  fixtures: Fixtures,
  registryPort: number,
  options: { storageDir?: string } = {},
): Promise<void> {
  const registry = `127.0.0.1:${registryPort}`;
  const layouts = layoutsOf(fixtures);
  const { image, index, blob1MiB } = fixtures;
  await skopeoCopy(layouts.small, registry, `${image.name}:${image.tag}`);
  await skopeoCopy(layouts.multi, registry, `${index.name}:${index.tag}`);
  await skopeoCopy(layouts.blob1m, registry, `${blob1MiB.name}:latest`);

  const manifest = await fs.readFile(path.join(layouts.small, 'blobs', 'sha256', image.digest.slice(7)));
  const tree = new Tree(fixtures.dataDir);
  for (const name of [fixtures.tags10, fixtures.tags10k]) {
    const tags = [...(await readPublished(tree, name)).tags.keys()];
    const [first, ...rest] = tags;
    if (first === undefined) continue;
    await skopeoCopy(layouts.small, registry, `${name}:${first}`);
    if (options.storageDir === undefined) {
      await putTags(registry, name, rest, manifest, image.mediaType);
      continue;
    }
    await writeTagLinks(options.storageDir, name, rest, image.digest);
    const last = rest[rest.length - 1];
    if (last === undefined) continue;
    const response = await fetch(`http://${registry}/v2/${name}/manifests/${last}`, {
      method: 'HEAD',
      headers: { accept: image.mediaType },
    });
    const answered = response.headers.get('docker-content-digest');
    if (response.status !== 200 || answered !== image.digest) {
      throw new Error(
        `docker-registry: ${name}:${last} written under ${options.storageDir} answers ${response.status} ${answered ?? ''}, not ${image.digest}: is that its storage directory?`,
      );
    }
  }
}
