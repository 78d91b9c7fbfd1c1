#!/usr/bin/env python3
"""Swaps two paths atomically, over and over: renameat2(RENAME_EXCHANGE) in a loop.

Usage: rename-exchange.py PATH_A PATH_B
Prints "ready" once the first swap succeeded, then swaps until killed (SIGTERM) or stdin closes.
Exits non-zero, loudly, if the kernel or libc has no renameat2 (the race test must not pass silently).
"""
import ctypes
import errno
import os
import select
import sys

AT_FDCWD = -100
RENAME_EXCHANGE = 2
SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}


def exchanger():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return lambda a, b: fn(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    nr = SYS_RENAMEAT2.get(os.uname().machine)
    if nr is None:
        sys.exit(f"rename-exchange: libc has no renameat2 and the syscall number for {os.uname().machine} is unknown")
    syscall = libc.syscall
    return lambda a, b: syscall(nr, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: rename-exchange.py PATH_A PATH_B")
    a, b = (os.fsencode(p) for p in sys.argv[1:])
    swap = exchanger()
    if swap(a, b) != 0:
        e = ctypes.get_errno()
        sys.exit(f"rename-exchange: renameat2(RENAME_EXCHANGE) failed: {errno.errorcode.get(e, e)} {os.strerror(e)}")
    print("ready", flush=True)
    swaps = 1
    while True:
        for _ in range(200):
            if swap(a, b) != 0:
                e = ctypes.get_errno()
                sys.exit(f"rename-exchange: renameat2 failed after {swaps} swaps: {os.strerror(e)}")
            swaps += 1
        # Stop when the parent closes stdin (or dies).
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r and not sys.stdin.buffer.read1(1):
            break
    # Leave the two paths as they started (an even number of swaps).
    if swaps % 2 == 1:
        swap(a, b)
    print(f"swaps {swaps + swaps % 2}", flush=True)


if __name__ == "__main__":
    main()
