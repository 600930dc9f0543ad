"""Running totals over event batches, shown at the end of every command and in --json output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def _endpoint_roles(frame):
    """(local port, peer address) per row: for a reset this host sent, the peer is the
    destination; for one it received, the peer is the sender."""
    received = frame["kind"].isin(["reset-received"]).to_numpy()
    import numpy as np

    port = np.where(received, frame["dport"].to_numpy(dtype=object), frame["sport"].to_numpy(dtype=object))
    peer = np.where(received, frame["saddr"].to_numpy(dtype=object), frame["daddr"].to_numpy(dtype=object))
    return port, peer


@dataclass
class Summary:
    events: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_reason: Counter = field(default_factory=Counter)
    by_port: Counter = field(default_factory=Counter)
    by_peer: Counter = field(default_factory=Counter)
    extra: dict = field(default_factory=dict)

    def add(self, frame) -> None:
        if frame is None or frame.empty:
            return
        self.events += len(frame)
        self.by_kind.update(frame["kind"].fillna("-").tolist())
        self.by_reason.update(frame["reason"].fillna("-").tolist())
        port, peer = _endpoint_roles(frame)
        self.by_port.update(int(p) for p in port if p is not None and p == p)
        self.by_peer.update(str(p) for p in peer if p is not None and p == p)

    def as_dict(self, top: int = 10) -> dict:
        return {
            "events": self.events,
            "by_kind": dict(self.by_kind.most_common()),
            "by_reason": dict(self.by_reason.most_common()),
            "by_local_port": {str(k): v for k, v in self.by_port.most_common(top)},
            "by_peer": dict(self.by_peer.most_common(top)),
            **self.extra,
        }
