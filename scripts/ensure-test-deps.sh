#!/usr/bin/env bash
# Makes sure the reference tools and real servers the tests use are present. As root, installs the missing
# Debian packages; otherwise prints exactly what to install and fails.
set -euo pipefail

need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v genisoimage >/dev/null 2>&1 || need+=(genisoimage)
# test/helpers/rename-exchange.py (the file:// race test) calls renameat2 through ctypes.
command -v python3 >/dev/null 2>&1 || need+=(python3)
{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || need+=(openssh-server)
{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || need+=(postgresql)
command -v parted >/dev/null 2>&1 || need+=(parted)
# A real browser for the API reference page (test/docs.test.ts drives it with playwright-core).
[ -x /usr/bin/chromium ] || need+=(chromium)
# A real terminal for the CLI's progress bar and Ctrl-C tests.
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# A one-node Ceph for the Ceph tests (installed here, once, so test files never race on apt).
for pkg in ceph-mon ceph-mgr ceph-osd; do command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
command -v rbd >/dev/null 2>&1 || need+=(ceph-common)
# qemu-img's rbd: driver (`qemu-img info rbd:pool/image` in the Ceph tests) is a plugin, not a command.
ls /usr/lib/*/qemu/block-rbd.so >/dev/null 2>&1 || need+=(qemu-block-extra)

if ((${#need[@]} == 0)); then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing test dependencies: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts services we do not want; tests start their own on loopback.
  (service postgresql stop || true) >/dev/null 2>&1
else
  echo "The tests need these Debian packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
