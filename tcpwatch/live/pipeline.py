"""What happens to live reset events between the capture (which labels each reset's origin:
tcpwatch/live/origin.py) and the sinks: the rule behind a netfilter reset -> conntrack entry ->
diagnosis (cause and explanation)."""

from __future__ import annotations

from typing import Iterable, Iterator

from ..render import HEADER_DIAGNOSED
from .session import Stage


class RuleCounters:
    """Names the REJECT rule behind a netfilter-made reset: the one whose packet counters moved
    since the last reading in that namespace (the first reading is taken at start for the
    namespaces named in the filters; elsewhere it counts from zero, so the busiest REJECT wins)."""

    def __init__(self, netns: Iterable[int]):
        from ..conntrack import firewall_rule_counters

        self._read = firewall_rule_counters
        self._last = {inode: self._safe_read(inode) for inode in netns}

    def _safe_read(self, inode):
        try:
            return self._read(inode)
        except Exception:  # the namespace went away, or no iptables: no rule named, nothing fails
            return []

    def name(self, frame):
        netfilter = (frame["origin"] == "netfilter").fillna(False).to_numpy()
        if not netfilter.any():
            return frame
        from ..conntrack import which_rule_fired

        rules = frame.get("rule", None)
        frame = frame.copy()
        if rules is None:
            import pandas as pd

            frame["rule"] = pd.array([None] * len(frame), dtype="string")
        for inode in frame.loc[netfilter, "netns"].dropna().unique():
            after = self._safe_read(int(inode))
            fired = which_rule_fired(self._last.get(int(inode), []), after)
            self._last[int(inode)] = after
            if fired:
                rows = netfilter & (frame["netns"] == inode).fillna(False).to_numpy()
                frame.loc[rows, "rule"] = fired[0].describe()
        return frame


class Aftermath:
    """Drops the close that follows a reset the kernel itself sent for the same socket (a
    keepalive timeout sends its RST, then closes with ETIMEDOUT): the reset already tells it."""

    def __init__(self, horizon: float = 2.0):
        self.horizon = horizon
        self._recent: dict[int, float] = {}     # socket address -> time of its last reset sent

    def fold(self, frame):
        sent = frame[(frame["kind"] == "reset-sent") & frame["sk"].notna()]
        self._recent.update(zip(sent["sk"].tolist(), sent["ts"].tolist()))
        closes = (frame["kind"] == "state-change") & frame["sk"].notna()
        if closes.any():
            ts = frame.loc[closes, "ts"].tolist()
            sks = frame.loc[closes, "sk"].tolist()
            after_reset = [0 <= t - self._recent.get(sk, -1e18) <= self.horizon for sk, t in zip(sks, ts)]
            frame = frame.drop(index=frame.index[closes][after_reset])
        if len(self._recent) > 1000:    # keep only resets a later close could still follow
            newest = max(self._recent.values())
            self._recent = {sk: t for sk, t in self._recent.items() if newest - t <= self.horizon}
        return frame


class Enrichment(Stage):
    """The `resets` stage: two lines per reset, the cause under what happened. Its capture
    must label origins (Capture(origins=True))."""

    header = HEADER_DIAGNOSED

    def __init__(self, conntrack: bool = True, watch_netns: Iterable[int] = ()):
        self.aftermath = Aftermath()
        self.conntrack = conntrack
        self.watch_netns = list(watch_netns)
        self.rules = None
        self.caches = None

    def before_start(self, cap=None) -> None:
        """Open the conntrack caches and read the firewall counters (run while bcc compiles)."""
        self.rules = RuleCounters(self.watch_netns)
        if self.conntrack:
            from ..conntrack import ConntrackCaches

            # Namespaces named in the filters are watched from the start, so entries a reset
            # destroys at once are already cached; others are watched from their first event.
            self.caches = ConntrackCaches(netns=self.watch_netns or [None])

    def feed(self, frame):
        if frame is None or frame.empty:
            return None
        from ..diagnosis import diagnose_frame

        if self.rules is None:      # used without a run loop: start now
            self.before_start()
        frame = self.aftermath.fold(frame)
        if frame.empty:
            return None
        frame = self.rules.name(frame)
        if self.caches is not None:
            from ..conntrack import enrich

            frame = enrich(frame, self.caches)
        return diagnose_frame(frame)

    def close(self) -> None:
        if self.caches is not None:
            self.caches.close()


def enriched(batches: Iterable, stage: Enrichment) -> Iterator:
    """Final frames from a capture's batches (iterated with idle_ticks=True), stage closed at the end."""
    try:
        for frame in batches:
            out = stage.feed(frame)
            if out is not None:
                yield out
        out = stage.flush()
        if out is not None:
            yield out
    finally:
        stage.close()
