#!/bin/sh
//usr/bin/env true; exec node --max-semi-space-size=8 "$0" "$@"
// Run as a program, this file is first a shell script: the line above runs `true`, then node on this same file with
// the flags derrick needs (a JavaScript comment to node). Not `#!/usr/bin/env -S node …`: BusyBox's env (Alpine)
// has no -S.
//
// The installed entry point: runs the bundled CLI, dist/cli/main.js (`npm run build`, which npm ci / npm install run
// through `prepare`). Cluster workers re-run this file, so they start from the bundle too.
//
// --max-semi-space-size=8 (MB; V8's default grows to 16): a young generation of 3 × 8 MB rather than 3 × 16 MB keeps
// `derrick serve` under 100 MB resident; its cost in CPU per request is not settled (the bench measures it, and
// docs/operations.md says how to drop the flag). Cluster workers inherit it (process.execArgv). `node
// bin/derrick.js` does not read the exec line: pass the flag yourself there.
//
// Source maps make stack traces name src/ lines but cost ~20 ms of start-up and 2-3 MB: on with DERRICK_DEBUG (or
// `node --enable-source-maps bin/derrick.js`). Enabled before the bundle loads, hence the dynamic import.
if (process.env.DERRICK_DEBUG) process.setSourceMapsEnabled(true);
await import('../dist/cli/main.js');
