"""Formatting a batch once per kind of event, not once per event.

Under a flood, thousands of events in a batch differ only in a few numbers (time, ports, socket):
the terminal lines (render.py) and the JSON Lines (sinks.py) format everything else once per
distinct combination of the other columns, a template, and fill in the numbers per event.
"""

from __future__ import annotations

import random

# Rows are grouped by a 64-bit hash of their template columns, seeded at random per process:
# nobody can choose an input (a process name) whose hash collides with another template's,
# which would print that template's text.
_SEED = random.getrandbits(63)


def templates(df, keys: list[str]):
    """(codes, first): each row's template number (0, 1, ...), and for each template in number
    order the row that first shows it."""
    codes = df.select(keys).hash_rows(_SEED).rank("dense") - 1
    first = codes.is_first_distinct().arg_true()
    return codes, first.gather(codes.gather(first).arg_sort())


def joined_bytes(lines) -> bytes:
    """A polars String Series of lines, each ending in its newline (none null), as one UTF-8
    bytes object. Their Arrow copy's character buffer holds them back to back already: one copy
    out of it, where joining them in polars and then taking the joined string into Python made
    three of the whole text, each into fresh pages."""
    import numpy as np
    import polars as pl

    array = lines.to_arrow(compat_level=pl.CompatLevel.oldest())
    _validity, offsets, data = array.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)
    start, stop = int(ends[array.offset]), int(ends[array.offset + len(array)])
    return data.slice(start, stop - start).to_pybytes()
