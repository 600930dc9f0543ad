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

from ..codes import factorize_rows
from ..events import conform
from .decode import LIVE_DTYPES

WIRE = {"wire-out": "reset-sent", "wire-in": "reset-received"}
ORIGIN_DTYPES = {**LIVE_DTYPES, "origin": "string", "delivered": "string"}
KEY = ["netns", "saddr", "sport", "daddr", "dport"]


class OriginPairing:
    def __init__(self, window: float = 0.2, latency: float = 0.3):
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

    def flush(self):
        held, self._held = self._held, None
        if held is None or held.empty:
            return None
        return self._release(held.reset_index(drop=True), held["ts"].notna().to_numpy())

    def _release(self, rows, ripe):
        import numpy as np
        import pandas as pd

        n = len(rows)
        wire = rows["kind"].isin(list(WIRE)).to_numpy()
        stack_kind = rows["kind"].replace(WIRE)
        # one integer per (tuple, direction)
        group, _ = factorize_rows([rows[c] for c in KEY] + [stack_kind])
        group = group * 2 + wire
        # nth occurrence of each row within its group, in time order (rows are in time order)
        order = np.lexsort((np.arange(n), group))
        sorted_group = group[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
        rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        nth = np.empty(n, dtype=np.int64)
        nth[order] = rank
        # the n-th wire RST of a tuple pairs with the n-th stack event of the same direction
        is_stack = ~wire & rows["kind"].isin(list(WIRE.values())).to_numpy()
        pair_key = (group // 2) * (n + 1) + nth
        wire_rows, stack_rows = np.flatnonzero(wire), np.flatnonzero(is_stack)
        _, at_w, at_s = np.intersect1d(pair_key[wire_rows], pair_key[stack_rows], return_indices=True)
        paired_wire, paired_stack = wire_rows[at_w], stack_rows[at_s]
        ts = rows["ts"].to_numpy()
        close = np.abs(ts[paired_wire] - ts[paired_stack]) <= self.window
        paired_wire, paired_stack = paired_wire[close], paired_stack[close]
        pairs = len(paired_wire)

        out = rows.copy()
        # a close the kernel decided (a timeout) was made by the TCP stack too
        origin = np.where(out["kind"] == "reset-received", "remote",
                          np.where(out["kind"].isin(["reset-sent", "state-change"]), "tcp-stack", None)).astype(object)
        out_wire = wire.copy()
        out_wire[paired_wire] = False
        origin[out_wire & (out["kind"] == "wire-out").to_numpy()] = "netfilter"
        origin[out_wire & (out["kind"] == "wire-in").to_numpy()] = "remote"
        out["origin"] = pd.array(origin, dtype="string")
        # a received reset: did a socket take it (stack event), or was it seen only on the device?
        received = (out["kind"] == "reset-received").to_numpy() | (out["kind"] == "wire-in").to_numpy()
        delivered = np.where(received, np.where(out_wire, "no", "yes"), None).astype(object)
        out["delivered"] = pd.array(delivered, dtype="string")
        # what the device saw, on the stack's row
        if pairs:
            out.loc[paired_stack, "ifindex"] = out["ifindex"].to_numpy()[paired_wire]
            out.loc[paired_stack, "tcp_flags"] = out["tcp_flags"].to_numpy()[paired_wire]
        out["kind"] = stack_kind.astype("string")

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
