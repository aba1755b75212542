#!/usr/bin/env bash
# Installs what derrick's tests and demo need on a fresh Debian 12 machine, only what is missing:
# Debian packages (skopeo, umoci, nginx, zstd, podman, containerd, openssl for the test CA; apache2-utils for htpasswd, in the benchmark and docs/getting-started.md's test; apache2-bin and libapache2-mod-xsendfile for the X-Sendfile e2e test; systemd for systemd-analyze, which checks contrib/derrick.service; for the benchmark: docker-registry, wrk) and the npm dependencies (npm ci, which also builds dist/).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in skopeo umoci nginx zstd podman containerd openssl docker-registry wrk apache2-utils zsh fish haproxy apache2-bin libapache2-mod-xsendfile systemd; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
for pkg in ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg"); done # the tests' S3 server (scripts/s3.sh)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f dist/cli/main.js ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
