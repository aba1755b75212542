#!/bin/sh
//usr/bin/env true; [ "$1" = serve ] && exec node --max-semi-space-size=8 "$0" "$@"; exec node "$0" "$@"
// Run as a program, this file is first a shell script: the line above runs `true`, then node on this same file with
// any flags derrick needs (a JavaScript comment to node). Not `#!/usr/bin/env -S node …`: BusyBox's env (Alpine)
// has no -S.
//
// The installed entry point: runs the bundled CLI, dist/cli/main.js (`npm run build`, which npm ci / npm install run
// through `prepare`). Cluster workers re-run this file, so they start from the bundle too.
//
// Node flags derrick needs go on that line (the bench reads them from there and measures them against none), for
// `derrick serve` only: any V8 flag makes node reject the code cache of its own built-in modules, ~10-20 ms more
// start-up, which a one-shot command would pay for nothing. --max-semi-space-size=8: V8's young generation stays
// at 8 MB semi-spaces instead of growing to 16 under load, 12 MB less resident for a server; V8's own pause times
// and the bench A/B put its cost at 2-3% CPU a manifest GET (docs/operations.md, Start-up and memory). Cluster
// workers inherit the primary's flags. `node bin/derrick.js` does not read this line.
//
// Source maps make stack traces name src/ lines but cost ~20 ms of start-up and 2-3 MB: on with DERRICK_DEBUG (or
// `node --enable-source-maps bin/derrick.js`). Enabled before the bundle loads, hence the dynamic import.
if (process.env.DERRICK_DEBUG) process.setSourceMapsEnabled(true);
await import('../dist/cli/main.js');
