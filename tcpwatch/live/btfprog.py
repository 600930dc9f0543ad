"""A raw probe loaded as a BTF tracepoint (tp_btf): bcc compiles it, this loads and attaches it.

A BTF tracepoint runs exactly where a raw tracepoint does, with the same arguments, but the
verifier knows their types (from the kernel's typedef btf_trace_<name>): the program may load a
socket's or skb's fields directly, where a raw tracepoint calls bpf_probe_read_kernel() for each
read (25-35 ns a call on this kind of VM; a direct load costs nothing measurable).

bcc 0.26 loads tracing programs only for fentry/fexit/LSM, chosen by a name prefix. So the
bytecode is bcc's own (its map references already resolved to the maps bcc created), loaded
here with the bpf() system call: program type TRACING, attach type BPF_TRACE_RAW_TP, the
tracepoint's BTF id; then attached with BPF_RAW_TRACEPOINT_OPEN. Closing both descriptors
detaches and unloads it.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

from .bpfsys import BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN, BPFCallFailed, bpf

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_RAW_TP = 23
OBJ_NAME_LEN = 16
LOG_SIZE = 1 << 20

# union bpf_attr for BPF_PROG_LOAD, the members used (offsets from include/uapi/linux/bpf.h)
_PROG_LOAD = struct.Struct("<IIQQIIQII16sIIII")   # prog_type .. prog_btf_fd, func_info_rec_size
_ATTACH_BTF_ID_AT = 108
_PROG_LOAD_SIZE = 128


class BtfRefused(Exception):
    """The kernel refused the program as a BTF tracepoint; the message says why in one line."""


@dataclass
class BtfProgram:
    function: str
    fd: int         # the program (for its info: recursion misses)
    link: int       # the attachment

    def close(self) -> None:
        for fd in (self.link, self.fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _prog_load(program: bytes, name: str, btf_id: int, log: ctypes.Array | None = None) -> int:
    """The descriptor of `program` (instructions) loaded as a BTF tracepoint program for the
    tracepoint whose btf_trace_ typedef has id btf_id; BPFCallFailed when the kernel says no."""
    insns = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"GPL")
    return bpf(BPF_PROG_LOAD, _load_attr(insns, license_, name, btf_id, log))


def _load_attr(insns: ctypes.Array, license_: ctypes.Array, name: str, btf_id: int,
               log: ctypes.Array | None) -> ctypes.Array:
    raw = bytearray(_PROG_LOAD_SIZE)
    _PROG_LOAD.pack_into(raw, 0, BPF_PROG_TYPE_TRACING, ctypes.sizeof(insns) // 8, ctypes.addressof(insns),
                         ctypes.addressof(license_), 1 if log is not None else 0,
                         ctypes.sizeof(log) if log is not None else 0,
                         ctypes.addressof(log) if log is not None else 0, 0, 0,
                         name.encode()[:OBJ_NAME_LEN - 1], 0, BPF_TRACE_RAW_TP, 0, 0)
    struct.pack_into("<I", raw, _ATTACH_BTF_ID_AT, btf_id)
    return ctypes.create_string_buffer(bytes(raw), _PROG_LOAD_SIZE)


def load(bcc_module, function: str, btf_id: int) -> BtfProgram:
    """Load bcc's compiled `function` as a BTF tracepoint program for the tracepoint whose
    btf_trace_ typedef has id btf_id, and attach it. BtfRefused when the kernel says no."""
    program = bcc_module.dump_func(function.encode())
    try:
        fd = _prog_load(program, function, btf_id)
    except BPFCallFailed as err:
        # again with the verifier's log, only now: logging slows every load down
        log = ctypes.create_string_buffer(LOG_SIZE)
        try:
            fd = _prog_load(program, function, btf_id, log)
        except BPFCallFailed:
            lines = [line for line in log.value.decode(errors="replace").splitlines() if line.strip()]
            why = lines[-2] if len(lines) > 1 and lines[-1].startswith("processed") else (lines or [str(err)])[-1]
            raise BtfRefused(f"{function}: {err.strerror}: {why}") from None
    attr = ctypes.create_string_buffer(struct.pack("<QII", 0, fd, 0), 16)  # name NULL: the program's BTF id
    try:
        link = bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    except BPFCallFailed as err:
        os.close(fd)
        raise BtfRefused(f"{function}: attach: {err.strerror}") from None
    return BtfProgram(function, fd, link)


# struct bpf_insn: opcode, dst and src registers (a nibble each), offset, immediate
_INSN = struct.Struct("<BBhi")
_LDX_DW, _LDX_B, _MOV64_K, _EXIT = 0x79, 0x71, 0xB7, 0x95


def reads_bytes_directly(btf_id: int, head_offset: int) -> bool:
    """Whether a BTF tracepoint whose first argument is an skb may load the bytes skb->head
    points to. A pointer to bytes reached through BTF was a plain number before 6.17, a load
    through it refused; since, the verifier types it as read-only untrusted memory, which a load
    may read (a fault reads as 0), so a packet's headers cost a few loads, not a helper call.
    Asked of the verifier itself with a five-instruction program, loaded and closed, never
    attached: r1 = ctx[0]; r1 = skb->head; r0 = *(u8 *)r1; r0 = 0; exit."""
    program = b"".join(_INSN.pack(*insn) for insn in (
        (_LDX_DW, 1 | 1 << 4, 0, 0), (_LDX_DW, 1 | 1 << 4, head_offset, 0),
        (_LDX_B, 0 | 1 << 4, 0, 0), (_MOV64_K, 0, 0, 0), (_EXIT, 0, 0, 0)))
    try:
        fd = _prog_load(program, "tw_probe_bytes", btf_id)
    except BPFCallFailed:
        return False
    os.close(fd)
    return True
