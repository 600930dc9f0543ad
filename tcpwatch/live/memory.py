"""Allocator settings for a live capture: keep freed memory for the next batch.

Under a flood every batch (about 30k events a quarter second) allocates tens of megabytes of
columns, lines and JSON, and frees them. Left to their defaults, the allocators hand most of
that back to the kernel at once, and the next batch faults it in again, zeroed: measured over a
5 s flood, about 140k minor faults in the consumer (0.6 GB of pages zeroed), a third of its
system time, and memory traffic that slows the traced host on the other CPUs. Kept, the same
pages serve batch after batch: 140k -> 30k faults. Memory still goes back once a flood is over.

- polars' jemalloc purges freed pages after half a second (polars' own setting); its documented
  override `_RJEM_MALLOC_CONF` is read once, when polars is first imported, so this runs before
  that. 10 s is jemalloc's own default.
- glibc malloc serves a large block (a batch's text as one Python string) from mmap, and trims
  its heap as soon as a large block at its top is freed; both thresholds are raised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

JEMALLOC_DECAY = "dirty_decay_ms:10000,muzzy_decay_ms:10000"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20   # glibc's ceiling for it on 64-bit
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> list[str]:
    """Apply both settings once; returns the ones that could not be (say, polars was imported
    first), for the capture's statistics."""
    missed = []
    if "polars" in sys.modules:
        missed.append("polars already imported: its allocator keeps its own settings")
    elif JEMALLOC_DECAY not in os.environ.get("_RJEM_MALLOC_CONF", ""):
        # appended: polars puts its own first, so the later (ours) wins
        prior = os.environ.get("_RJEM_MALLOC_CONF")
        os.environ["_RJEM_MALLOC_CONF"] = f"{prior},{JEMALLOC_DECAY}" if prior else JEMALLOC_DECAY
    if not _glibc_mallopt():
        missed.append("not glibc: malloc thresholds left as they are")
    return missed


def _glibc_mallopt() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
