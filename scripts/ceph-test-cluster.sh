#!/usr/bin/env bash
# ceph-test-cluster.sh - a throwaway one-node Ceph cluster for zimage's tests and benchmarks.
#
#   scripts/ceph-test-cluster.sh start    start a fresh cluster in $CEPH_DIR (an old one there is stopped first)
#   scripts/ceph-test-cluster.sh stop     stop it (by the PIDs it recorded) and remove $CEPH_DIR
#   scripts/ceph-test-cluster.sh status   exit 0 when the monitor of $CEPH_DIR answers
#
# One monitor, one manager and one OSD on memstore (all data in RAM), bound to 127.0.0.1 only, no systemd.
# Pool `rbd` (8 PGs, one replica) is created and initialised for RBD. Nothing is written outside $CEPH_DIR.
#
# Knobs (environment):
#   CEPH_DIR            working directory                              default ${TMPDIR:-/tmp}/zimage-ceph-$UID
#   CEPH_AUTH           none | cephx                                   default none
#   MON_PORT            msgr2 port of the monitor (msgr1 = MON_PORT+1; 3300 -> 6789)   default 3300
#   MEMSTORE_BYTES      capacity of the memstore OSD                   default 4 GiB
#   CEPH_START_TIMEOUT  seconds allowed for each readiness step        default 60
#   CEPH_STOP_GRACE     seconds between SIGTERM and SIGKILL on stop    default 10
#   CEPH_KEEP_DIR=1     stop keeps $CEPH_DIR (logs) instead of removing it
#
# `start` prints shell assignments (also written to $CEPH_DIR/env):
#   CEPH_CONF, CEPH_DIR, CEPH_MON_HOST, CEPH_AUTH and, with cephx, CEPH_ADMIN_KEYRING and CEPH_ADMIN_KEY.
# The Debian packages (ceph-mon ceph-mgr ceph-osd ceph-common) are installed when missing and running as
# root with apt-get; otherwise the script says what to install and fails.
set -euo pipefail

CEPH_DIR=${CEPH_DIR:-${TMPDIR:-/tmp}/zimage-ceph-$(id -u)}
CEPH_AUTH=${CEPH_AUTH:-none}
MON_PORT=${MON_PORT:-3300}
if [ "$MON_PORT" = 3300 ]; then MON_V1_PORT=6789; else MON_V1_PORT=$((MON_PORT + 1)); fi
MEMSTORE_BYTES=${MEMSTORE_BYTES:-4294967296}
TIMEOUT=${CEPH_START_TIMEOUT:-60}
GRACE=${CEPH_STOP_GRACE:-10}
PACKAGES=(ceph-mon ceph-mgr ceph-osd ceph-common)
DAEMONS_STOP_ORDER=("osd.0 mgr.x" "mon.a")

