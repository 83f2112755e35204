#!/usr/bin/env python3
"""Run a command under the socket sandbox of a systemd unit's `RestrictAddressFamilies=`.

    python tests/sandbox.py AF_UNIX,AF_INET,AF_INET6 -- COMMAND [ARGS...]

systemd implements that setting with a seccomp filter on socket(2): a family not listed
fails with EAFNOSUPPORT. This installs the same filter (a few BPF instructions, through
prctl; standard library only), then execs COMMAND, so a test proves the shipped unit's list
lets each feature make the sockets it needs. Linux on x86-64 or aarch64.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
import sys

# <linux/audit.h>, the socket(2) syscall numbers
_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_RET_K = 0x06


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def socket_filter(families: list[int]) -> bytes:
    """BPF: socket(family, …) fails with EAFNOSUPPORT unless `family` is listed."""
    arch, socket_nr = _ARCH[platform.machine()]
    n = len(families)
    program = [
        _insn(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_JEQ_K, 0, n + 4, arch),  # another ABI: allow
        _insn(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(_JEQ_K, 0, n + 2, socket_nr),  # not socket(2): allow
        _insn(_LD_W_ABS, 0, 0, 16),  # args[0], the family (low half)
    ]
    for i, family in enumerate(families):
        program.append(_insn(_JEQ_K, n - i, 0, family))  # listed: jump to allow
    program.append(_insn(_RET_K, 0, 0, _RET_ERRNO | errno.EAFNOSUPPORT))
    program.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(program)


def restrict(families: list[int]) -> None:
    code = socket_filter(families)
    buffer = ctypes.create_string_buffer(code, len(code))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    program = Program(len(code) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def supported() -> bool:
    return sys.platform == "linux" and platform.machine() in _ARCH


def main(argv: list[str]) -> None:
    names, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    restrict([socket.AddressFamily[name].value for name in names.split(",") if name])
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
