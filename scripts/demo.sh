#!/usr/bin/env bash
# Publishes the bundled demo image (demo/hello, a two-platform OCI index) into ./data and serves it on
# 127.0.0.1:5000 until interrupted. Then, in another shell:
#   skopeo inspect --tls-verify=false docker://127.0.0.1:5000/demo/hello
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dist/cli/main.js ] || [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node bin/derrick.js publish oci:demo/hello:latest demo/hello --data-dir ./data --quiet
echo "try: skopeo inspect --tls-verify=false docker://127.0.0.1:5000/demo/hello" >&2
exec node bin/derrick.js serve --data-dir ./data --listen 127.0.0.1:5000
