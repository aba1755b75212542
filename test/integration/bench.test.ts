/**
 * The benchmark harness must not rot: `bench/run.ts --tiny` builds small fixtures, starts every server, runs every
 * measure once and briefly (all but the 1 GiB blob, full size only), stops everything and writes its results.
 * No figure is judged (timing is not a test); only that each measure produced one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import type { Row } from '../../bench/types.ts';
import { collectOutput, REPO_ROOT, tempDir, TSX } from '../helpers/cli.ts';

const temp = tempDir('derrick-bench-test-');
after(() => temp.cleanup());

/** Every HTTP measure, and how many rows it has (the tags/list and _catalog ones: one per repository or tree). */
const HTTP_MEASURES: [RegExp, number][] = [
  [/^GET \/v2\/$/, 1],
  [/^manifest GET by tag \(redirect\)$/, 1],
  [/^manifest HEAD by tag \(redirect\)$/, 1],
  [/^manifest GET by digest \(redirect\)$/, 1],
  [/^manifest HEAD by digest \(redirect\)$/, 1],
  [/^manifest GET by tag \(serve\)$/, 1],
  [/^manifest HEAD by tag \(serve\)$/, 1],
  [/^manifest GET by digest \(serve\)$/, 1],
  [/^manifest HEAD by digest \(serve\)$/, 1],
  [/^blob GET 1 MiB \(redirect\)$/, 1],
  [/^blob GET 1 MiB \(serve\)$/, 1],
  [/^blob GET 1 MiB, curl \(serve, x-accel-redirect via nginx\)$/, 1],
  [/^blob GET 1 MiB, curl \(serve, derrick alone\)$/, 1],
  [/^manifest GET by tag \(serve\), metrics \+ access log on vs off$/, 1],
  [/^manifest HEAD by tag \(serve\), metrics \+ access log on vs off$/, 1],
  [/^tags\/list\?n=100, [\d,]+ tags$/, 2],
  [/^_catalog\?n=100 first page, [\d,]+ repositories$/, 3],
  [/^_catalog\?n=100 deep page .*, [\d,]+ repositories$/, 3],
];

test(
  'npm run bench -- --tiny runs every measure and writes results.json and results.md',
  { timeout: 600_000 },
  async () => {
    const out = path.join(temp.dir, 'out');
    const child = spawn(
      process.execPath,
      ['--import', TSX, path.join(REPO_ROOT, 'bench', 'run.ts'), '--tiny', '--out', out],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const result = await collectOutput(child);
    assert.equal(
      result.code,
      0,
      `bench --tiny exited ${result.signal ?? result.code}:\n${result.stderr}${result.stdout}`,
    );

    const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as {
      size: string;
      rows: Row[];
    };
    assert.equal(results.size, 'tiny');
    const measures = results.rows.map((row) => row.measure);
    for (const [pattern, expected] of HTTP_MEASURES) {
      const found = measures.filter((measure) => pattern.test(measure));
      assert.equal(found.length, expected, `rows matching ${String(pattern)}: ${JSON.stringify(found)}`);
    }
    assert.ok(!measures.some((measure) => /1 GiB/.test(measure)), 'no 1 GiB measure in tiny size');
    // The tree measures (bench/measures-tree.ts): start-up, visibility of a publish, publish throughput.
    // And the restart measures (bench/measures-restart.ts).
    for (const pattern of [/start-up/i, /visible/i, /^publish of/i, /^rolling restart under load/])
      assert.ok(
        measures.some((measure) => pattern.test(measure)),
        `a row matching ${String(pattern)}: ${measures.join('; ')}`,
      );
    for (const row of results.rows) {
      assert.ok(Number.isFinite(row.value), `${row.measure}: ${row.value}`);
      // Only a count of misses or failures may be zero.
      if (row.value === 0) assert.match(row.unit, /miss|failed/, `${row.measure}: 0 ${row.unit}`);
      else assert.ok(row.value > 0, `${row.measure}: ${row.value} ${row.unit}`);
      if (row.reference)
        assert.ok(Number.isFinite(row.reference.value) && row.reference.value > 0, row.measure);
    }
    const md = readFileSync(path.join(out, 'results.md'), 'utf8');
    assert.ok(existsSync(path.join(out, 'results.md')));
    assert.match(md, /\| measure \| derrick \| reference \| ratio \| target \| met \|/);
  },
);
