"""RSTs the kernel holds for their socket (bpf/tcpwatch.bpf.c: tw_held_in).

A received RST is seen on its device first; the kernel keeps that record in a per-CPU slot for
the socket's event, which takes its facts, and sends it on only when the next RST arrives on
that CPU. One that no socket takes (dropped as INVALID, no socket at all) would wait there for
as long as that CPU sees no RST: here it is taken from the slot once it is older than the
pairing window, and the kernel's own copy of it, if that comes later, is dropped. The slot is
read twice and a CPU's record taken only when both reads agree (the kernel may be writing it).
"""

from __future__ import annotations

import functools

from .header import constants
from .origin import pick_records


@functools.lru_cache(maxsize=None)
def slot_dtype():
    """struct tw_held_rst: the event, its token (0: empty), the last token, when it was held."""
    import numpy as np

    from .header import event_dtype

    return np.dtype([("e", event_dtype()), ("token", "<u8"), ("last_token", "<u8"), ("jiffies", "<u8")],
                    align=True)


class HeldRsts:
    """table: the bcc per-CPU array tw_held_in; horizon: age (ns) after which a held RST is taken."""

    REMEMBER = 4096

    def __init__(self, table, horizon: int):
        self.table = table
        self.horizon = horizon
        self.taken = 0
        self._taken_ts = None   # ts_ns of the records taken, until no copy of them can come

    def _read(self):
        import numpy as np

        raw = bytes(self.table.getvalue(self.table.Key(0)))
        return np.frombuffer(raw, dtype=slot_dtype())

    def take(self, now: int, everything: bool = False):
        """The held records older than the horizon (all with everything), as tw_event records."""
        import numpy as np

        first, second = self._read(), self._read()
        whole = f"V{first.dtype.itemsize}"
        held = (first["token"] != 0) & (first.view(whole) == second.view(whole))
        if not everything:
            held &= first["e"]["ts_ns"].astype(np.int64) < now - self.horizon
        if self._taken_ts is not None:     # taken before: it stays in its slot until replaced
            held &= ~np.isin(first["e"]["ts_ns"], self._taken_ts)
        records = first["e"][held].copy()
        if len(records):
            self.taken += len(records)
            ts = records["ts_ns"]
            self._taken_ts = ts if self._taken_ts is None else np.concatenate([self._taken_ts, ts])[-self.REMEMBER:]
        return records

    def drop_copies(self, records):
        """records without the kernel's later copies of RSTs taken here. A held RST is sent on
        when the next RST arrives on its CPU, however late that is, so what was taken is kept
        until its copy comes (the last REMEMBER of them: one folded into its socket's event
        instead never comes)."""
        import numpy as np

        if self._taken_ts is None:
            return records
        again = np.isin(records["ts_ns"], self._taken_ts) & (records["kind"] == constants()["TW_KIND_WIRE_IN"])
        if not again.any():
            return records
        self._taken_ts = self._taken_ts[~np.isin(self._taken_ts, records["ts_ns"][again])]
        return pick_records(records, ~again)
