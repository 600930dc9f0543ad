"""Which layer produced each reset: pair the TCP stack's records with the RSTs seen on devices.

The kernel reports a reset twice when the TCP stack makes it: at tcp_send_reset and as a packet
leaving a device (wire-out); a received one, as a packet arriving (wire-in) and at
tcp_receive_reset. A wire-out RST with no stack event was made by someone else on this host:
netfilter (REJECT --reject-with tcp-reset). A wire-in RST with no stack event never reached a
socket (dropped as INVALID, or no socket at all): it is reported as received, with no state.

This runs on the raw records, before they are decoded: a device copy folded into its stack
record is never decoded at all, and pairing compares integers, not address strings.

The kernel folds most pairs itself, on the CPU where both halves happen (bpf/tcpwatch.bpf.c):
a reset the stack sends for a packet with no socket is traced just before its packet leaves,
and the device's copy is dropped; a received RST is held as the device sees it and its
socket's event takes it (flag TW_F_DEVICE_COPY, ifindex and flags filled in). What reaches
here unpaired is what the kernel could not pair: an active reset (traced after its packet
left), a RST no socket took (the kernel sends it on later, or tcpwatch/live/held.py takes it),
one whose socket's event ran on another CPU, netfilter's RSTs.

Who waits: the ring buffer is read in the order records were reserved, so when one half of a
pair causes the other, the cause is read first (or in the same read). A device copy that comes
first waits, until its stack record arrives or it is window + latency old (then it is final
alone). A stack record never waits: when it is read, every device copy that came before it is
in hand; one that comes after it (the kernel missed the pair, or held it) is matched against
the stack records of the last moments, which are remembered (flow and time only) for that.

Pairs share namespace, 4-tuple and direction, and lie within `window` seconds: the n-th device
copy of a tuple pairs with its n-th stack record in an episode (a run of that tuple's records
less than a window apart; a flood reuses ephemeral ports within a second).
"""

from __future__ import annotations

from typing import NamedTuple

from ..codes import strings_from_codes
from .decode import LIVE_DTYPES, wire_addresses
from .header import constants

WINDOW = 0.2       # seconds two halves of a pair may lie apart
LATENCY = 0.05     # seconds a record may reach a read after its timestamp
ORIGINS = ["remote", "tcp-stack", "netfilter"]
DELIVERED = ["yes", "no"]
ORIGIN_DTYPES = {**LIVE_DTYPES, "origin": "string", "delivered": "string"}
_FNV_PRIME = 0x100000001B3


class Paired(NamedTuple):
    """Records final now (device copies folded in, lone ones relabelled as resets) and the
    schema columns pairing adds, one entry per record."""

    records: object     # numpy structured array of tw_event
    columns: dict       # name -> pandas array


def pick_records(rec, which):
    """A copy of the records picked (a mask or a slice). Through a view as whole opaque
    records: numpy copies a structured array field by field, 40 times slower."""
    picked = rec.view(f"V{rec.dtype.itemsize}")[which]
    return (picked.copy() if isinstance(which, slice) else picked).view(rec.dtype)


def concat_records(a, b):
    """Two arrays of records as one (through opaque views, as pick_records)."""
    import numpy as np

    if not len(b):
        return a
    return np.concatenate([a.view(f"V{a.dtype.itemsize}"), b.view(f"V{b.dtype.itemsize}")]).view(a.dtype)


def flow_words(rec, sent):
    """Each record's flow as six 64-bit words (addresses as the wire carries them: a v4-mapped
    IPv6 address as IPv4; namespace and ports; direction) and a hash of them."""
    import numpy as np

    n = len(rec)
    words = np.zeros((n, 6), dtype=np.uint64)
    for at, side in ((0, "saddr"), (2, "daddr")):
        words[:, at:at + 2] = wire_addresses(rec["family"], rec[side])[1]
    words[:, 4] = ((rec["netns"].astype(np.uint64) << np.uint64(32))
                   | (rec["sport"].astype(np.uint64) << np.uint64(16)) | rec["dport"].astype(np.uint64))
    words[:, 5] = sent
    digest = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in words.T:
            digest = (digest ^ column) * np.uint64(_FNV_PRIME)
            digest ^= digest >> np.uint64(29)
    return words, digest


