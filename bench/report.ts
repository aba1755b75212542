/**
 * What the benchmark prints and writes: the rows as a plain-text table (stdout) and as a Markdown table with
 * their notes (`<out>/results.md`).
 */
import { fmt } from './summary.ts';
import type { Row } from './types.ts';

function cells(row: Row): string[] {
  return [
    row.measure,
    `${fmt(row.value)} ${row.unit}`,
    row.reference ? `${row.reference.name}: ${fmt(row.reference.value)}` : '',
    row.ratio === undefined ? '' : `${fmt(row.ratio)}×`,
    row.target ?? '',
    row.met === undefined ? '' : row.met ? 'yes' : 'NO',
  ];
}

const HEADER = ['measure', 'derrick', 'reference', 'ratio', 'target', 'met'];

export function textTable(rows: Row[]): string {
  const table = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...table.map((line) => Array.from(line[i] ?? '').length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => value + ' '.repeat((widths[i] ?? 0) - Array.from(value).length))
      .join('  ')
      .trimEnd();
  return [line(HEADER), line(widths.map((w) => '-'.repeat(w))), ...table.slice(1).map(line)].join('\n');
}

export function markdown(rows: Row[], heading: string): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  const header = [...HEADER, 'note'];
  return [
    heading,
    '',
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${[...cells(row), row.note ?? ''].map(escape).join(' | ')} |`),
    '',
  ].join('\n');
}
