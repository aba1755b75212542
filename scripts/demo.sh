#!/usr/bin/env bash
# Publishes the bundled demo image (demo/hello, a two-platform OCI index) into ./data and lists the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
node bin/derrick.js publish oci:demo/hello:latest demo/hello --data-dir ./data
node bin/derrick.js ls --data-dir ./data
