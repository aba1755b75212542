/**
 * Reading a `/metrics` answer as Prometheus does: a checker of the text exposition format's grammar (version
 * 0.0.4 — `# HELP`/`# TYPE` lines, samples `name{label="value",…} value [timestamp]`, label values with `\\`,
 * `\"` and `\n` escaped) and of its rules (a family's TYPE before its samples and its samples together; no series
 * twice; a histogram's buckets cumulative, with `le="+Inf"` equal to its `_count`; counters never negative). Any
 * line that breaks one fails the test. Then the value of one series, looked up by name and labels.
 */
import assert from 'node:assert/strict';

export interface Series {
  /** The sample's own name (`x_bucket`, `x_count` for a histogram `x`). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | undefined;
  series: Series[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf)|NaN)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseNumber(text: string, line: string): number {
  assert.match(text, VALUE, `not a number in: ${line}`);
  return text === 'NaN' ? NaN : Number(text.replace(/Inf$/, 'Infinity'));
}

/** `{a="1",b="x"}` at the start of `rest`: the labels, and what follows. */
function parseLabels(rest: string, line: string): [Record<string, string>, string] {
  const labels: Record<string, string> = {};
  let at = 1;
  for (;;) {
    if (rest[at] === '}') return [labels, rest.slice(at + 1)];
    const name = LABEL.exec(rest.slice(at))?.[0];
    assert.ok(name !== undefined, `bad label name in: ${line}`);
    at += name.length;
    assert.equal(rest.slice(at, at + 2), '="', `expected =" after ${name} in: ${line}`);
    at += 2;
    let text = '';
    for (;;) {
      const char = rest[at++];
      assert.ok(char !== undefined, `unterminated label value in: ${line}`);
      if (char === '"') break;
      if (char === '\\') {
        const escaped = rest[at++];
        assert.ok(escaped === '\\' || escaped === '"' || escaped === 'n', `bad escape in: ${line}`);
        text += escaped === 'n' ? '\n' : escaped;
      } else text += char;
    }
    assert.ok(!(name in labels), `label ${name} twice in: ${line}`);
    labels[name] = text;
    if (rest[at] === ',') at++;
    else assert.equal(rest[at], '}', `expected , or } in: ${line}`);
  }
}

/** The family a sample name belongs to (`x_bucket` → histogram `x`). */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  const base = name.replace(/_(?:bucket|count|sum)$/, '');
  const family = families.get(base);
  if (family && (family.type === 'histogram' || family.type === 'summary')) {
    if (name.endsWith('_bucket')) assert.equal(family.type, 'histogram', `${name}: a summary has no buckets`);
    return family;
  }
  return undefined;
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const series of family.series) {
    const { le, ...rest } = series.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (series.name.endsWith('_bucket')) {
      assert.ok(le !== undefined, `${series.name} without le`);
      group.buckets.push([parseNumber(le, le), series.value]);
    } else if (series.name.endsWith('_count')) group.count = series.value;
  }
  for (const [key, group] of groups) {
    const sorted = group.buckets.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++)
      assert.ok(
        (sorted[i]?.[1] ?? 0) >= (sorted[i - 1]?.[1] ?? 0),
        `${family.name}${key}: buckets not cumulative`,
      );
    const last = sorted.at(-1);
    assert.ok(last && last[0] === Infinity, `${family.name}${key}: no le="+Inf" bucket`);
    assert.equal(last[1], group.count, `${family.name}${key}: +Inf bucket ≠ _count`);
  }
}

/** Every family of the text, checked. */
export function parseMetrics(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const done = new Set<string>();
  assert.ok(text === '' || text.endsWith('\n'), 'the text does not end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) ([^ ]+) ?(.*)$/.exec(line);
      if (!meta) continue; // a comment
      const [, what, name = '', rest = ''] = meta;
      assert.match(name, new RegExp(`${NAME.source}$`), `bad metric name in: ${line}`);
      assert.ok(!done.has(name), `${name}: its lines are not together`);
      let family = families.get(name);
      if (!family) {
        if (current) done.add(current.name);
        family = { name, type: 'untyped', help: undefined, series: [] };
        families.set(name, family);
        current = family;
      }
      assert.equal(family.series.length, 0, `${what} of ${name} after its samples`);
      if (what === 'TYPE') {
        assert.ok(TYPES.has(rest), `unknown type in: ${line}`);
        family.type = rest as Family['type'];
      } else {
        assert.equal(family.help, undefined, `HELP of ${name} twice`);
        family.help = rest;
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    assert.ok(name !== undefined, `not a sample: ${line}`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) [labels, rest] = parseLabels(rest, line);
    const fields = rest.split(' ');
    assert.ok(fields[0] === '' && (fields.length === 2 || fields.length === 3), `bad sample line: ${line}`);
    const value = parseNumber(fields[1] ?? '', line);
    if (fields[2] !== undefined) assert.match(fields[2], /^-?\d+$/, `bad timestamp in: ${line}`);
    let family = familyOf(name, families);
    if (!family) {
      if (current) done.add(current.name);
      family = { name, type: 'untyped', help: undefined, series: [] };
      families.set(name, family);
    }
    assert.ok(!done.has(family.name), `${family.name}: its samples are not together`);
    current = family;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `a series twice: ${line}`);
    seen.add(key);
    if (family.type === 'counter') assert.ok(value >= 0, `a negative counter: ${line}`);
    family.series.push({ name, labels, value });
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function matching(families: Map<string, Family>, name: string, labels: Record<string, string>): Series[] {
  const family = familyOf(name, families);
  assert.ok(family, `no metric ${name} in ${[...families.keys()].join(', ')}`);
  return family.series.filter(
    (series) =>
      series.name === name && Object.entries(labels).every(([key, value]) => series.labels[key] === value),
  );
}

/** The sum of the series of `name` with these labels (0 when there is none, as Prometheus reads a counter). */
export function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  return matching(families, name, labels).reduce((sum, series) => sum + series.value, 0);
}

/** A histogram's observation count for these labels (its `_count` series, summed). */
export function observations(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  return value(families, `${name}_count`, labels);
}

/** Every value of `label` among `name`'s series. */
export function labelValues(families: Map<string, Family>, name: string, label: string): string[] {
  return matching(families, name, {}).flatMap((series) => series.labels[label] ?? []);
}