T0=$(date +%s%N)
since() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }
say() { printf '[ceph-test-cluster %7ss] %s\n' "$(since)" "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

# --- packages -------------------------------------------------------------------------------------------
ensure_packages() {
  local missing=() b
  for b in ceph-mon ceph-mgr ceph-osd ceph monmaptool ceph-authtool rbd; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  ((${#missing[@]} == 0)) && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    say "packages installed"
  else
    echo "The Ceph tests need the Debian packages: ${PACKAGES[*]} (missing commands: ${missing[*]})." >&2
    echo "Install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
    exit 1
  fi
}

# --- process helpers (PIDs only, never names) -----------------------------------------------------------
# A daemon is gone when /proc/PID is gone, or it is a zombie with a single task left (a ceph daemon's
# main thread exits before its other threads, which shows state Z while they still run).
alive() {
  [ -d "/proc/$1" ] || return 1
  grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null || return 0
  [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -gt 1 ]
}
# Is PID one of our ceph daemons (right executable, started with our ceph.conf)? Checked before signalling,
# so a recycled PID is never hit.
ours() {
  local exe args
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  case "$exe" in */ceph-mon | */ceph-mgr | */ceph-osd) ;; *) return 1 ;; esac
  args=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$args" == *"$CEPH_DIR/ceph.conf"* ]]
}

stop_cluster() {
  local sig=${1:-TERM} group name f pid deadline stuck=0
  [ -d "$CEPH_DIR/run" ] || return 0
  # OSD and mgr first, the monitor last: the OSD tells the monitor it is going down (else it waits 5 s).
  for group in "${DAEMONS_STOP_ORDER[@]}"; do
    local pids=()
    for name in $group; do
      f=$CEPH_DIR/run/$name.pid
      [ -f "$f" ] || continue
      pid=$(cat "$f" 2>/dev/null || true)
      [[ "$pid" =~ ^[0-9]+$ ]] || continue
      if ours "$pid"; then
        kill "-$sig" "$pid" 2>/dev/null || true
        pids+=("$pid")
      fi
    done
    deadline=$(($(date +%s) + GRACE))
    for pid in "${pids[@]}"; do
      while alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
      if alive "$pid"; then
        say "pid $pid did not stop within ${GRACE}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.05; done
        alive "$pid" && stuck=1
      fi
    done
  done
  rm -f "$CEPH_DIR"/run/*.pid
  return $stuck
}

# --- start ----------------------------------------------------------------------------------------------
start_cluster() {
  ensure_packages
  case "$CEPH_AUTH" in none | cephx) ;; *) fail "CEPH_AUTH must be none or cephx (got '$CEPH_AUTH')" ;; esac
  [ -d "$CEPH_DIR/run" ] && { stop_cluster KILL || true; }
  rm -rf "$CEPH_DIR"
  mkdir -p "$CEPH_DIR"/{run,log,mon.a,mgr.x,osd.0}
  chmod 700 "$CEPH_DIR"
  for p in "$MON_PORT" "$MON_V1_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then fail "port 127.0.0.1:$p is already in use (set MON_PORT)"; fi
  done

  # Any failure from here on: show the logs and stop what was started.
  trap 'rc=$?; if [ $rc != 0 ]; then say "start failed (rc=$rc)"; for l in "$CEPH_DIR"/log/*.log; do [ -f "$l" ] && { echo "--- $l" >&2; tail -n 20 "$l" >&2; }; done; stop_cluster KILL || true; fi' EXIT

  local conf=$CEPH_DIR/ceph.conf fsid osd_uuid auth keyring_line=""
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  if [ "$CEPH_AUTH" = cephx ]; then
    auth=cephx
    keyring_line="keyring = $CEPH_DIR/keyring.\$name"
  else
    auth=none
  fi
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
$keyring_line
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
pid file = $CEPH_DIR/run/\$name.pid
log file = $CEPH_DIR/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $CEPH_DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
paxos propose interval = 0.05
mgr stats period = 1

[mon]
mon data = $CEPH_DIR/mon.a

[mgr]
mgr data = $CEPH_DIR/mgr.x
mgr disabled modules = diskprediction_local,nfs,restful,dashboard,prometheus,influx,telegraf,zabbix,insights,snap_schedule,mirroring,selftest,test_orchestrator,localpool,alerts,k8sevents,rook,cephadm

[osd]
osd data = $CEPH_DIR/osd.0
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd crush update on start = true
EOF
  export CEPH_CONF=$conf

  local monkey=()
  if [ "$CEPH_AUTH" = cephx ]; then
    # Every key goes into the monitor's initial keyring: no `ceph auth` round trips later.
    ceph-authtool --create-keyring "$CEPH_DIR/keyring.mon.a" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$CEPH_DIR/keyring.client.admin" --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool --create-keyring "$CEPH_DIR/keyring.mgr.x" --gen-key -n mgr.x \
      --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool --create-keyring "$CEPH_DIR/keyring.osd.0" --gen-key -n osd.0 \
      --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
    for n in client.admin mgr.x osd.0; do
      ceph-authtool "$CEPH_DIR/keyring.mon.a" --import-keyring "$CEPH_DIR/keyring.$n" >/dev/null
    done
    monkey=(--keyring "$CEPH_DIR/keyring.mon.a")
  fi

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" "$CEPH_DIR/monmap" >/dev/null
  ceph-mon -c "$conf" -i a --mkfs --monmap "$CEPH_DIR/monmap" "${monkey[@]}"
  ceph-mon -c "$conf" -i a
  say "mon started"
  ceph-mgr -c "$conf" -i x
  say "mgr started"
  ceph --connect-timeout "$TIMEOUT" osd new "$osd_uuid" 0 >/dev/null
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$CEPH_DIR/log/osd.0.mkfs.log"
  ceph-osd -c "$conf" -i 0 2>>"$CEPH_DIR/log/osd.0.mkfs.log"
  say "osd started"
  # One `ceph` process for all pool commands (each `ceph` run costs ~0.2 s of Python start-up).
  printf '%s\n' "osd pool create rbd 8 8" "osd pool application enable rbd rbd" \
    "osd pool create device_health_metrics 1 1" "osd pool application enable device_health_metrics mgr_devicehealth" |
    ceph >/dev/null 2>&1

  local end=$(($(date +%s) + TIMEOUT))
  until ceph osd dump -f json 2>/dev/null | grep -q '"up":1'; do
    [ "$(date +%s)" -lt "$end" ] || fail "osd.0 not up after ${TIMEOUT}s"
    sleep 0.1
  done
  say "osd up"
  rbd pool init rbd
  end=$(($(date +%s) + TIMEOUT))
  until ceph pg stat 2>/dev/null | grep -Eq '^([0-9]+) pgs: \1 active\+clean;'; do
    [ "$(date +%s)" -lt "$end" ] || fail "PGs not active+clean after ${TIMEOUT}s"
    sleep 0.1
  done
  say "all PGs active+clean"

  {
    echo "CEPH_DIR=$CEPH_DIR"
    echo "CEPH_CONF=$conf"
    echo "CEPH_MON_HOST=127.0.0.1:$MON_V1_PORT"
    echo "CEPH_MON_PORT=$MON_PORT"
    echo "CEPH_AUTH=$CEPH_AUTH"
    if [ "$CEPH_AUTH" = cephx ]; then
      echo "CEPH_ADMIN_KEYRING=$CEPH_DIR/keyring.client.admin"
      echo "CEPH_ADMIN_KEY=$(ceph-authtool -p -n client.admin "$CEPH_DIR/keyring.client.admin")"
    fi
  } >"$CEPH_DIR/env"
  cat "$CEPH_DIR/env"
  trap - EXIT
  say "cluster ready"
}

case "${1:-}" in
  start) start_cluster ;;
  stop)
    rc=0
    stop_cluster TERM || rc=$?
    if [ "$rc" = 0 ] && [ "${CEPH_KEEP_DIR:-0}" != 1 ]; then rm -rf "$CEPH_DIR"; fi
    say "stopped"
    exit $rc
    ;;
  status)
    [ -f "$CEPH_DIR/ceph.conf" ] || exit 1
    CEPH_CONF=$CEPH_DIR/ceph.conf ceph --connect-timeout 3 health >/dev/null 2>&1
    ;;
  *)
    echo "usage: $0 start|stop|status   (knobs: CEPH_DIR, CEPH_AUTH=none|cephx, MON_PORT, MEMSTORE_BYTES)" >&2
    exit 2
    ;;
esac
