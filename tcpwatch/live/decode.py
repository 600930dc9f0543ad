"""Raw tw_event records -> schema DataFrames, a batch at a time (no per-event Python objects)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..events import conform
from .header import constants, event_dtype, kind_names

LIVE_DTYPES = {"uid": "Int64", "sk": "string"}


@dataclass
class Names:
    """Number -> printed name, read from this kernel's format files (and BTF for enum names)."""

    states: dict[int, str]
    reasons: dict[int, str]


def _addresses(family, raw):
    """Format 16-byte address fields; v4-mapped IPv6 shows as IPv4 (what the wire carried)."""
    import numpy as np

    mapped = (family == 6) & (raw[:, :10] == 0).all(axis=1) & (raw[:, 10] == 0xFF) & (raw[:, 11] == 0xFF)
    fam = np.where(mapped, 4, family).astype(np.uint8)
    packed = raw.copy()
    packed[mapped, :4] = raw[mapped, 12:16]
    packed[fam == 4, 4:] = 0
    keys = np.concatenate([fam[:, None], packed], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    text = np.array([
        str(ipaddress.IPv4Address(bytes(k[1:5]))) if k[0] == 4 else str(ipaddress.IPv6Address(bytes(k[1:17])))
        for k in uniq
    ], dtype=object)
    return fam, text[inverse.reshape(-1)]


def decode(raw: bytes, names: Names, mono_to_epoch: float):
    import numpy as np
    import pandas as pd

    dtype = event_dtype()
    rec = np.frombuffer(raw, dtype=dtype)
    c = constants()
    n = len(rec)
    flags = rec["flags"]
    fam_s, saddr = _addresses(rec["family"], rec["saddr"])
    _fam_d, daddr = _addresses(rec["family"], rec["daddr"])
    kinds = kind_names()
    owner = (flags & c["TW_F_OWNER_TASK"]) != 0
    has_state = (flags & c["TW_F_HAS_STATE"]) != 0
    has_reason = (flags & c["TW_F_HAS_REASON"]) != 0

    def named(values, table, valid):
        out = pd.Series(values).map(table).astype("string")
        out[~valid] = pd.NA
        return out

    frame = pd.DataFrame({
        "ts": rec["ts_ns"] / 1e9 + mono_to_epoch,
        "source": pd.Series(["bpf"] * n, dtype="string"),
        "kind": pd.Series(rec["kind"]).map(kinds).astype("string"),
        "family": fam_s,
        "saddr": pd.Series(saddr, dtype="string"),
        "sport": rec["sport"],
        "daddr": pd.Series(daddr, dtype="string"),
        "dport": rec["dport"],
        "state": named(rec["state"], names.states, has_state),
        "reason": named(rec["reason"], names.reasons, has_reason),
        "netns": pd.array(np.where(rec["netns"] != 0, rec["netns"], 0), dtype="UInt64"),
        "cookie": pd.array(rec["cookie"], dtype="UInt64"),
        "pid": pd.array(rec["pid"].astype("int64"), dtype="Int64"),
        "comm": pd.Series([c_.split(b"\0", 1)[0].decode("utf-8", "replace") for c_ in rec["comm"]],
                          dtype="string"),
        "uid": pd.array(rec["uid"].astype("int64"), dtype="Int64"),
        "sk": pd.Series([f"{v:x}" if v else None for v in rec["skaddr"].tolist()], dtype="string"),
    })
    frame.loc[rec["netns"] == 0, "netns"] = pd.NA
    frame.loc[rec["cookie"] == 0, "cookie"] = pd.NA
    frame.loc[~owner, ["pid", "comm", "uid"]] = pd.NA
    # Records from different CPUs interleave in the buffer; a batch reads in time order.
    return conform(frame.sort_values("ts", kind="stable", ignore_index=True), LIVE_DTYPES)
