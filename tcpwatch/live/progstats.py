"""Events the kernel never ran our programs for: each BPF program's recursion misses.

A tracepoint program is skipped when another BPF program is already running on that CPU (the
kernel's recursion guard). Nothing reaches the ring buffer for such an event and no helper
fails, so the kernel-side lost counter cannot see it; the program's bpf_prog_info counts it.
Read with BPF_OBJ_GET_INFO_BY_FD; the field's offset comes from BTF like every other.
"""

from __future__ import annotations

import ctypes
import os

BPF_OBJ_GET_INFO_BY_FD = 15
SYS_BPF = 321  # x86_64


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


def recursion_misses(prog_fds: list[int], offset: int, info_size: int) -> int | None:
    """Sum of recursion_misses over programs; None when this kernel or machine cannot tell."""
    if offset < 0 or os.uname().machine != "x86_64":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    total = 0
    for fd in prog_fds:
        buf = ctypes.create_string_buffer(info_size)
        attr = _InfoAttr(fd, info_size, ctypes.addressof(buf))
        if libc.syscall(SYS_BPF, BPF_OBJ_GET_INFO_BY_FD, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
            return None
        if attr.info_len < offset + 8:
            return None
        total += int.from_bytes(buf.raw[offset:offset + 8], "little")
    return total
