"""Which layer produced each reset: pair the TCP stack's events with the RSTs seen on devices.

The kernel reports a reset twice when the TCP stack makes it: at tcp_send_reset and as a packet
leaving a device (wire-out); a received one, as a packet arriving (wire-in) and at
tcp_receive_reset. A wire-out RST with no stack event was made by someone else on this host:
netfilter (REJECT --reject-with tcp-reset). A wire-in RST with no stack event never reached a
socket (dropped as INVALID, or no socket at all): it is reported as received, with no state.

Pairs share namespace and 4-tuple and lie within `window` seconds; the kernel may report either
half first, and a half may reach userspace up to `latency` seconds after it happened (one batch),
so a row is final only once it is window + latency old.
"""

from __future__ import annotations

import time

from ..codes import factorize_rows, strings_from_codes
from ..events import conform
from .decode import LIVE_DTYPES

WIRE = {"wire-out": "reset-sent", "wire-in": "reset-received"}
ORIGIN_DTYPES = {**LIVE_DTYPES, "origin": "string", "delivered": "string"}
KEY = ["netns", "saddr", "sport", "daddr", "dport"]
ORIGINS = ["remote", "tcp-stack", "netfilter"]
_SENT, _RECEIVED, _WIRE_OUT, _WIRE_IN, _STATE, _OTHER = range(6)
_KIND_ID = {"reset-sent": _SENT, "reset-received": _RECEIVED, "wire-out": _WIRE_OUT, "wire-in": _WIRE_IN,
            "state-change": _STATE}


class OriginPairing:
    """Pairs each stack event with its device copy. window: how far apart in time two halves of
    a pair may be; latency: how long after its timestamp a record may still be missing from a
    read of the kernel's buffer (stamped in the program, committed microseconds later). A row
    is final once every partner it could have is in: at `now` = the time of the last read."""

    def __init__(self, window: float = 0.2, latency: float = 0.05):
        self.window = window
        self.latency = latency
        self._held = None

    def feed(self, frame, now: float | None = None):
        """Add a batch; return the rows old enough to be final, with `origin`, wire rows folded in."""
        import pandas as pd

        frames = [f for f in (self._held, frame) if f is not None and not f.empty]
        if not frames:
            return None
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        cutoff = (time.time() if now is None else now) - self.window - self.latency
        return self._release(rows, rows["ts"] < cutoff)

    def next_release(self) -> float | None:
        """When the oldest row held back becomes final (epoch seconds), or None."""
        if self._held is None or self._held.empty:
            return None
        return float(self._held["ts"].min()) + self.window + self.latency

    def flush(self):
        held, self._held = self._held, None
        if held is None or held.empty:
            return None
        return self._release(held.reset_index(drop=True), held["ts"].notna().to_numpy())

    def _release(self, rows, ripe):
        import numpy as np
        import pandas as pd

        n = len(rows)
        # Kinds as small integers (the batch's few distinct names, mapped once).
        kind_codes, kind_names = pd.factorize(rows["kind"])
        kind_names = list(kind_names)
        kid = np.array([_KIND_ID.get(k, _OTHER) for k in kind_names] + [_OTHER], dtype=np.int8)[kind_codes]
        wire = (kid == _WIRE_OUT) | (kid == _WIRE_IN)
        stack_kid = np.where(kid == _WIRE_OUT, _SENT, np.where(kid == _WIRE_IN, _RECEIVED, kid))
        # one integer per (tuple, direction)
        group, _ = factorize_rows([rows[c] for c in KEY] + [stack_kid])
        ts = rows["ts"].to_numpy()
        # ... split into episodes: runs of that tuple's rows less than a window apart. A flood
        # reuses ephemeral ports within a second; an older lone row of the same tuple (its
        # device copy dropped in the kernel) must not shift the counting below.
        by_time = np.lexsort((ts, group))
        g, t = group[by_time], ts[by_time]
        starts_episode = np.r_[True, (g[1:] != g[:-1]) | (np.diff(t) > self.window)] if n else np.zeros(0, bool)
        episode = np.empty(n, dtype=np.int64)
        episode[by_time] = np.cumsum(starts_episode) - 1
        group = episode * 2 + wire
        # nth occurrence of each row within its group, in time order (rows are in time order)
        order = np.lexsort((np.arange(n), group))
        sorted_group = group[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
        rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        nth = np.empty(n, dtype=np.int64)
        nth[order] = rank
        # the n-th wire RST of a tuple pairs with the n-th stack event of the same direction
        is_stack = (kid == _SENT) | (kid == _RECEIVED)
        pair_key = (group // 2) * (n + 1) + nth
        wire_rows, stack_rows = np.flatnonzero(wire), np.flatnonzero(is_stack)
        _, at_w, at_s = np.intersect1d(pair_key[wire_rows], pair_key[stack_rows], return_indices=True)
        paired_wire, paired_stack = wire_rows[at_w], stack_rows[at_s]
        close = np.abs(ts[paired_wire] - ts[paired_stack]) <= self.window
        paired_wire, paired_stack = paired_wire[close], paired_stack[close]

        out = rows.copy(deep=False)
        lone_wire = wire.copy()
        lone_wire[paired_wire] = False
        # a reset received came from the remote end; one sent, or a close the kernel decided (a
        # timeout), from the TCP stack; a lone wire-out RST from netfilter
        origin = np.full(n, -1, dtype=np.int8)
        origin[(kid == _RECEIVED) | (lone_wire & (kid == _WIRE_IN))] = 0
        origin[(kid == _SENT) | (kid == _STATE)] = 1
        origin[lone_wire & (kid == _WIRE_OUT)] = 2
        out["origin"] = strings_from_codes(ORIGINS, origin, origin >= 0)
        # a received reset: did a socket take it (stack event), or was it seen only on the device?
        received = (kid == _RECEIVED) | (kid == _WIRE_IN)
        out["delivered"] = strings_from_codes(["yes", "no"], lone_wire.astype(np.int8), received)
        # what the device saw, on the stack's row
        if len(paired_wire):
            take = np.arange(n)
            take[paired_stack] = paired_wire
            out["ifindex"] = rows["ifindex"].array.take(take)
            out["tcp_flags"] = rows["tcp_flags"].array.take(take)
        out["kind"] = strings_from_codes([WIRE.get(k, k) for k in kind_names], kind_codes, kind_codes >= 0)

        # A pair is released when both halves are ripe; a lone row when it is.
        ripe = np.asarray(ripe, dtype=bool).copy()
        both = ripe[paired_wire] & ripe[paired_stack]
        ripe[paired_wire] = both
        ripe[paired_stack] = both
        keep = ripe.copy()
        keep[paired_wire] = False           # folded into the stack's row
        held = ~ripe
        held[paired_wire[~both]] = True
        self._held = rows[held] if held.any() else None
        released = out[keep]
        return conform(released.reset_index(drop=True), ORIGIN_DTYPES) if len(released) else None
