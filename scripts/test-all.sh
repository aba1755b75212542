#!/usr/bin/env bash
# Every check derrick has: install what is missing, then types, lint, formatting, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
npm run -s typecheck
npm run -s lint
npm test
