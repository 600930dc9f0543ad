"""The numbers a capture needs from the kernel's BTF, cached per kernel build.

Indexing vmlinux BTF takes about 0.2 s; the struct offsets and enum values it yields change only
with the kernel. They are kept in /var/cache/tcpwatch (or ~/.cache/tcpwatch when that is not
writable), keyed by the kernel release, the BTF file's size and time, and the table of offsets
asked for; anything unreadable is simply recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform

from .btf import VMLINUX, kernel_btf
from .program import KERNEL_OFFSETS, SK_ENDS_FIELDS, SK_ENDS_WINDOW, kernel_offsets

ENUM_PREFIXES = ("TCP_",)   # what format files name symbolically (TCP states)
CACHE_DIRS = ("/var/cache/tcpwatch", os.path.expanduser("~/.cache/tcpwatch"))
FACTS_VERSION = 2   # bump when _compute() yields something new: older cache files are not read


def _key() -> str:
    stat = os.stat(VMLINUX)
    basis = json.dumps([FACTS_VERSION, platform.release(), stat.st_size, stat.st_mtime_ns,
                        sorted(KERNEL_OFFSETS.items()),
                        sorted(SK_ENDS_FIELDS.items()), SK_ENDS_WINDOW,
                        ENUM_PREFIXES, _raw_tracepoints()])
    return hashlib.sha256(basis.encode()).hexdigest()[:20]


def _raw_tracepoints() -> list[str]:
    from .probes import PROBES

    return sorted({p.name for p in PROBES if p.raw is not None})


def _compute() -> dict:
    btf = kernel_btf()
    enums = {k: v for k, v in btf.enum_values().items() if k.startswith(ENUM_PREFIXES)}
    names = _raw_tracepoints()
    return {"offsets": kernel_offsets(btf), "enums": enums,
            "tracepoint_args": {name: btf.tracepoint_args(name) for name in names},
            "tracepoint_btf_ids": {name: btf.tracepoint_btf_id(name) for name in names}}


def kernel_facts() -> dict:
    """{"offsets": {OFF name: bytes or -1}, "enums": {TCP_...: value},
    "tracepoint_args": {tracepoint: argument types of its raw form, or None},
    "tracepoint_btf_ids": {tracepoint: id of its btf_trace_ typedef, or None}}."""
    try:
        key = _key()
    except OSError:
        return _compute()       # no BTF file: kernel_btf raises the one-line error
    for directory in CACHE_DIRS:
        try:
            with open(os.path.join(directory, f"kernel-{key}.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    facts = _compute()
    for directory in CACHE_DIRS:
        try:
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f".kernel-{key}.{os.getpid()}")
            with open(tmp, "w") as f:
                json.dump(facts, f)
            os.replace(tmp, os.path.join(directory, f"kernel-{key}.json"))
            break
        except OSError:
            continue
    return facts
