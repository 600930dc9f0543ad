"""Raw tw_event records -> schema DataFrames, a batch at a time (no per-event Python objects).

Addresses, comms and names repeat heavily within a batch, so each distinct value is formatted
once (factorize) and spread back with an index array.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..codes import factorize_rows, strings_from_codes
from ..events import conform
from .header import constants, event_dtype, kind_names

LIVE_DTYPES = {"uid": "Int64", "sk": "UInt64", "trigger_flags": "string", "tcp_flags": "string",
               "ifindex": "UInt32"}
# Retransmits and state changes (tcpwatch retrans / watch); null on other kinds.
TRANSMIT_DTYPES = {"seq": "UInt32", "retransmit": "string", "old_state": "string", "err": "Int32",
                   "owner_from": "string"}
LIVE_DTYPES.update(TRANSMIT_DTYPES)

# TCP flag bits -> tcpdump's letters; ACK prints as "." after the others.
_FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"), (0x40, "E"), (0x80, "W"))


def flags_text(bits: int) -> str | None:
    """tcpdump's notation for a TCP flags byte: 0x12 -> 'S.', 0x14 -> 'R.'; None for 0."""
    if not bits:
        return None
    text = "".join(letter for bit, letter in _FLAG_LETTERS if bits & bit)
    return text + "." if bits & 0x10 else text


@dataclass
class Names:
    """Number -> printed name, read from this kernel's format files (and BTF for enum names)."""

    states: dict[int, str]
    reasons: dict[int, str]


def _format_address(key: bytes) -> str:
    if key[0] == 4:
        return str(ipaddress.IPv4Address(key[1:5]))
    return str(ipaddress.IPv6Address(key[1:17]))


def _words(raw, n: int):
    """Fixed-width byte fields (rows of raw) as 64-bit words, one column each."""
    import numpy as np

    return np.ascontiguousarray(raw).view("<u8").reshape(n, -1)


def wire_addresses(family, raw):
    """(family, words) per row for 16-byte addresses: each as two 64-bit words, as the wire
    carried it (a v4-mapped IPv6 address as IPv4: family 4, its four bytes in the low word, the
    rest zero), so one address always gives the same words."""
    import numpy as np

    words = _words(raw, len(raw)).copy()
    low, high = words[:, 0], words[:, 1]
    mapped = (family == 6) & (low == 0) & ((high & np.uint64(0xFFFFFFFF)) == np.uint64(0xFFFF0000))
    fam = np.where(mapped, 4, family).astype(np.uint8)
    low[mapped] = high[mapped] >> np.uint64(32)
    v4 = fam == 4
    low[v4] &= np.uint64(0xFFFFFFFF)
    high[v4] = 0
    return fam, words


def _addresses(family, raw):
    """(family, text) per row; a v4-mapped IPv6 address shows as IPv4, as the wire carried it.
    Each distinct address is formatted once: rows are grouped by their address as two 64-bit
    words and a family (integer hashing; hashing the bytes went through a Python object each)."""
    fam, words = wire_addresses(family, raw)
    codes, first = factorize_rows([words[:, 0], words[:, 1], fam])
    texts = [_format_address(bytes([fam[i]]) + words[i].tobytes()) for i in first]
    return fam, strings_from_codes(texts, codes)


def _small_codes(values, name_of) -> tuple[list, object]:
    """(names, codes) for small non-negative integer codes: a table indexed by the value itself."""
    import numpy as np
    import pandas as pd

    top = int(values.max()) if len(values) else 0
    if top < 4096:
        return [name_of(i) for i in range(top + 1)], values
    codes, uniques = pd.factorize(values)
    return [name_of(int(u)) for u in uniques], np.asarray(codes)


def _lookup(values, table: dict[int, str], valid):
    """Names for small integer codes, null where not valid or unknown."""
    names, codes = _small_codes(values, table.get)
    return strings_from_codes(names, codes, valid)


def _flags(values):
    names, codes = _small_codes(values, flags_text)
    return strings_from_codes(names, codes)


def _comms(raw, valid):
    words = _words(raw, len(raw))
    codes, first = factorize_rows(list(words.T))
    names = [raw[i].decode("utf-8", "replace") for i in first]
    return strings_from_codes(names, codes, valid)


