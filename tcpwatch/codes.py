"""Group ids for rows of several columns, in linear time.

Each column is factorized to small integers; columns are then folded in (key * width + code),
renumbered only when the next fold could overflow, and the result factorized once. This is what a
batch's pairing and diagnosis need: one integer per row naming its combination of values.
"""

from __future__ import annotations


def factorize_rows(columns) -> tuple:
    """(group id per row, row index of each group's first row) for a list of columns. Group ids
    follow the order in which groups first appear."""
    import numpy as np
    import pandas as pd

    key = None
    width = 1
    for column in columns:
        code, uniques = pd.factorize(column, use_na_sentinel=True)
        code = code.astype(np.int64) + 1    # nulls become 0
        values = len(uniques) + 1
        if key is None:
            key, width = code, values
            continue
        if width * values >= 1 << 62:       # folded in once more would overflow: renumber first
            key, kept = pd.factorize(key)
            key, width = key.astype(np.int64), len(kept)
        key, width = key * values + code, width * values
    if key is None:
        raise ValueError("factorize_rows needs at least one column")
    key, kept = pd.factorize(key)
    # each group's first row, without sorting: written in reverse row order, the first one stays
    first = np.empty(len(kept), dtype=np.int64)
    first[key[::-1]] = np.arange(len(key) - 1, -1, -1)
    return key.astype(np.int64), first


def strings_from_codes(names: list, codes, valid=None):
    """A pandas string array of names[codes] (null where not valid or where the name is None),
    built by Arrow from the distinct names: no Python object per row."""
    import pandas as pd
    import pyarrow as pa

    index = pa.array(codes.astype("int32", copy=False), mask=None if valid is None else ~valid)
    return pd.arrays.ArrowStringArray(pa.array(names, type=pa.large_string()).take(index))
