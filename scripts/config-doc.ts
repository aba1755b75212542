/**
 * The key table of docs/configuration.md, generated from the key table in src/config/keys.ts (one source for
 * --help and the doc). `npm run docs:config` rewrites it between the markers; test/unit/docs.test.ts fails when
 * the doc is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { defaultText, KEY_NAMES, keyInfo } from '../src/config/keys.ts';
import { syncJsonSchema } from '../src/config/sync-schema.ts';

export const CONFIG_DOC = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
const START =
  '<!-- the key table is generated from src/config/keys.ts by `npm run docs:config`: edit it there -->';
const END = '<!-- end of the generated key table -->';

const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** The Markdown table: key, default, meaning (and details). */
export function configTable(): string {
  const rows = KEY_NAMES.map((key) => {
    const info = keyInfo(key);
    const fallback = defaultText(key);
    const meaning = info.details === undefined ? info.meaning : `${info.meaning} ${info.details}`;
    return `| \`${key}\` | ${fallback === undefined ? '—' : `\`${fallback}\``} | ${cell(meaning)} |`;
  });
  return ['| key | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** The doc with its key table regenerated, formatted as prettier formats it (so `npm run lint` agrees). */
export async function renderConfigDoc(doc: string): Promise<string> {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  if (start === -1 || end < start) throw new Error(`${CONFIG_DOC}: the markers of the key table are missing`);
  const text = `${doc.slice(0, start + START.length)}\n\n${configTable()}\n\n${doc.slice(end)}`;
  const options = (await resolveConfig(CONFIG_DOC)) ?? {};
  return format(text, { ...options, filepath: CONFIG_DOC });
}

export const SYNC_SCHEMA = fileURLToPath(new URL('../docs/sync.schema.json', import.meta.url));

/** docs/sync.schema.json: the JSON Schema of `derrick sync`'s file, from its zod schema. */
export async function renderSyncSchema(): Promise<string> {
  const options = (await resolveConfig(SYNC_SCHEMA)) ?? {};
  return format(JSON.stringify(syncJsonSchema()), { ...options, filepath: SYNC_SCHEMA });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(SYNC_SCHEMA, await renderSyncSchema());
  writeFileSync(CONFIG_DOC, await renderConfigDoc(readFileSync(CONFIG_DOC, 'utf8')));
  console.log('wrote the key table of docs/configuration.md and docs/sync.schema.json');
}
