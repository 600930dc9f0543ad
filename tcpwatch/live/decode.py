"""Raw tw_event records -> schema DataFrames, a batch at a time (no per-event Python objects).

Addresses, comms and names repeat heavily within a batch, so each distinct value is formatted
once (factorize) and spread back with an index array.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..events import conform
from .header import constants, event_dtype, kind_names

LIVE_DTYPES = {"uid": "Int64", "sk": "UInt64"}


@dataclass
class Names:
    """Number -> printed name, read from this kernel's format files (and BTF for enum names)."""

    states: dict[int, str]
    reasons: dict[int, str]


def _format_address(key: bytes) -> str:
    if key[0] == 4:
        return str(ipaddress.IPv4Address(key[1:5]))
    return str(ipaddress.IPv6Address(key[1:17]))


def _addresses(family, raw):
    """(family, text) per row; a v4-mapped IPv6 address shows as IPv4, as the wire carried it."""
    import numpy as np
    import pandas as pd

    mapped = (family == 6) & ~raw[:, :10].any(axis=1) & (raw[:, 10] == 0xFF) & (raw[:, 11] == 0xFF)
    fam = np.where(mapped, 4, family).astype(np.uint8)
    keys = np.empty((len(raw), 17), dtype=np.uint8)
    keys[:, 0] = fam
    keys[:, 1:] = raw
    if mapped.any():
        keys[mapped, 1:5] = raw[mapped, 12:16]
    keys[fam == 4, 5:] = 0
    codes, uniques = pd.factorize(keys.view("V17").ravel())
    text = np.array([_format_address(bytes(k)) for k in uniques], dtype=object)
    return fam, text[codes]


def _lookup(values, table: dict[int, str], valid):
    """Names for small integer codes, null where not valid or unknown."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values)
    names = np.array([table.get(int(u)) for u in uniques] + [None], dtype=object)
    out = names[codes]
    out[~valid] = None
    return pd.array(out, dtype="string")


def _comms(raw, valid):
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(raw)
    text = np.array([u.decode("utf-8", "replace") for u in uniques] + [None], dtype=object)
    out = text[codes]
    out[~valid] = None
    return pd.array(out, dtype="string")


def _nullable(values, valid, dtype: str):
    import pandas as pd

    return pd.arrays.IntegerArray(values.astype(dtype.lower()), ~valid) if len(values) else pd.array([], dtype=dtype)


def decode(raw: bytes, names: Names, mono_to_epoch: float):
    import numpy as np
    import pandas as pd

    rec = np.frombuffer(raw, dtype=event_dtype())
    c = constants()
    flags = rec["flags"]
    owner = (flags & c["TW_F_OWNER_TASK"]) != 0
    fam, saddr = _addresses(rec["family"], rec["saddr"])
    _fam, daddr = _addresses(rec["family"], rec["daddr"])
    kinds = kind_names()
    frame = pd.DataFrame({
        "ts": rec["ts_ns"] / 1e9 + mono_to_epoch,
        "source": pd.Categorical.from_codes(np.zeros(len(rec), dtype=np.int8), ["bpf"]).astype(str),
        "kind": _lookup(rec["kind"], kinds, np.ones(len(rec), dtype=bool)),
        "family": fam,
        "saddr": pd.array(saddr, dtype="string"),
        "sport": rec["sport"],
        "daddr": pd.array(daddr, dtype="string"),
        "dport": rec["dport"],
        "state": _lookup(rec["state"], names.states, (flags & c["TW_F_HAS_STATE"]) != 0),
        "reason": _lookup(rec["reason"], names.reasons, (flags & c["TW_F_HAS_REASON"]) != 0),
        "netns": _nullable(rec["netns"], rec["netns"] != 0, "UInt64"),
        "cookie": _nullable(rec["cookie"], rec["cookie"] != 0, "UInt64"),
        "pid": _nullable(rec["pid"], owner, "Int64"),
        "comm": _comms(rec["comm"], owner),
        "uid": _nullable(rec["uid"], owner, "Int64"),
        "sk": _nullable(rec["skaddr"], rec["skaddr"] != 0, "UInt64"),
    })
    # Records from different CPUs interleave in the buffer; a batch reads in time order.
    if len(frame) > 1 and not frame["ts"].is_monotonic_increasing:
        frame = frame.sort_values("ts", kind="stable", ignore_index=True)
    return conform(frame, LIVE_DTYPES)
