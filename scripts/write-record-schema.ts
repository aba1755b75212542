// Writes docs/record.schema.json from the zod schemas in src/store/record-schema.ts.
import { writeFileSync } from 'node:fs';
import { recordJsonSchema } from '../src/store/record-schema.ts';

writeFileSync(
  new URL('../docs/record.schema.json', import.meta.url),
  JSON.stringify(recordJsonSchema(), null, 2) + '\n',
);
console.log('wrote docs/record.schema.json');
