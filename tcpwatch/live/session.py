"""Runs a live capture for a command: signals, sinks, terminal lines, loss warnings, summary."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable

from ..render import HEADER, event_lines, print_summary
from ..sinks import JsonlSink, open_file_sink
from ..summary import Summary
from .capture import Capture


@dataclass
class Outputs:
    as_json: bool = False
    output: str | None = None
    stdout: IO[str] = sys.stdout
    stderr: IO[str] = sys.stderr


class Stage:
    """What a command does between the capture and the sinks; each hook has a neutral default.

    feed may hold rows back (to pair them) and return only what is final; flush returns the rest.
    header and lines shape the terminal output; summary adds to the final summary; end_text is
    printed before it."""

    header: str | None = None

    def before_start(self, cap: Capture) -> None:
        pass

    def feed(self, frame):
        return frame

    def flush(self):
        return None

    def lines(self, frame) -> list[str]:
        return event_lines(frame)

    def summary(self) -> dict:
        return {}

    def end_text(self, result: dict) -> str:
        return ""

    def close(self) -> None:
        pass


def run(cap: Capture, duration: float | None, outputs: Outputs,
        on_started: Callable[[], None] | None = None, stage: Stage | None = None) -> dict:
    """Capture until duration, stop() or SIGINT/SIGTERM; returns the summary dict.

    on_started runs once the probes are attached (the demo starts its traffic there); stage
    sees every batch (and idle ticks) before the sinks do."""
    stage = stage or Stage()
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
            outputs.stdout.write("\n".join(stage.lines(frame)) + "\n")
            outputs.stdout.flush()

    try:
        stage.before_start(cap)
        cap.start()
        outputs.stderr.write(f"tcpwatch: tracing {', '.join(dict.fromkeys(cap.stats.attached))} "
                             f"({cap.stats.transport}); Ctrl-C to stop\n")
        outputs.stderr.flush()
        if on_started:
            on_started()
        if not outputs.as_json:
            outputs.stdout.write((stage.header or HEADER) + "\n")
            outputs.stdout.flush()
        next_loss_check = time.monotonic() + 1
        for frame in cap.batches(duration, idle_ticks=True):
            emit(stage.feed(frame))
            if time.monotonic() >= next_loss_check:
                lost_seen = _warn_losses(cap, lost_seen, outputs.stderr)
                next_loss_check = time.monotonic() + 1
        _warn_losses(cap, lost_seen, outputs.stderr)
        emit(stage.flush())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopped = time.time()
        cap.close()
        stage.close()
        if file_sink:
            file_sink.close()
    extra = stage.summary()
    result = {**summary.as_dict(), **cap.stats.as_dict(stopped), **extra}
    if json_sink:
        json_sink.write_summary(result)
    else:
        outputs.stdout.write(stage.end_text(result))
        # the stage's own tables (e.g. per-connection records) were printed by end_text
        print_summary({k: v for k, v in result.items() if not (k in extra and isinstance(v, list))},
                      outputs.stdout)
    return result


def _warn_losses(cap: Capture, seen: int, err: IO[str]) -> int:
    lost = cap.read_lost()
    if lost > seen:
        err.write(f"tcpwatch: warning: {lost - seen} events lost in the kernel ({lost} in all): "
                  f"the {cap.stats.transport} buffer was full; raise --buffer-mb\n")
        err.flush()
    return lost
