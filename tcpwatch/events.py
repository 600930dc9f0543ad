"""The one event schema every source yields (bpf, pcap, iptables-log).

`saddr:sport` is always the endpoint that sent the packet (the RST for resets),
`daddr:dport` the one it was sent to, whatever the kind and source.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Iterable


class Source(str, enum.Enum):
    BPF = "bpf"
    PCAP = "pcap"
    IPTABLES_LOG = "iptables-log"

    def __str__(self) -> str:
        return self.value


class Kind(str, enum.Enum):
    RESET_SENT = "reset-sent"
    RESET_RECEIVED = "reset-received"
    RETRANSMIT = "retransmit"
    STATE_CHANGE = "state-change"
    PACKET = "packet"

    def __str__(self) -> str:
        return self.value


class Direction(str, enum.Enum):
    SENT = "sent"
    RECEIVED = "received"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(slots=True)
class Event:
    ts: float
    source: Source
    kind: Kind
    family: int
    saddr: str
    sport: int
    daddr: str
    dport: int
    state: str | None = None
    reason: str | None = None
    netns: int | None = None
    cookie: int | None = None
    pid: int | None = None
    comm: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in COLUMNS}
        row["source"] = str(self.source)
        row["kind"] = str(self.kind)
        row.update(self.extra)
        return row


# Column name -> pandas dtype. Nullable dtypes so "unknown" stays null, never 0.
DTYPES: dict[str, str] = {
    "ts": "float64",
    "source": "string",
    "kind": "string",
    "family": "UInt8",
    "saddr": "string",
    "sport": "UInt16",
    "daddr": "string",
    "dport": "UInt16",
    "state": "string",
    "reason": "string",
    "netns": "UInt64",
    "cookie": "UInt64",
    "pid": "Int64",
    "comm": "string",
}
COLUMNS: tuple[str, ...] = tuple(DTYPES)


def to_dataframe(rows: Iterable[Event | dict[str, Any]], extra_dtypes: dict[str, str] | None = None):
    """Build a DataFrame with the schema's columns first, in order, with their dtypes."""
    import pandas as pd

    records = [r.as_dict() if isinstance(r, Event) else r for r in rows]
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return conform(frame, extra_dtypes)


def conform(frame, extra_dtypes: dict[str, str] | None = None):
    """Give any frame the schema's columns (missing ones null), order and dtypes."""
    import pandas as pd

    dtypes = dict(DTYPES)
    dtypes.update(extra_dtypes or {})
    for name, dtype in dtypes.items():
        if name not in frame.columns:
            frame[name] = pd.Series([None] * len(frame), dtype=dtype, index=frame.index)
        elif str(frame[name].dtype) != dtype:
            frame[name] = frame[name].astype(dtype)
    rest = [c for c in frame.columns if c not in dtypes]
    return frame[list(dtypes) + rest]
