"""Running totals over event batches, shown at the end of every command and in --json output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def _endpoint_roles(frame):
    """(local port, peer address) per row: for a reset this host sent, the peer is the
    destination; for one it received, the peer is the sender."""
    received = frame["kind"] == "reset-received"
    port = frame["sport"].where(~received, frame["dport"])
    peer = frame["daddr"].where(~received, frame["saddr"])
    return port, peer


def _count(counter: Counter, series) -> None:
    counter.update(series.value_counts(dropna=False).to_dict())


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
        _count(self.by_kind, frame["kind"].fillna("-"))
        _count(self.by_reason, frame["reason"].fillna("-"))
        port, peer = _endpoint_roles(frame)
        _count(self.by_port, port.dropna().astype(int))
        _count(self.by_peer, peer.dropna().astype(str))
        for column, counter in (("cause", self.by_cause), ("origin", self.by_origin)):
            if column in frame.columns:
                _count(counter, frame[column].dropna())

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
