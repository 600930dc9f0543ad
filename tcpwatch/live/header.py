"""The Python side of bpf/tcpwatch.h: its struct becomes a numpy dtype, its #defines constants.

The header is the single definition of the event; this module only reads it, so the decoder
cannot drift from the BPF program.
"""

from __future__ import annotations

import functools
import os
import re

HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "bpf", "tcpwatch.h")

# C type -> numpy type code (little-endian, as on every host tcpwatch runs on).
CTYPES = {"__u8": "u1", "__s8": "i1", "char": "S1", "__u16": "<u2", "__s16": "<i2",
          "__u32": "<u4", "__s32": "<i4", "__u64": "<u8", "__s64": "<i8"}

_DEFINE = re.compile(r"^#define\s+(TW_\w+)\s+(\d+)\b", re.M)
_STRUCT = re.compile(r"struct\s+(\w+)\s*\{(.*?)\};", re.S)
_MEMBER = re.compile(r"^\s*(\w+)\s+(\w+)\s*(?:\[(\w+)\])?\s*;", re.M)


def _source(path: str | None = None) -> str:
    with open(path or HEADER) as f:
        return re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)


@functools.lru_cache(maxsize=None)
def constants(path: str | None = None) -> dict[str, int]:
    return {name: int(value) for name, value in _DEFINE.findall(_source(path))}


@functools.lru_cache(maxsize=None)
def event_dtype(struct_name: str = "tw_event", path: str | None = None):
    """numpy dtype laid out as the C compiler lays out the struct (natural alignment)."""
    import numpy as np

    text = _source(path)
    consts = constants(path)
    for name, body in _STRUCT.findall(text):
        if name != struct_name:
            continue
        fields = []
        for ctype, member, count in _MEMBER.findall(body):
            if ctype not in CTYPES:
                raise ValueError(f"{HEADER}: unsupported type {ctype} for {member}")
            code = CTYPES[ctype]
            if count:
                n = int(count) if count.isdigit() else consts[count]
                fields.append((member, f"S{n}" if ctype == "char" else code, () if ctype == "char" else (n,)))
            else:
                fields.append((member, code))
        return np.dtype(fields, align=True)
    raise ValueError(f"{HEADER} has no struct {struct_name}")


def kind_names(path: str | None = None) -> dict[int, str]:
    """TW_KIND_RESET_SENT = 1 -> {1: 'reset-sent'}: the schema's kind values."""
    return {value: name[len("TW_KIND_"):].lower().replace("_", "-")
            for name, value in constants(path).items() if name.startswith("TW_KIND_")}
