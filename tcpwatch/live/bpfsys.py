"""The bpf() system call, for the few commands bcc 0.26 does not offer: reading a program's
info (recursion misses) and loading a program as a BTF tracepoint (tcpwatch/live/btfprog.py).
Attributes go in as bytes laid out as the kernel's union bpf_attr (include/uapi/linux/bpf.h)."""

from __future__ import annotations

import ctypes
import os

# the syscall's number per machine (asm/unistd.h); elsewhere these commands are not used
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)

BPF_PROG_LOAD = 5
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17


class BPFCallFailed(OSError):
    pass


def bpf(cmd: int, attr: ctypes.Array) -> int:
    """bpf(cmd, attr): the result (a file descriptor for loads and attaches); BPFCallFailed
    with the errno otherwise. attr is a ctypes buffer the kernel may write to."""
    if SYS_BPF is None:
        raise BPFCallFailed(0, f"no bpf() system call number known for {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(SYS_BPF, cmd, attr, ctypes.sizeof(attr))
    if result < 0:
        errno = ctypes.get_errno()
        raise BPFCallFailed(errno, os.strerror(errno))
    return result
