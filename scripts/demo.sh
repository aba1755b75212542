#!/usr/bin/env bash
# Publishes the bundled demo image (demo/hello, a two-platform OCI index) into ./data and lists the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dist/cli/main.js ] || [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node bin/derrick.js publish oci:demo/hello:latest demo/hello --data-dir ./data
node bin/derrick.js ls --data-dir ./data
