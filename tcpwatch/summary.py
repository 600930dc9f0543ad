"""Running totals over event batches, shown at the end of every command and in --json output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def _counts(frame, columns: list[str]) -> dict:
    """Value counts of each column (a null counts as None), and of the local port and the peer
    (for a reset this host sent, the peer is the destination; for one it received, the
    sender), nulls left out. Counted by polars on the batch's copy the sinks already made."""
    import polars as pl

    from .frames import as_polars

    wanted = ["kind", "sport", "dport", "saddr", "daddr", *columns]
    pf = as_polars(frame, [c for c in dict.fromkeys(wanted) if c in frame.columns])
    received = pl.col("kind") == "reset-received"
    exprs = {c: pl.col(c) for c in columns if c in pf.columns}
    exprs["port"] = pl.when(received).then(pl.col("dport")).otherwise(pl.col("sport"))
    exprs["peer"] = pl.when(received).then(pl.col("saddr")).otherwise(pl.col("daddr"))
    out = {}
    for name, expr in exprs.items():
        counted = pf.select(expr.alias("value")).get_column("value").value_counts()
        pairs = zip(counted["value"].to_list(), counted["count"].to_list())
        out[name] = {k: v for k, v in pairs if k is not None} if name in ("port", "peer") else dict(pairs)
    return out


@dataclass
class Summary:
    events: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_reason: Counter = field(default_factory=Counter)
    by_port: Counter = field(default_factory=Counter)
    by_peer: Counter = field(default_factory=Counter)
    by_cause: Counter = field(default_factory=Counter)
    by_origin: Counter = field(default_factory=Counter)
    extra: dict = field(default_factory=dict)

    def add(self, frame) -> None:
        if frame is None or frame.empty:
            return
        self.events += len(frame)
        counts = _counts(frame, ["kind", "reason", "cause", "origin"])
        for name, counter in (("kind", self.by_kind), ("reason", self.by_reason)):
            counter.update({"-" if k is None else k: v for k, v in counts[name].items()})
        self.by_port.update({int(k): v for k, v in counts["port"].items()})
        self.by_peer.update({str(k): v for k, v in counts["peer"].items()})
        for name, counter in (("cause", self.by_cause), ("origin", self.by_origin)):
            counter.update({k: v for k, v in counts.get(name, {}).items() if k is not None})

    def as_dict(self, top: int = 10) -> dict:
        return {
            "events": self.events,
            "by_kind": dict(self.by_kind.most_common()),
            "by_reason": dict(self.by_reason.most_common()),
            "by_local_port": {str(k): v for k, v in self.by_port.most_common(top)},
            "by_peer": dict(self.by_peer.most_common(top)),
            **({"by_cause": dict(self.by_cause.most_common())} if self.by_cause else {}),
            **({"by_origin": dict(self.by_origin.most_common())} if self.by_origin else {}),
            **self.extra,
        }
