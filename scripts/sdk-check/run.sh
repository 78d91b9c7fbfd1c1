#!/usr/bin/env bash
# run.sh - drive zimage with ZStack's stock Java SDK (a developer tool; not part of `npm test`).
#
#   scripts/sdk-check/run.sh ZSTACK [--zimage-dir DIR] [--ceph] [--keep]
#
# ZSTACK is a fetched zstackio/zstack: a checkout (with sdk/) or a git directory, bare mirror included
# (e.g. /work/.mirror/zstackio+zstack/repo). Its sdk/ sources are compiled unchanged with javac against
# Debian's jars (okhttp, okio, gson, commons-beanutils, commons-codec, servlet-api) into a cache OUTSIDE this
# repository ($SDKCHECK_CACHE, default /tmp/zimage-sdk-check-cache/<sdk tree id>); nothing from ZStack is
# written into the repository. Then, in a temporary directory, it makes images with qemu-img, starts an sshd
# on a loopback port (a password user `zimage-sdkcheck`), optionally a throwaway Ceph cluster (--ceph: only when
# no other ceph-mon runs; MON_PORT 3400, CEPH_DIR /tmp/sdkcheck-ceph), and `zimage serve` from --zimage-dir
# (default: this repository; built with `npm run -s build` when dist/ is missing or stale), runs the checks in
# SdkCheck.java, stops everything it started and prints `N passed, M failed` (exit 1 on failures).
# Needs root (sshd, useradd), java 17, node, qemu-img, openssl. --keep leaves the temporary directory.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ZSTACK=""
ZDIR=$(cd "$HERE/../.." && pwd)
WITH_CEPH=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --zimage-dir) ZDIR=$(cd "$2" && pwd); shift 2 ;;
    --ceph) WITH_CEPH=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) [ -z "$ZSTACK" ] || { echo "unexpected argument: $1" >&2; exit 2; }; ZSTACK=$1; shift ;;
  esac
done
[ -n "$ZSTACK" ] || { echo "usage: $0 ZSTACK-CHECKOUT-OR-GIT-DIR [--zimage-dir DIR] [--ceph] [--keep]" >&2; exit 2; }

