#!/usr/bin/env bash
# Every check derrick has: install what is missing, then types, lint, formatting, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
npm run -s typecheck
npm run -s lint
# The S3 tests start their Ceph RGW once for every test file (scripts/s3.sh, under a lock); a cluster this run
# started is stopped when it ends, one that was running already is left as it was.
if ./scripts/s3.sh env >/dev/null 2>&1; then s3_was_running=yes; else s3_was_running=no; fi
trap '[ "$s3_was_running" = yes ] || ./scripts/s3.sh stop >/dev/null 2>&1 || true' EXIT
npm test
