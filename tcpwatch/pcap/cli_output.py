"""What `tcpwatch pcap` prints and writes; the click command only parses options."""

from __future__ import annotations

import os
import sys

from ..render import event_lines, print_summary
from ..sinks import JsonlSink, open_file_sink
from .api import analyze

PROGRESS_MIN_BYTES = 32 << 20
FORCE_PROGRESS_ENV = "TCPWATCH_PROGRESS"   # "1": draw the bar whatever the file size or stderr (tests, logs)
DAMAGE_LINES = 20
CONNECTION_COLUMNS = ("orig_h", "orig_p", "resp_h", "resp_p", "conn_state", "history", "orig_pkts", "resp_pkts",
                      "resets_orig", "resets_resp", "retrans_orig", "retrans_resp", "duration")


class ProgressBar:
    """A one-line bar on stderr, only for big files on a terminal."""

    def __init__(self, path: str):
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        forced = os.environ.get(FORCE_PROGRESS_ENV) == "1"
        self.enabled = forced or (sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES)
        self.name = os.path.basename(path)
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        pct = min(100, done * 100 // total)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{self.name}: [{bar:<25}] {pct:3d}%")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.last >= 0:
            sys.stderr.write("\n")


def _connection_lines(frame) -> list[str]:
    rows = [f"{'ORIGINATOR':<40} {'RESPONDER':<40} {'STATE':<7} {'HISTORY':<16} PKTS o/r  RST o/r  RETX o/r"]
    cols = [frame[c].astype(object).where(frame[c].notna(), "-").tolist() for c in CONNECTION_COLUMNS]
    for oh, op, rh, rp, state, hist, opk, rpk, ro, rr, xo, xr, _dur in zip(*cols):
        o = f"[{oh}]:{op}" if ":" in str(oh) else f"{oh}:{op}"
        r = f"[{rh}]:{rp}" if ":" in str(rh) else f"{rh}:{rp}"
        rows.append(f"{o:<40} {r:<40} {state:<7} {hist:<16} {opk}/{rpk}  {ro}/{rr}  {xo}/{xr}")
    return rows


def _report_damage(result) -> None:
    for packet, offset, length, reason in result.damage_rows(DAMAGE_LINES):
        sys.stderr.write(f"tcpwatch: {result.path}: skipped packet #{packet} at byte {offset} "
                         f"({length} bytes): {reason}\n")
    if result.stats["damaged"] > DAMAGE_LINES:
        sys.stderr.write(f"tcpwatch: {result.path}: ... {result.stats['damaged'] - DAMAGE_LINES} more damaged records\n")
    if result.stats.get("compression_problem"):
        sys.stderr.write(f"tcpwatch: {result.path}: {result.stats['compression_problem']}\n")


def _print_rows(result, show_connections: bool, max_lines: int) -> None:
    """At most max_lines rows; only those rows become a DataFrame (none at all with --max-lines 0)."""
    if show_connections:
        total = len(result.raw_connections)
        lines = _connection_lines(result.connections.head(max_lines))
    else:
        total = len(result.raw_events)
        lines = event_lines(result.events_head(max_lines)) if max_lines and total else []
    sys.stdout.write("".join(line + "\n" for line in lines))
    shown = min(total, max_lines)
    if total > shown:
        sys.stdout.write(f"... {total - shown} more rows (all of them with --output or --json)\n")


def run_files(files, show_connections: bool, max_lines: int, as_json: bool, output: str | None) -> None:
    sink = open_file_sink(output) if output else None
    jsonl = JsonlSink(sys.stdout) if as_json else None
    try:
        for path in files:
            bar = ProgressBar(path)
            try:
                result = analyze(path, progress=bar)
            finally:
                bar.close()
            _report_damage(result)
            summary = result.summary()
            if sink or jsonl:
                table = result.connections if show_connections else result.events
                if sink:
                    sink.write(table)
                if jsonl:
                    jsonl.write(table)
                    jsonl.write_summary(summary)
                    continue
            _print_rows(result, show_connections, max_lines)
            print_summary(summary, sys.stdout)
    finally:
        if sink:
            sink.close()