def _nullable(values, valid, dtype: str):
    import pandas as pd

    return pd.arrays.IntegerArray(values.astype(dtype.lower()), ~valid) if len(values) else pd.array([], dtype=dtype)


def retransmit_kind(bits: int) -> str | None:
    """What a retransmitted segment was, from its TCP flags: syn, synack, fin or data."""
    if not bits:
        return None
    if bits & 0x02:
        return "synack" if bits & 0x10 else "syn"
    return "fin" if bits & 0x01 else "data"


def _transmit_columns(rec, names: Names) -> dict:
    """seq, retransmit kind, old state, err and where the owner came from."""
    import numpy as np
    import pandas as pd

    c = constants()
    retrans = rec["kind"] == c["TW_KIND_RETRANSMIT"]
    change = rec["kind"] == c["TW_KIND_STATE_CHANGE"]
    kind_names, kind_codes = _small_codes(rec["tcpflags"], retransmit_kind)
    flags = rec["flags"]
    recorded = (flags & c["TW_F_OWNER_RECORDED"]) != 0
    task = ((flags & c["TW_F_OWNER_TASK"]) != 0) & ~recorded
    owner_from = strings_from_codes(["recorded", "task"], np.where(recorded, 0, 1), recorded | task)
    return {
        "seq": _nullable(rec["seq"], retrans, "UInt32"),
        "retransmit": strings_from_codes(kind_names, kind_codes, retrans),
        "old_state": _lookup(rec["oldstate"], names.states, change),
        "err": _nullable(rec["err"].view("<i4"), retrans | change, "Int32"),
        "owner_from": owner_from,
    }


def decode(raw, names: Names, mono_to_epoch: float, extra: dict | None = None):
    """Records (tw_event structs as bytes, or a numpy array of them) -> a schema DataFrame;
    extra: columns a stage before this one computed, one entry per record (e.g. origin)."""
    import numpy as np
    import pandas as pd

    rec = np.frombuffer(raw, dtype=event_dtype()) if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    c = constants()
    flags = rec["flags"]
    owner = (flags & c["TW_F_OWNER_TASK"]) != 0
    fam, saddr = _addresses(rec["family"], rec["saddr"])
    _fam, daddr = _addresses(rec["family"], rec["daddr"])
    kinds = kind_names()
    frame = pd.DataFrame({
        "ts": rec["ts_ns"] / 1e9 + mono_to_epoch,
        "source": strings_from_codes(["bpf"], np.zeros(len(rec), dtype=np.int32)),
        "kind": _lookup(rec["kind"], kinds, np.ones(len(rec), dtype=bool)),
        "family": fam,
        "saddr": saddr,
        "sport": rec["sport"],
        "daddr": daddr,
        "dport": rec["dport"],
        "state": _lookup(rec["state"], names.states, (flags & c["TW_F_HAS_STATE"]) != 0),
        "reason": _lookup(rec["reason"], names.reasons, (flags & c["TW_F_HAS_REASON"]) != 0),
        "netns": _nullable(rec["netns"], rec["netns"] != 0, "UInt64"),
        "cookie": _nullable(rec["cookie"], rec["cookie"] != 0, "UInt64"),
        "pid": _nullable(rec["pid"], owner, "Int64"),
        "comm": _comms(rec["comm"], owner),
        "uid": _nullable(rec["uid"], owner, "Int64"),
        "sk": _nullable(rec["skaddr"], rec["skaddr"] != 0, "UInt64"),
        "trigger_flags": _flags(rec["trigger_flags"]),
        "tcp_flags": _flags(rec["tcpflags"]),
        "ifindex": _nullable(rec["ifindex"], rec["ifindex"] != 0, "UInt32"),
        **_transmit_columns(rec, names),
        **(extra or {}),
    })
    # Records from different CPUs interleave in the buffer; a batch reads in time order.
    if len(frame) > 1 and not frame["ts"].is_monotonic_increasing:
        frame = frame.sort_values("ts", kind="stable", ignore_index=True)
    return conform(frame, LIVE_DTYPES)
