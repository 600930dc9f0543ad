"""`tcpwatch retrans` and `tcpwatch watch`: events with their connection id and owner as they
happen, then per-connection summaries (retransmits and their backoff; who closed first, how
each connection ended, how long it lived)."""

from __future__ import annotations

import signal
import time
from typing import Callable

from ..render import DIRECTION, print_summary
from ..sinks import JsonlSink, open_file_sink
from ..summary import Summary
from .capture import Capture
from .lifecycle import Tracker
from .owners import OwnerResolver
from .session import Outputs, _warn_losses

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
        owner = f"{pid}/{comm}" if pid != "-" else "-"
        lines.append(f"{t} {DIRECTION.get(kind, kind):<5} {flow:<47} {what:<34} {conn_text:<16} {owner}")
    return lines


def connection_lines(connections: list[dict], lifecycle: bool = True) -> list[str]:
    """Two or three lines per connection; without lifecycle events (retrans) only what the
    retransmits tell."""
    lines = []
    for c in connections:
        owner = f"{c['pid']}/{c['comm']}" if c["pid"] is not None else "owner unknown"
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


def run_watch(cap: Capture, duration: float | None, outputs: Outputs, retransmits_only: bool = False,
              on_started: Callable[[], None] | None = None) -> dict:
    """Capture until duration, stop() or SIGINT/SIGTERM. Each batch: owners the kernel could
    not name are looked up in /proc, every event gets its connection id; at the end the
    connections (or, with retransmits_only, the retransmitting flows) are summarised."""
    tracker, resolver, summary = Tracker(), OwnerResolver(), Summary()
    file_sink = open_file_sink(outputs.output) if outputs.output else None
    json_sink = JsonlSink(outputs.stdout) if outputs.as_json else None
    previous = {sig: signal.signal(sig, lambda *_: cap.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    lost_seen = 0
    try:
        resolver.snapshot(cap.filters.netns)   # owners of sockets made before tcpwatch started
        cap.start()
        outputs.stderr.write(f"tcpwatch: tracing {', '.join(dict.fromkeys(cap.stats.attached))} "
                             f"({cap.stats.transport}); Ctrl-C to stop\n")
        outputs.stderr.flush()
        if on_started:
            on_started()
        if not json_sink:
            outputs.stdout.write(HEADER + "\n")
        next_loss_check = time.monotonic() + 1
        for frame in cap.batches(duration):
            frame = tracker.feed(resolver.fill(frame))
            summary.add(frame)
            if file_sink:
                file_sink.write(frame)
            if json_sink:
                json_sink.write(frame)
            else:
                outputs.stdout.write("\n".join(watch_lines(frame)) + "\n")
                outputs.stdout.flush()
            if time.monotonic() >= next_loss_check:
                lost_seen = _warn_losses(cap, lost_seen, outputs.stderr)
                next_loss_check = time.monotonic() + 1
        _warn_losses(cap, lost_seen, outputs.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopped = time.time()
        cap.close()
        if file_sink:
            file_sink.close()
    key = "flows" if retransmits_only else "connections"
    connections = tracker.retransmit_flows() if retransmits_only else tracker.summaries()
    result = {**summary.as_dict(), **cap.stats.as_dict(stopped), "forgotten_connections": tracker.forgotten,
              key: connections}
    if json_sink:
        json_sink.write_summary(result)
    else:
        outputs.stdout.write(f"\n-- {key} ({len(connections)}) " + "-" * 50 + "\n")
        shown = [c for c in tracker.summaries() if c["retransmits"] or not retransmits_only]
        outputs.stdout.write("\n".join(connection_lines(shown, lifecycle=not retransmits_only)) + "\n")
        print_summary({k: v for k, v in result.items() if k != key}, outputs.stdout)
    return result


__all__ = ["run_watch", "watch_lines", "connection_lines", "HEADER"]
