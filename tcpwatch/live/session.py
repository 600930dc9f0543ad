"""Runs a live capture for a command: signals, sinks, terminal lines, loss warnings, summary."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable, Protocol

from ..render import HEADER, HEADER_DIAGNOSED, event_lines, print_summary
from ..sinks import JsonlSink, open_file_sink
from ..summary import Summary
from .capture import Capture


@dataclass
class Outputs:
    as_json: bool = False
    output: str | None = None
    stdout: IO[str] = sys.stdout
    stderr: IO[str] = sys.stderr


class Stage(Protocol):
    """A step between the capture and the sinks that may hold rows back (e.g. to pair them)."""

    def feed(self, frame): ...
    def flush(self): ...
    def close(self) -> None: ...


def run(cap: Capture, duration: float | None, outputs: Outputs,
        on_started: Callable[[], None] | None = None, stage: Stage | None = None) -> dict:
    """Capture until duration, stop() or SIGINT/SIGTERM; returns the summary dict.

    on_started runs once the probes are attached (the demo starts its traffic there); stage,
    when given, sees every batch (and idle ticks) before the sinks do."""
    summary = Summary()
    file_sink = open_file_sink(outputs.output) if outputs.output else None
    json_sink = JsonlSink(outputs.stdout) if outputs.as_json else None
    previous = {sig: signal.signal(sig, lambda *_: cap.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    lost_seen = 0

    def emit(frame) -> None:
        if frame is None or frame.empty:
            return
        summary.add(frame)
        if file_sink:
            file_sink.write(frame)
        if json_sink:
            json_sink.write(frame)
        else:
            outputs.stdout.write("\n".join(event_lines(frame)) + "\n")
            outputs.stdout.flush()

    try:
        cap.start()
        outputs.stderr.write(f"tcpwatch: tracing {', '.join(cap.stats.attached)} "
                             f"({cap.stats.transport}); Ctrl-C to stop\n")
        outputs.stderr.flush()
        if on_started:
            on_started()
        if not outputs.as_json:
            outputs.stdout.write((HEADER_DIAGNOSED if stage else HEADER) + "\n")
            outputs.stdout.flush()
        next_loss_check = time.monotonic() + 1
        for frame in cap.batches(duration, idle_ticks=stage is not None):
            emit(stage.feed(frame) if stage else frame)
            if time.monotonic() >= next_loss_check:
                lost_seen = _warn_losses(cap, lost_seen, outputs.stderr)
                next_loss_check = time.monotonic() + 1
        _warn_losses(cap, lost_seen, outputs.stderr)
        if stage:
            emit(stage.flush())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopped = time.time()
        cap.close()
        if stage:
            stage.close()
        if file_sink:
            file_sink.close()
    result = {**summary.as_dict(), **cap.stats.as_dict(stopped)}
    if json_sink:
        json_sink.write_summary(result)
    else:
        print_summary(result, outputs.stdout)
    return result


def _warn_losses(cap: Capture, seen: int, err: IO[str]) -> int:
    lost = cap.read_lost()
    if lost > seen:
        err.write(f"tcpwatch: warning: {lost - seen} events lost in the kernel ({lost} in all): "
                  f"the {cap.stats.transport} buffer was full; raise --buffer-mb\n")
        err.flush()
    return lost
