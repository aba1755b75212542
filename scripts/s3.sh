#!/usr/bin/env bash
# A real S3 server for derrick's tests and for trying derrick on object storage: a single-node Ceph cluster
# (1 monitor, 1 OSD, 1 RADOS Gateway) from Debian's packages, on 127.0.0.1 only, ready in about 20 s.
#
# Usage: scripts/s3.sh start [DIR]   start it (installing the Ceph packages when missing; needs root for that),
#                                    or find it already running; prints the environment to use it
#        scripts/s3.sh env [DIR]     prints that environment for a running cluster (exit 1 when it is down)
#        scripts/s3.sh stop [DIR]    stops it (radosgw, OSD, monitor; by PID), leaving DIR for the next start
# DIR defaults to $TMPDIR/derrick-test-s3 (no spaces). Use it: eval "$(scripts/s3.sh start)".
# Env: S3_PORT (42880) CEPH_MON_PORT (42300, +1 for msgr v1) CEPH_OSD_PORT_MIN (42800, uses 100 ports)
#      OSD_BACKEND=memstore|bluestore (memstore, the default: in RAM, lost when the OSD stops)
#      S3_ACCESS_KEY / S3_SECRET_KEY (fixed test keys by default)
# Idempotent and safe to run concurrently: one lock per DIR; a second `start` waits and finds the first's cluster.
# Pitfalls this handles (found starting Ceph 16 here): the monitor must allow msgr2 crc mode for a client without
# auth (`ms mon client mode = crc`), radosgw needs its pools made first on a 1-OSD cluster (else it waits for PGs
# that never peer), `paxos propose interval` must be short or every pool creation takes seconds, and RGW's
# garbage collector must run often or deleted test data fills the in-memory OSD.
set -euo pipefail
COMMAND=${1:-}
DIR=$(realpath -m "${2:-${TMPDIR:-/tmp}/derrick-test-s3}")
PORT=${S3_PORT:-42880}; MON=${CEPH_MON_PORT:-42300}; OSDMIN=${CEPH_OSD_PORT_MIN:-42800}
BACKEND=${OSD_BACKEND:-memstore}
AK=${S3_ACCESS_KEY:-TESTACCESSKEY0000000}; SK=${S3_SECRET_KEY:-testsecretkey000000000000000000000000000}
C=(-c "$DIR/ceph.conf"); CEPH=(ceph "${C[@]}" --connect-timeout 10)
log() { echo "[s3.sh $(date +%T)] $*" >&2; }
alive() { [ -s "$DIR/run/$1.pid" ] && kill -0 "$(cat "$DIR/run/$1.pid")" 2>/dev/null; }
wait_for() { # wait_for SECONDS what cmd...
  local t=$1 what=$2; shift 2
  for ((i = 0; i < t * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timeout waiting for $what; logs in $DIR/log"; tail -n 5 "$DIR"/log/*.out >&2; return 1
}
# The port a running cluster in DIR listens on (from its own ceph.conf, not from this shell's S3_PORT).
running_port() { sed -n 's/^rgw frontends = beast endpoint=127.0.0.1:\([0-9]*\).*$/\1/p' "$DIR/ceph.conf" 2>/dev/null; }
up() {
  local port; port=$(running_port)
  [ -n "$port" ] && alive mon.a && alive osd.0 && alive rgw.a && curl -sf -o /dev/null "http://127.0.0.1:$port/"
}
print_env() {
  local port; port=$(running_port)
  {
    printf 'export S3_ENDPOINT=http://127.0.0.1:%s\nexport S3_ACCESS_KEY=%s\nexport S3_SECRET_KEY=%s\nexport S3_REGION=us-east-1\n' \
      "$port" "$AK" "$SK"
    printf 'export AWS_ENDPOINT_URL=http://127.0.0.1:%s\nexport AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=us-east-1\n' \
      "$port" "$AK" "$SK"
  } | tee "$DIR/s3.env"
}
stop() {
  local running n f pid
  running() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
  for n in rgw.a osd.0 mon.a; do
    f="$DIR/run/$n.pid"; [ -s "$f" ] || continue
    pid=$(cat "$f")
    # only signal the PID if it is still the daemon we started (guards against PID reuse)
    if kill -0 "$pid" 2>/dev/null && grep -qa -- "$DIR/ceph.conf" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid"
      for ((i = 0; i < 75; i++)); do running "$pid" || break; sleep 0.2; done
      if running "$pid"; then log "$n ($pid) ignored TERM, sending KILL"; kill -KILL "$pid"; fi
      log "stopped $n (pid $pid)"
    fi
    rm -f "$f"
  done
}
install_packages() {
  command -v radosgw >/dev/null && command -v ceph-osd >/dev/null && command -v ceph-mon >/dev/null &&
    command -v ceph >/dev/null && command -v uuidgen >/dev/null && command -v curl >/dev/null && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "Ceph is not installed: run as root, or: sudo apt-get install ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl"
    exit 1
  fi
  log "installing ceph packages (about 60 MB)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl >/dev/null
}
daemon() { # daemon NAME cmd... : run in the foreground, detached from our stdout, remember its PID
  local n=$1; shift
  nohup "$@" -f </dev/null >"$DIR/log/$n.out" 2>&1 9>&- &
  echo $! >"$DIR/run/$n.pid"
}
start() {
  install_packages
  if up; then log "already running in $DIR"; print_env; return 0; fi
  if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR" | grep -v '^\.lock$' || true)" ] && [ ! -f "$DIR/ceph.conf" ]; then
    log "refusing to wipe non-empty $DIR that is not a cluster dir"; exit 1
  fi
  [ -f "$DIR/ceph.conf" ] && stop
  for p in "$PORT" "$MON" $((MON + 1)) "$OSDMIN"; do # fail fast instead of a 120 s timeout on a taken port
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then log "port $p on 127.0.0.1 is already in use (set S3_PORT, CEPH_MON_PORT, CEPH_OSD_PORT_MIN)"; exit 1; fi
  done
  find "$DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
  mkdir -p "$DIR"/{mon/a,osd/0,run,log,crash,rgw}
  local fsid monaddr osduuid osdid t0=$SECONDS
  fsid=$(uuidgen); monaddr="[v2:127.0.0.1:$MON,v1:127.0.0.1:$((MON + 1))]"
  cat >"$DIR/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = $monaddr
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind port min = $OSDMIN
ms bind port max = $((OSDMIN + 99))
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.05
[mon]
mon data = $DIR/mon/\$id
mon cluster log file = $DIR/log/cluster.log
[osd]
osd data = $DIR/osd/\$id
osd objectstore = $BACKEND
memstore device bytes = 4294967296
bluestore block size = 10737418240
osd memory target = 1073741824
[client.rgw.a]
# tcp_nodelay: without it, every answer with a small body on a kept-alive connection waits ~40 ms (beast writes
# headers and body apart; Nagle holds the body until the client's delayed ACK of the headers comes).
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw thread pool size = 64
# A listing reads at least this many index entries, whatever its MaxKeys: at the default of 1000, a _catalog page
# of ~115 keys from a 10,000-record prefix cost what 1,000 keys do (16 ms against 6 ms here). 1: what it asks for.
rgw list bucket min readahead = 1
# RGW frees a deleted object's (or an aborted upload's) space only when its garbage collector runs: by default
# two hours later, once an hour. With the OSD in RAM, a test suite would fill it (OSD_FULL, and every write hangs).
rgw gc obj min wait = 0
rgw gc processor period = 5
CONF
  monmaptool --create --fsid "$fsid" --addv a "$monaddr" "$DIR/monmap" >/dev/null
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap"
  daemon mon.a ceph-mon "${C[@]}" -i a
  wait_for 60 "mon" "${CEPH[@]}" mon stat
  osduuid=$(uuidgen); osdid=$("${CEPH[@]}" osd new "$osduuid")
  ceph-osd "${C[@]}" -i "$osdid" --mkfs --osd-uuid "$osduuid" >"$DIR/log/osd-mkfs.out" 2>&1
  daemon osd.0 ceph-osd "${C[@]}" -i "$osdid"
  wait_for 120 "osd up" bash -c "${CEPH[*]} osd stat -f json | grep -q '\"num_up_osds\":1'"
  for p in .rgw.root default.rgw.{log,control,meta,buckets.index,buckets.data,buckets.non-ec}; do
    "${CEPH[@]}" osd pool create "$p" 8 8 >/dev/null 2>&1
    "${CEPH[@]}" osd pool application enable "$p" rgw >/dev/null 2>&1
  done
  daemon rgw.a radosgw "${C[@]}" -n client.rgw.a
  wait_for 120 "radosgw" curl -sf -o /dev/null "http://127.0.0.1:$PORT/"
  radosgw-admin "${C[@]}" user info --uid=test >/dev/null 2>&1 ||
    radosgw-admin "${C[@]}" user create --uid=test --display-name="S3 test user" \
      --access-key="$AK" --secret-key="$SK" >"$DIR/log/user-create.json"
  log "ceph ($BACKEND) + radosgw ready in $((SECONDS - t0))s, data in $DIR"
  print_env
}
case "$COMMAND" in
  start | stop | env) ;;
  *) echo "usage: scripts/s3.sh start|stop|env [DIR]" >&2; exit 2 ;;
esac
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9 # one start/stop at a time per DIR, across processes
case "$COMMAND" in
  start) start ;;
  stop) stop ;;
  env) if up; then print_env; else log "no cluster running in $DIR: scripts/s3.sh start $DIR"; exit 1; fi ;;
esac
