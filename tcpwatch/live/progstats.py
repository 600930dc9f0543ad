"""Events the kernel never ran our programs for: each BPF program's recursion misses.

A tracepoint program is skipped when another BPF program is already running on that CPU (the
kernel's recursion guard). Nothing reaches the ring buffer for such an event and no helper
fails, so the kernel-side lost counter cannot see it; the program's bpf_prog_info counts it.
Read with BPF_OBJ_GET_INFO_BY_FD; the field's offset comes from BTF like every other.
"""

from __future__ import annotations

import ctypes
import struct

from .bpfsys import BPF_OBJ_GET_INFO_BY_FD, BPFCallFailed, bpf


def recursion_misses(prog_fds: list[int], offset: int, info_size: int) -> int | None:
    """Sum of recursion_misses over programs; None when this kernel or machine cannot tell."""
    if offset < 0:
        return None
    total = 0
    for fd in prog_fds:
        buf = ctypes.create_string_buffer(info_size)
        # struct { u32 bpf_fd; u32 info_len; u64 info; } info: the kernel writes back info_len
        attr = ctypes.create_string_buffer(struct.pack("<IIQ", fd, info_size, ctypes.addressof(buf)), 16)
        try:
            bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
        except BPFCallFailed:
            return None
        if struct.unpack_from("<I", attr, 4)[0] < offset + 8:
            return None
        total += int.from_bytes(buf.raw[offset:offset + 8], "little")
    return total
