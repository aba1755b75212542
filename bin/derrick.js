#!/usr/bin/env -S node --max-semi-space-size=4
// The installed entry point: runs the bundled CLI, dist/cli/main.js (`npm run build`, which npm ci / npm install run
// through `prepare`). Cluster workers re-run this file, so they start from the bundle too.
//
// --max-semi-space-size=4 (MB; V8's default grows to 16): a young generation of 3 × 4 MB rather than 3 × 16 MB keeps
// `derrick serve` under 100 MB resident at no measured cost in requests per second (docs/operations.md).
//
// Source maps make stack traces name src/ lines but cost ~0.1 s of start-up and ~14 MB: on with DERRICK_DEBUG (or
// `node --enable-source-maps bin/derrick.js`). Enabled before the bundle loads, hence the dynamic import.
if (process.env.DERRICK_DEBUG) process.setSourceMapsEnabled(true);
await import('../dist/cli/main.js');
