"""Group ids for rows of several columns, in linear time.

Each column is factorized to small integers; columns are then folded in pairwise
(key * width + code) and the result re-factorized, so keys never overflow. This is what a
batch's pairing and diagnosis need: one integer per row naming its combination of values.
"""

from __future__ import annotations


def factorize_rows(columns) -> tuple:
    """(group id per row, row index of each group's first row) for a list of columns."""
    import numpy as np
    import pandas as pd

    key = None
    for column in columns:
        code = pd.factorize(column, use_na_sentinel=True)[0].astype(np.int64) + 1   # nulls become 0
        key = code if key is None else key * (int(code.max(initial=0)) + 1) + code
        key = pd.factorize(key)[0].astype(np.int64)
    if key is None:
        raise ValueError("factorize_rows needs at least one column")
    _, first = np.unique(key, return_index=True)
    return key, first


def strings_from_codes(names: list, codes, valid=None):
    """A pandas string array of names[codes] (null where not valid or where the name is None),
    built by Arrow from the distinct names: no Python object per row."""
    import pandas as pd
    import pyarrow as pa

    index = pa.array(codes.astype("int32", copy=False), mask=None if valid is None else ~valid)
    return pd.arrays.ArrowStringArray(pa.array(names, type=pa.large_string()).take(index))