class OriginPairing:
    """Labels each record's origin and folds device copies into their stack records.

    window: how far apart in time (seconds) two halves of a pair may be; latency: how long after
    its timestamp a record may still be missing from a read of the kernel's buffer (stamped in
    the program, committed microseconds later). wire: device records can come (group netdev);
    without them nothing is held. ordered: the records are read in the order they were reserved
    (a ring buffer); a perf buffer is read CPU by CPU, so there a stack record alone waits
    `latency` for a device copy from another CPU. Times are the records' clock: CLOCK_MONOTONIC
    nanoseconds."""

    def __init__(self, window: float = WINDOW, latency: float = LATENCY, wire: bool = True, ordered: bool = True):
        c = constants()
        self.window = int(window * 1e9)
        self.latency = int(latency * 1e9)
        self.wire = wire
        self.ordered = ordered
        self._sent, self._received, self._state = c["TW_KIND_RESET_SENT"], c["TW_KIND_RESET_RECEIVED"], \
            c["TW_KIND_STATE_CHANGE"]
        self._wire_out, self._wire_in = c["TW_KIND_WIRE_OUT"], c["TW_KIND_WIRE_IN"]
        self._device_copy = c["TW_F_DEVICE_COPY"]
        # how long received resets are remembered for a late device copy: the kernel holds a
        # RST up to window + latency before it is taken (tcpwatch/live/held.py), and it is
        # taken at a read after that
        self.memory = 4 * (self.window + self.latency)
        self._held = None       # device copies waiting for their stack record (unordered: and the reverse)
        self._due: int | None = None    # when the first of them is final
        self._recent = None     # (words, digest, ts, until) of stack records no device copy has joined yet
        self.late_copies = 0    # device copies folded into a stack record already released

    def feed(self, rec, now: int) -> Paired | None:
        """Add the records of one read (now: when it began); return what is final. The records
        are the pairing's from then on (relabelled in place when writable)."""
        import numpy as np

        rows = rec if self._held is None else concat_records(self._held, rec)
        self._held = self._due = None
        if not len(rows):
            return None
        if not rows.flags.writeable:
            rows = pick_records(rows, slice(None))
        return self._release(rows, now)

    def next_release(self) -> int | None:
        """When the oldest record held back becomes final (monotonic ns), or None."""
        return self._due

    def flush(self) -> Paired | None:
        """Everything held, final now."""
        held, self._held, self._due = self._held, None, None
        if held is None:
            return None
        return self._release(held, None)

    def _release(self, rows, now: int | None) -> Paired | None:
        import numpy as np

        if self.wire:
            keep, lone = self._pair(rows, now)
        else:
            keep = np.ones(len(rows), dtype=bool)
            lone = np.zeros(len(rows), dtype=bool)
        out = rows if keep.all() else pick_records(rows, keep)     # rows are ours to relabel
        lone = lone[keep]
        kind = out["kind"]
        # a reset received came from the remote end; one sent, or a close the kernel decided (a
        # timeout), from the TCP stack; a lone wire-out RST from netfilter
        origin = np.full(len(out), -1, dtype=np.int8)
        origin[(kind == self._received) | (kind == self._wire_in)] = 0
        origin[(kind == self._sent) | (kind == self._state)] = 1
        origin[kind == self._wire_out] = 2
        received = (kind == self._received) | (kind == self._wire_in)
        delivered = strings_from_codes(DELIVERED, lone.astype(np.int8), received)
        out["kind"][kind == self._wire_out] = self._sent
        out["kind"][kind == self._wire_in] = self._received
        if not len(out):
            return None
        return Paired(out, {"origin": strings_from_codes(ORIGINS, origin, origin >= 0), "delivered": delivered})

    def _pair(self, rows, now: int | None):
        """(which rows are final now, which of those are lone device copies). Device copies
        that pair fold into their stack record (ifindex, tcp flags) and are dropped; the rest
        wait until ripe; stack records that stay alone are remembered for late copies.
        rows must be writable."""
        import numpy as np

        n = len(rows)
        kind, ts = rows["kind"], rows["ts_ns"].astype(np.int64)
        wire = (kind == self._wire_out) | (kind == self._wire_in)
        stack = (kind == self._sent) | (kind == self._received)
        sent = (kind == self._sent) | (kind == self._wire_out)
        # stack records a late device copy may still join: sent resets (their copy is dropped
        # in the kernel, one it misses comes after them) and received ones the kernel did not
        # give their copy (it was held on another CPU)
        alone_stack = (kind == self._sent) | ((kind == self._received) & (rows["flags"] & self._device_copy == 0))
        alone = wire.copy()
        paired_stack = np.zeros(0, dtype=np.int64)
        words = digest = None       # the flows, of every row only when there are device copies
        if wire.any():
            words, digest = flow_words(rows, sent)
            paired_wire, paired_stack = self._match(digest, ts, wire, stack, words)
            rows["ifindex"][paired_stack] = rows["ifindex"][paired_wire]
            rows["tcpflags"][paired_stack] = rows["tcpflags"][paired_wire]
            alone[paired_wire] = False
            alone_stack[paired_stack] = False
            if alone.any() and self._recent is not None:
                alone &= ~self._late_copies(words, digest, ts, alone)
        # Lone device copies wait until ripe; everything else that is not folded is final now
        # (read unordered, a lone stack record waits a read's latency).
        due = ts + np.where(wire, self.window + self.latency, self.latency)
        wait = alone.copy()
        if not self.ordered:
            wait |= stack
            wait[paired_stack] = False
        if now is not None:
            wait &= due >= now
            if wait.any():
                self._held, self._due = pick_records(rows, wait), int(due[wait].min())
        else:
            wait[:] = False
        new = alone_stack & ~wait
        if new.any() and now is not None:
            if words is None:
                words, digest = flow_words(pick_records(rows, new), sent[new])
            else:
                words, digest = words[new], digest[new]
            # a sent reset's copy comes within the window if at all; a received one's may be
            # held in the kernel until taken (self.memory)
            until = ts[new] + np.where(sent[new], self.window + self.latency, self.memory)
            self._remember((words, digest, ts[new], until), now)
        else:
            self._remember(None, now)
        return ~wait & (~wire | alone), alone

    def _match(self, digest, ts, wire, stack, words):
        """Rows of the pairs: the n-th device copy of a flow in an episode with its n-th stack record."""
        import numpy as np

        n = len(ts)
        by_time = np.lexsort((ts, digest))
        g, t, w, s = digest[by_time], ts[by_time], wire[by_time], stack[by_time]
        starts = np.r_[True, (g[1:] != g[:-1]) | (np.diff(t) > self.window)]
        episode = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)
        # nth device copy / stack record in its episode: a running count less the count before it
        cw, cs = np.cumsum(w), np.cumsum(s)
        nth_w = cw - 1 - (cw - w)[first][episode]
        nth_s = cs - 1 - (cs - s)[first][episode]
        # in this order each kind's (episode, nth) keys ascend: a sorted lookup pairs them
        key_w, key_s = (episode * (n + 1) + nth_w)[w], (episode * (n + 1) + nth_s)[s]
        at = np.minimum(np.searchsorted(key_w, key_s), max(len(key_w) - 1, 0))
        hit = key_w[at] == key_s if len(key_w) else np.zeros(len(key_s), dtype=bool)
        pw, ps = by_time[w][at[hit]], by_time[s][hit]
        # within the window, and the same flow word for word (the hash only grouped them)
        good = (np.abs(ts[pw] - ts[ps]) <= self.window) & (words[pw] == words[ps]).all(axis=1)
        return pw[good], ps[good]

    def _late_copies(self, words, digest, ts, alone):
        """Which lone device copies belong to a sent reset released earlier (the kernel missed
        the pair): each joins the earliest one of its flow within the window, once."""
        import numpy as np

        order = np.lexsort((self._recent[2], self._recent[1]))
        r_words, r_digest, r_ts, r_until = (part[order] for part in self._recent)
        cand = np.flatnonzero(alone)
        cand = cand[np.lexsort((ts[cand], digest[cand]))]
        d = digest[cand]
        first = np.r_[True, d[1:] != d[:-1]]
        starts = np.flatnonzero(first)
        rank = np.arange(len(cand)) - np.repeat(starts, np.diff(np.r_[starts, len(cand)]))
        at = np.searchsorted(r_digest, d) + rank
        ok = at < len(r_digest)
        at = np.where(ok, at, 0)
        ok &= (r_digest[at] == d) & (words[cand] == r_words[at]).all(axis=1) & (np.abs(ts[cand] - r_ts[at]) <= self.window)
        late = np.zeros(len(ts), dtype=bool)
        late[cand[ok]] = True
        if ok.any():
            self.late_copies += int(ok.sum())
            left = np.ones(len(r_ts), dtype=bool)
            left[at[ok]] = False
            self._recent = (r_words[left], r_digest[left], r_ts[left], r_until[left])
        return late

    def _remember(self, new, now: int | None) -> None:
        """Keep the stack records still alone (new: words, digest, ts, until) until their time."""
        import numpy as np

        parts = [p for p in (self._recent, new) if p is not None]
        if not parts or now is None:
            self._recent = None
            return
        recent = tuple(np.concatenate(p) for p in zip(*parts)) if len(parts) > 1 else parts[0]
        fresh = recent[3] >= now
        self._recent = tuple(part[fresh] for part in recent) if fresh.any() else None
