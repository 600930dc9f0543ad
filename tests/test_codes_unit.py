"""codes.factorize_rows: one id per distinct combination of values, nulls included."""

import numpy as np
import pandas as pd
import pytest

from tcpwatch.codes import factorize_rows


def _check(columns):
    key, first = factorize_rows(columns)
    rows = list(zip(*[pd.Series(c).astype(object).where(pd.notna(pd.Series(c)), None) for c in columns]))
    seen: dict = {}
    for i, row in enumerate(rows):
        seen.setdefault(row, (len(seen), i))
        assert key[i] == seen[row][0]       # ids in order of first appearance, equal iff rows are
    assert first.tolist() == [i for _, i in seen.values()]


@pytest.mark.parametrize("n", [1, 9, 2000])
def test_groups_are_the_distinct_rows(n):
    rng = np.random.default_rng(n)
    _check([pd.array(rng.choice(["a", "b", None], n), dtype="string"), rng.integers(0, 4, n),
            pd.array(rng.choice([1, 2, None], n), dtype="Int32")])


def test_wide_columns_are_renumbered_before_they_overflow():
    """Four columns of 65535 values (and a slot for null) multiply to 2**64: folded in without
    renumbering, the first column's part of the key would wrap to nothing, and two rows that
    differ only there would share a group."""
    n = 65535
    wide = [np.roll(np.arange(n), shift) for shift in (0, 1, 2, 3)]
    first = np.zeros(n, dtype=np.int64)
    first[1] = 1
    rows = [np.concatenate([c, c[:1]]) for c in [first, *wide]]     # the last row: row 0 but for none
    rows[0][-1] = 1                                                  # ... it differs in the first column
    _check(rows)


def test_no_columns_is_an_error():
    with pytest.raises(ValueError):
        factorize_rows([])
