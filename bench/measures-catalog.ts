/**
 * The listing measures, whose cost should not grow with the data: a tags/list page from a repository of a few tags
 * and from one of many (against derrick in serve mode, started by bench/measures-http.ts), and `_catalog` pages on
 * every generated tree, each tree served by a derrick of its own. Rows on server CPU µs per request (`costRow`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startDerrick, type BenchServer } from './servers.ts';
import { costRow, count, get, runGroup, type Probe } from './summary.ts';
import type { Fixtures, Plan, Row } from './types.ts';

/** Tags of a published repository, from its record (docs/record-format.md). */
function tagCount(dataDir: string, name: string): number {
  const record = JSON.parse(readFileSync(path.join(dataDir, 'v2', 'app', `${name}.json`), 'utf8')) as {
    tags?: Record<string, string>;
  };
  return Object.keys(record.tags ?? {}).length;
}

/** Every repository name of a tree (its record files), sorted as _catalog sorts them (by bytes; names are ASCII). */
function repositoryNames(dataDir: string): string[] {
  const appDir = path.join(dataDir, 'v2', 'app');
  const names: string[] = [];
  for (const entry of readdirSync(appDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.json')) continue;
    const relative = path.relative(appDir, path.join(entry.parentPath, entry.name));
    names.push(relative.slice(0, -'.json'.length).split(path.sep).join('/'));
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** tags/list: a page of at most 100 from the 10-tag and from the 10,000-tag repository. */
export async function tagsListMeasures(fixtures: Fixtures, server: BenchServer, plan: Plan): Promise<Row[]> {
  const c = plan.connections;
  const small = tagCount(fixtures.dataDir, fixtures.tags10);
  const large = tagCount(fixtures.dataDir, fixtures.tags10k);
  const s = await runGroup(
    'tags/list',
    [
      {
        key: 'small',
        server,
        path: `/v2/${fixtures.tags10}/tags/list?n=100`,
        method: 'GET',
        expect: 200,
        connections: c,
      },
      {
        key: 'large',
        server,
        path: `/v2/${fixtures.tags10k}/tags/list?n=100`,
        method: 'GET',
        expect: 200,
        connections: c,
      },
    ],
    plan,
  );
  const base = get(s, 'small');
  return [
    costRow(`tags/list?n=100, ${count(small)} tags`, plan, base),
    costRow(`tags/list?n=100, ${count(large)} tags`, plan, get(s, 'large'), {
      label: `${count(small)}-tag repository`,
      summary: base,
      target: true,
    }),
  ];
}

/** _catalog?n=100, first page and a deep page (last= ~90% through), on every generated tree, alternating. */
export async function catalogMeasures(
  fixtures: Fixtures,
  plan: Plan,
  workers: number | undefined,
): Promise<Row[]> {
  const trees = [...fixtures.trees].sort((a, b) => a.repositories - b.repositories);
  const servers: BenchServer[] = [];
  try {
    const started = await Promise.allSettled(
      trees.map((tree) =>
        startDerrick({
          dataDir: tree.dataDir,
          mode: 'serve',
          name: `derrick (${count(tree.repositories)} repositories)`,
          ...(workers === undefined ? {} : { workers }),
        }),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') servers.push(result.value);
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    const probes: Probe[] = [];
    /** What each page holds, for the notes. */
    const pages = new Map<string, string>();
    const page = 100;
    trees.forEach((tree, i) => {
      const server = servers[i];
      if (!server) return;
      const names = repositoryNames(tree.dataDir);
      // ~90% through the list, but never so far that fewer than a full page follow (a 100-repository tree has no
      // deep full page: there the page after its first name stands in), so every tree's page holds as many names.
      const at = Math.max(0, Math.min(Math.floor(0.9 * (names.length - 1)), names.length - 1 - page));
      const deep = names[at] ?? '';
      pages.set(`first-${tree.repositories}`, `a page of ${Math.min(page, names.length)} names`);
      pages.set(
        `deep-${tree.repositories}`,
        `last=${deep} (name ${count(at + 1)} of ${count(names.length)}), a page of ${Math.min(page, names.length - at - 1)} names`,
      );
      const c = plan.connections;
      probes.push(
        {
          key: `first-${tree.repositories}`,
          server,
          path: `/v2/_catalog?n=${page}`,
          method: 'GET',
          expect: 200,
          connections: c,
        },
        {
          key: `deep-${tree.repositories}`,
          server,
          path: `/v2/_catalog?n=${page}&last=${encodeURIComponent(deep)}`,
          method: 'GET',
          expect: 200,
          connections: c,
        },
      );
    });
    const s = await runGroup('_catalog', probes, plan);
    const rows: Row[] = [];
    const smallest = trees[0];
    const largest = trees[trees.length - 1];
    for (const [kind, label] of [
      ['first', 'first page'],
      ['deep', 'deep page (last= ~90% in)'],
    ] as const) {
      for (const tree of trees) {
        const key = `${kind}-${tree.repositories}`;
        const summary = get(s, key);
        const measure = `_catalog?n=${page} ${label}, ${count(tree.repositories)} repositories`;
        const row =
          tree === smallest || !smallest
            ? costRow(measure, plan, summary)
            : costRow(measure, plan, summary, {
                label: `${count(smallest.repositories)}-repository tree`,
                summary: get(s, `${kind}-${smallest.repositories}`),
                target: tree === largest,
              });
        row.note = `${pages.get(key) ?? ''}; ${row.note ?? ''}`;
        rows.push(row);
      }
    }
    return rows;
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
}