say() { printf '[sdk-check] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 2; }

# --- tools and jars -------------------------------------------------------------------------------------
JARS=(okhttp okio gson commons-beanutils commons-codec servlet-api commons-logging)
PKGS=(openjdk-17-jdk-headless libokhttp-java libokio-java libgoogle-gson-java libcommons-beanutils-java libcommons-codec-java libservlet-api-java qemu-utils openssh-server openssl)
missing=0
for j in "${JARS[@]}"; do [ -f "/usr/share/java/$j.jar" ] || missing=1; done
for t in javac java qemu-img openssl /usr/sbin/sshd node; do command -v "$t" >/dev/null || missing=1; done
if [ "$missing" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${PKGS[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PKGS[@]}" >&2
  else
    die "missing tools; run: apt-get install ${PKGS[*]}"
  fi
fi
[ "$(id -u)" = 0 ] || die "needs root (sshd on a loopback port, a password user for SFTP)"
CP=$(printf '/usr/share/java/%s.jar:' "${JARS[@]}")

# --- the SDK, compiled unchanged, cached outside the repository -------------------------------------------
if [ -d "$ZSTACK/sdk/src/main/java" ]; then
  SDK_SRC="$ZSTACK/sdk"
  SDK_ID=dir-$(cd "$SDK_SRC" && find . -name '*.java' -printf '%P %s %T@\n' | sort | sha1sum | cut -c1-16)
else
  SDK_ID=$(git --git-dir="$ZSTACK" rev-parse HEAD:sdk 2>/dev/null) || die "$ZSTACK has neither sdk/src/main/java nor a git HEAD with sdk/"
  SDK_SRC=""
fi
CACHE=${SDKCHECK_CACHE:-/tmp/zimage-sdk-check-cache}/$SDK_ID
case "$CACHE" in "$ZDIR"/*) die "the SDK cache must be outside the repository: $CACHE" ;; esac
if [ ! -f "$CACHE/ok" ]; then
  rm -rf "$CACHE"
  mkdir -p "$CACHE/src" "$CACHE/classes"
  if [ -z "$SDK_SRC" ]; then
    git --git-dir="$ZSTACK" archive HEAD:sdk | tar -x -C "$CACHE/src"
  else
    cp -a "$SDK_SRC/." "$CACHE/src/"
  fi
  find "$CACHE/src/src/main/java" -name '*.java' > "$CACHE/sources.txt"
  say "compiling $(wc -l < "$CACHE/sources.txt") SDK sources (sdk tree $SDK_ID) into $CACHE (about a minute)"
  javac -nowarn -encoding UTF-8 -J-Xmx1500m -cp "$CP" -d "$CACHE/classes" @"$CACHE/sources.txt" 2>&1 | grep -v '^Note:' >&2 || true
  [ -f "$CACHE/classes/org/zstack/sdk/ZSClient.class" ] || die "the SDK did not compile"
  touch "$CACHE/ok"
fi

# --- work directory, images -------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/sdkcheck.XXXXXX)
chmod 755 "$WORK"
PIDS=()
SFTP_USER=zimage-sdkcheck
CEPH_STARTED=0
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$CEPH_STARTED" = 1 ]; then
    MON_PORT=3400 CEPH_DIR=/tmp/sdkcheck-ceph "$ZDIR/scripts/ceph-test-cluster.sh" stop >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
wait_port() {
  local port=$1 pid=$2 i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

mkdir -p "$WORK/images" "$WORK/local" "$WORK/local2" "$WORK/data" "$WORK/hclasses"
(
  cd "$WORK/images"
  qemu-img create -q -f raw disk.raw 16M
  head -c 3M /dev/urandom | dd of=disk.raw bs=1M seek=2 conv=notrunc status=none
  qemu-img convert -O qcow2 disk.raw disk.qcow2
  qemu-img create -q -f raw up.raw 8M
  head -c 1M /dev/urandom | dd of=up.raw bs=1M seek=1 conv=notrunc status=none
  qemu-img convert -O qcow2 up.raw up.qcow2
  qemu-img create -q -f raw big.raw 96M
)

# --- sshd with a password user ----------------------------------------------------------------------------
id "$SFTP_USER" >/dev/null 2>&1 || useradd -M -d / -s /bin/sh "$SFTP_USER"
SFTP_PASSWORD=$(openssl rand -hex 12)
echo "$SFTP_USER:$SFTP_PASSWORD" | chpasswd
mkdir -p "$WORK/sftp" /run/sshd
chown "$SFTP_USER" "$WORK/sftp"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
SSH_PORT=$(free_port)
cat > "$WORK/sshd_config" <<EOF
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
PermitRootLogin no
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 20
MaxStartups 50
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=($!)
wait_port "$SSH_PORT" "${PIDS[-1]}" || die "sshd did not start: $(cat "$WORK/sshd.log")"

# --- optional Ceph ----------------------------------------------------------------------------------------
CEPH_MON=""
if [ "$WITH_CEPH" = 1 ]; then
  if pgrep -a ceph-mon >&2; then
    say "another Ceph monitor runs (above): Ceph checks skipped"
  else
    MON_PORT=3400 CEPH_DIR=/tmp/sdkcheck-ceph "$ZDIR/scripts/ceph-test-cluster.sh" start >"$WORK/ceph.env"
    CEPH_STARTED=1
    CEPH_MON=127.0.0.1:3400
  fi
fi

# --- zimage -----------------------------------------------------------------------------------------------
if [ ! -f "$ZDIR/dist/src/cli.js" ] || [ -n "$(find "$ZDIR/src" -name '*.ts' -newer "$ZDIR/dist/src/cli.js" | head -1)" ]; then
  say "building zimage in $ZDIR (dist/ missing or older than src/)"
  (cd "$ZDIR" && npm run -s build)
fi
ZPORT=$(free_port)
ZIMAGE_IMPORT_FILE_ROOTS="$WORK/images" ZIMAGE_LOG_LEVEL=warn \
  node "$ZDIR/dist/src/cli.js" serve --port "$ZPORT" --data-dir "$WORK/data" >"$WORK/zimage.log" 2>&1 &
PIDS+=($!)
wait_port "$ZPORT" "${PIDS[-1]}" || die "zimage did not start: $(tail -20 "$WORK/zimage.log")"
say "zimage $(git -C "$ZDIR" rev-parse --short HEAD 2>/dev/null || echo '?') on 127.0.0.1:$ZPORT, sshd on $SSH_PORT${CEPH_MON:+, ceph mon $CEPH_MON}"

# --- the harness ------------------------------------------------------------------------------------------
javac -nowarn -cp "$CACHE/classes:$CP" -d "$WORK/hclasses" "$HERE"/*.java
set +e
SDKCHECK_PORT=$ZPORT SDKCHECK_IMAGES="$WORK/images" SDKCHECK_LOCAL_DIR="$WORK/local" SDKCHECK_LOCAL_DIR2="$WORK/local2" \
SDKCHECK_SFTP_PORT=$SSH_PORT SDKCHECK_SFTP_USER=$SFTP_USER SDKCHECK_SFTP_PASSWORD=$SFTP_PASSWORD SDKCHECK_SFTP_DIR="$WORK/sftp" \
SDKCHECK_CEPH_MON=$CEPH_MON SDKCHECK_CEPH_POOL=rbd \
  java -cp "$WORK/hclasses:$CACHE/classes:$CP" SdkCheck
RC=$?
set -e
[ "$KEEP" = 1 ] && say "zimage log: $WORK/zimage.log"
exit $RC
