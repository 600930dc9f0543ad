"""--count mode: per-flow totals counted in the kernel (bpf/count.bpf.c), read every interval.

No record crosses to userspace per event: the table tw_flows holds, per (kind, netns, sender,
receiver), a count and the first and last time. Userspace reads it every --interval seconds and
at the end; a flow that did not fit in the table is counted as lost.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import IO

from .capture import Capture
from .header import kind_names

FLOW_COLUMNS = ("kind", "netns", "saddr", "sport", "daddr", "dport", "count", "first_ts", "last_ts")
FLOW_DTYPES = {"kind": "string", "netns": "UInt64", "saddr": "string", "sport": "UInt16", "daddr": "string",
               "dport": "UInt16", "count": "UInt64", "first_ts": "float64", "last_ts": "float64"}


def _address(family: int, raw: bytes) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    text = socket.inet_ntop(socket.AF_INET6, raw)
    return text[7:] if text.startswith("::ffff:") and "." in text else text


def read_flows(cap: Capture):
    """The kernel's per-flow table now, as a DataFrame (largest counts first)."""
    import pandas as pd

    kinds = kind_names()
    mono_to_epoch = time.time() - time.monotonic()   # bpf_ktime_get_ns is CLOCK_MONOTONIC
    rows = []
    for key, val in cap.table("tw_flows").items():
        rows.append((kinds.get(key.kind, str(key.kind)), key.netns or None, _address(key.family, bytes(key.saddr)),
                     key.sport, _address(key.family, bytes(key.daddr)), key.dport, val.count,
                     val.first_ns / 1e9 + mono_to_epoch, val.last_ns / 1e9 + mono_to_epoch))
    frame = pd.DataFrame.from_records(rows, columns=list(FLOW_COLUMNS)).astype(FLOW_DTYPES)
    return frame.sort_values(["count", "first_ts"], ascending=[False, True], ignore_index=True)


def flow_lines(frame, top: int = 50) -> list[str]:
    lines = [f"{'KIND':<15} {'SENDER -> RECEIVER':<47} {'NETNS':<11} {'COUNT':>8}  SPAN"]
    for row in frame.head(top).itertuples(index=False):
        src = f"[{row.saddr}]:{row.sport}" if ":" in row.saddr else f"{row.saddr}:{row.sport}"
        dst = f"[{row.daddr}]:{row.dport}" if ":" in row.daddr else f"{row.daddr}:{row.dport}"
        netns = "-" if row.netns is None or row.netns != row.netns else row.netns
        lines.append(f"{row.kind:<15} {src + ' -> ' + dst:<47} {str(netns):<11} {row.count:>8}  "
                     f"{row.last_ts - row.first_ts:.3f}s")
    if len(frame) > top:
        lines.append(f"... {len(frame) - top} more flows")
    return lines


def run_count(cap: Capture, duration: float | None, interval: float, as_json: bool = False,
              stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> dict:
    """Count until duration or SIGINT/SIGTERM, printing the table every interval; returns the
    final summary ({flows, events, lost, ...})."""
    import json
    import sys

    from ..sinks import frame_to_jsonl

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def show(frame, final: bool) -> None:
        if as_json:
            stdout.write(frame_to_jsonl(frame.assign(at=time.time(), final=final)))
        else:
            stamp = time.strftime("%H:%M:%S")
            stdout.write(f"\n-- {'final' if final else stamp} counts: {int(frame['count'].sum())} events, "
                         f"{len(frame)} flows\n" + "\n".join(flow_lines(frame)) + "\n")
        stdout.flush()

    try:
        cap.start()
        stderr.write(f"tcpwatch: counting {', '.join(cap.stats.attached)} in the kernel every {interval:g}s; "
                     f"Ctrl-C to stop\n")
        stderr.flush()
        end = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            wait = interval if end is None else min(interval, end - time.monotonic())
            if wait <= 0 or stop.wait(wait) or (end is not None and time.monotonic() >= end):
                break
            show(read_flows(cap), final=False)
        frame = read_flows(cap)
        show(frame, final=True)
        cap.read_lost()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopped = time.time()
        cap.close()
    summary = {"events": int(frame["count"].sum()), "flows": len(frame),
               "by_kind": {str(k): int(v) for k, v in frame.groupby("kind")["count"].sum().items()},
               **cap.stats.as_dict(stopped)}
    if as_json:
        stdout.write(json.dumps({"summary": summary}, default=str) + "\n")
    else:
        stdout.write("  " + "  ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list)))
                     + "\n")
    stdout.flush()
    return summary


def run_count_command(cap: Capture, duration: float | None, interval: float, as_json: bool,
                      output: str | None) -> dict:
    """--count as a command runs it: totals only, so no per-event --output file."""
    from ..errors import UsageProblem

    if output:
        raise UsageProblem("--output records events; --count keeps only per-flow totals",
                           "use --json to get the totals as JSON Lines")
    return run_count(cap, duration, interval, as_json=as_json)


__all__ = ["read_flows", "run_count", "run_count_command", "flow_lines"]
