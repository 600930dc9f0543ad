"""`tcpwatch retrans` and `tcpwatch watch`: events with their connection id and owner as they
happen, then per-connection summaries (retransmits and their backoff; who closed first, how
each connection ended, how long it lived)."""

from __future__ import annotations

import time

from ..render import DIRECTION, shown_comm
from .capture import Capture
from .lifecycle import Tracker
from .owners import OwnerResolver
from .session import Stage

def _endpoint(addr, port) -> str:
    return f"[{addr}]:{port}" if ":" in str(addr) else f"{addr}:{port}"


def _clock(ts: list[float]) -> list[str]:
    return [time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(round(t * 1e6)) % 1_000_000:06d}" for t in ts]


def _column(frame, name) -> list:
    """Column values as plain Python objects, missing values (or a missing column) as '-'."""
    if name not in frame.columns:
        return ["-"] * len(frame)
    series = frame[name]
    return series.astype(object).where(series.notna(), "-").tolist()


HEADER = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<47} {'WHAT':<34} {'CONN':<16} PID/COMM"


def _what(kind, state, reason, old, retrans, seq, flags, err) -> str:
    if kind == "retransmit":
        text = f"{retrans} seq={seq} [{flags}]"
        return text + (f" err={err}" if err not in ("-", 0) else "")
    if kind == "state-change":
        return f"{old} > {state}" + (f" err={err}" if err not in ("-", 0) else "")
    return f"{state} {reason}"


def watch_lines(frame) -> list[str]:
    clock = _clock(frame["ts"].tolist())
    names = ("kind", "saddr", "sport", "daddr", "dport", "state", "reason", "old_state", "retransmit", "seq",
             "tcp_flags", "err", "conn", "pid", "comm")
    lines = []
    for t, kind, saddr, sport, daddr, dport, state, reason, old, retrans, seq, flags, err, conn, pid, comm in zip(
            clock, *[_column(frame, n) for n in names]):
        flow = f"{_endpoint(saddr, sport)} -> {_endpoint(daddr, dport)}"
        what = _what(kind, state, reason, old, retrans, seq, flags, err)
        conn_text = f"{conn:016x}" if conn != "-" else "-"
        owner = f"{pid}/{shown_comm(comm)}" if pid != "-" else "-"
        lines.append(f"{t} {DIRECTION.get(kind, kind):<5} {flow:<47} {what:<34} {conn_text:<16} {owner}")
    return lines


def connection_lines(connections: list[dict], lifecycle: bool = True) -> list[str]:
    """Two or three lines per connection; without lifecycle events (retrans) only what the
    retransmits tell."""
    lines = []
    for c in connections:
        owner = f"{c['pid']}/{shown_comm(c['comm'])}" if c["pid"] is not None else "owner unknown"
        head = (f"  {c['conn']:016x} {c['local']} -> {c['remote']} ({c['role'] or 'role unknown'}, {owner}, "
                f"netns {c['netns']})")
        facts = [f"lived {c['duration']:.3f}s", f"ended: {c['ended']}"] if lifecycle else []
        if lifecycle and c["first_close"]:
            facts.append(f"{c['first_close']} closed first")
        if c["retransmits"]:
            gaps = ", ".join(f"{g:.3f}" for g in c["retransmit_gaps"]) or "none"
            kinds = ", ".join(f"{k} {n}" for k, n in c["retransmit_kinds"].items())
            first, last = _clock([c["retransmit_first"], c["retransmit_last"]])
            facts.append(f"{c['retransmits']} retransmits ({kinds}) from {first} to {last}, gaps {gaps}s")
        lines.append(head)
        lines.append(f"      {'; '.join(facts)}")
        if lifecycle and c["states"]:
            lines.append(f"      states: {c['states']}")
    return lines


class WatchStage(Stage):
    """`watch` and `retrans`: owners the kernel could not name are looked up in /proc, every
    event gets its connection id; at the end the connections (or, with retransmits_only, the
    retransmitting flows) are summarised."""

    header = HEADER

    def __init__(self, retransmits_only: bool = False):
        self.tracker, self.resolver = Tracker(), OwnerResolver()
        self.retransmits_only = retransmits_only
        self.key = "flows" if retransmits_only else "connections"

    def before_start(self, cap: Capture) -> None:
        self.resolver.snapshot(cap.filters.netns)   # owners of sockets made before tcpwatch started

    def feed(self, frame):
        return None if frame is None else self.tracker.feed(self.resolver.fill(frame))

    def text(self, frame) -> str:
        return "".join(line + "\n" for line in watch_lines(frame))

    def summary(self) -> dict:
        tracker = self.tracker
        connections = tracker.retransmit_flows() if self.retransmits_only else tracker.summaries()
        return {"forgotten_connections": tracker.forgotten, self.key: connections}

    def end_text(self, result: dict) -> str:
        shown = [c for c in self.tracker.summaries() if c["retransmits"] or not self.retransmits_only]
        return (f"\n-- {self.key} ({len(result[self.key])}) " + "-" * 50 + "\n"
                + "\n".join(connection_lines(shown, lifecycle=not self.retransmits_only)) + "\n")


__all__ = ["WatchStage", "watch_lines", "connection_lines", "HEADER"]
