/**
 * `derrick migrate <pulp-dir>`: Pulp 2 writes Crane's records as `v2/app/<repository-id>.json`, named after
 * Pulp's repository id; derrick finds a record by the name clients pull (`repo-registry-id`). This lays every
 * record at `v2/app/<repo-registry-id>.json` of the data directory, byte for byte (content stays where each
 * record's `url` points: nothing is copied). Two records claiming one name are reported, and neither is laid.
 * When the Pulp directory is the data directory itself, the id-named files are removed once their records stand
 * under their names.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../store/atomic.ts';
import { APP_PREFIX, recordKey } from '../store/keys.ts';
import { parseRecord, RecordError } from '../store/record.ts';
import type { Tree } from '../store/tree.ts';
import { PublishError } from './publisher.ts';

export interface MigrateResult {
  migrated: { file: string; name: string }[];
  unchanged: { file: string; name: string }[];
  conflicts: { name: string; files: string[]; reason: string }[];
  invalid: { file: string; reason: string }[];
}

async function listJson(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listJson(full, base)));
    else if (entry.isFile() && entry.name.endsWith('.json')) out.push(full);
  }
  return out.sort();
}

export async function migrate(
  tree: Tree,
  pulpDir: string,
  options: { dryRun: boolean; lockTimeoutMs: number },
): Promise<MigrateResult> {
  const root = path.resolve(pulpDir);
  const appDir = (await fs.stat(path.join(root, 'v2', 'app')).catch(() => undefined))?.isDirectory()
    ? path.join(root, 'v2', 'app')
    : root;
  const stat = await fs.stat(appDir).catch(() => undefined);
  if (!stat?.isDirectory())
    throw new PublishError(`${pulpDir} is not a directory of Pulp 2 records (expected <dir>/v2/app/*.json)`);
  const treeApp = tree.backend.localPath(APP_PREFIX.slice(0, -1));
  const inPlace = treeApp !== undefined && path.resolve(appDir) === treeApp;

  const result: MigrateResult = { migrated: [], unchanged: [], conflicts: [], invalid: [] };
  const claims = new Map<string, { file: string; bytes: Buffer }[]>();
  for (const file of await listJson(appDir)) {
    const bytes = await fs.readFile(file);
    try {
      const repository = parseRecord(bytes, file);
      if (repository.format !== 'pulp2') {
        if (!inPlace) result.invalid.push({ file, reason: 'already a derrick record, not a Pulp 2 one' });
        continue;
      }
      claims.set(repository.name, [...(claims.get(repository.name) ?? []), { file, bytes }]);
    } catch (error) {
      result.invalid.push({
        file,
        reason: error instanceof RecordError ? error.message.slice(file.length + 2) : String(error),
      });
    }
  }

  // Registered like a publisher: gc must not sweep our staged records before we rename them.
  const registration = options.dryRun
    ? undefined
    : await tree.backend.beginPublish({ timeoutMs: options.lockTimeoutMs });
  try {
    return await layOut(tree, claims, result, inPlace, options);
  } finally {
    await registration?.release();
  }
}

async function layOut(
  tree: Tree,
  claims: Map<string, { file: string; bytes: Buffer }[]>,
  result: MigrateResult,
  inPlace: boolean,
  options: { dryRun: boolean; lockTimeoutMs: number },
): Promise<MigrateResult> {
  const laid: string[] = [];
  for (const [name, files] of [...claims].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const [first] = files;
    if (!first) continue;
    const distinct = new Set(files.map((entry) => entry.bytes.toString('utf8')));
    if (files.length > 1 && distinct.size > 1) {
      result.conflicts.push({
        name,
        files: files.map((entry) => entry.file),
        reason: 'several records claim this name',
      });
      continue;
    }
    const key = recordKey(name);
    const target = tree.backend.localPath(key) ?? tree.backend.describe(key);
    const read = await tree.backend.read(key);
    const existing = read.status === 'found' ? read.bytes : undefined;
    if (existing?.equals(first.bytes)) {
      result.unchanged.push({ file: first.file, name });
      laid.push(target);
      continue;
    }
    if (existing !== undefined && !files.some((entry) => path.resolve(entry.file) === target)) {
      result.conflicts.push({
        name,
        files: [first.file, target],
        reason: `${tree.describeRecord(name)} already holds another record`,
      });
      continue;
    }
    const collision = await tree.findCollision(name);
    if (collision !== undefined) {
      result.conflicts.push({ name, files: [first.file], reason: collision });
      continue;
    }
    if (!options.dryRun) {
      // Laid only over what was read: a publisher that wrote this record meanwhile wins, and we say so.
      const expect = read.status === 'found' ? { version: read.version } : ('absent' as const);
      const wait = { timeoutMs: options.lockTimeoutMs };
      if ((await tree.backend.write(key, first.bytes, expect, wait)) === 'conflict') {
        result.conflicts.push({
          name,
          files: [first.file],
          reason: `${tree.describeRecord(name)} changed meanwhile`,
        });
        continue;
      }
    }
    result.migrated.push({ file: first.file, name });
    laid.push(target);
  }

  if (inPlace && !options.dryRun && result.conflicts.length === 0) {
    // The id-named originals, now that each stands under its name (never one that is also a target).
    for (const entries of claims.values()) {
      for (const { file } of entries) {
        if (laid.includes(path.resolve(file))) continue;
        await fs.rm(file, { force: true });
        await fsyncDir(path.dirname(file));
      }
    }
  }
  return result;
}
