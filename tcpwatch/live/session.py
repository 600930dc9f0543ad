"""Runs a live capture for a command: signals, sinks, terminal lines, loss warnings, summary."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Callable

# polars (output encoding) would start a worker per core; a live capture's batches are small and
# the cores belong to the traffic being watched, so one thread (measured: 14 vs 20 us an event
# under load on 2 cores). Set before polars is first imported; an explicit setting wins.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

from ..render import HEADER, event_text, print_summary  # noqa: E402
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

    feed may hold rows back and return only what is final; flush returns the rest.
    header and text shape the terminal output; summary adds to the final summary; end_text is
    printed before it."""

    header: str | None = None

    def before_start(self, cap: Capture) -> None:
        pass

    def feed(self, frame):
        return frame

    def flush(self):
        return None

    def text(self, frame) -> str:
        """The batch's terminal lines, each ending in a newline."""
        return event_text(frame)

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
    lost_seen = (0, 0)

    def emit(frame) -> None:
        if frame is None or frame.empty:
            return
        # Encoded whole before anything is counted or written: see _uninterrupted.
        to_file, to_stdout = _uninterrupted(cap, lambda: (
            file_sink.encode(frame) if file_sink else None,
            json_sink.encode(frame) if json_sink else stage.text(frame)))
        summary.add(frame)
        if file_sink:
            file_sink.put(to_file)
        if json_sink:
            json_sink.put(to_stdout)
        else:
            outputs.stdout.write(to_stdout)
            outputs.stdout.flush()

    # While bcc compiles (it releases the GIL), the stage gets ready and pandas and polars load:
    # the first batch must not wait a second for them while a flood fills the buffer.
    failures: list[BaseException] = []
    warm = threading.Thread(target=_prepare, args=(stage, cap, failures), daemon=True)
    warm.start()
    try:
        cap.start()
        warm.join()
        if failures:
            raise failures[0]
        outputs.stderr.write(f"tcpwatch: tracing {', '.join(dict.fromkeys(cap.stats.attached))} "
                             f"({cap.stats.transport}); Ctrl-C to stop\n")
        outputs.stderr.flush()
        if on_started:
            on_started()
        if not outputs.as_json:
            outputs.stdout.write((stage.header or HEADER) + "\n")
            outputs.stdout.flush()
        next_loss_check = time.monotonic() + 1
        try:
            for frame in cap.batches(duration, idle_ticks=True):
                emit(stage.feed(frame))
                if time.monotonic() >= next_loss_check:
                    lost_seen = _warn_losses(cap, lost_seen, outputs.stderr)
                    next_loss_check = time.monotonic() + 1
        except KeyboardInterrupt:
            # Native code may turn our SIGINT into KeyboardInterrupt mid-batch: it still means
            # "stop", and what the kernel already handed over is still written below.
            cap.stop()
            for frame in cap.batches(0):
                emit(stage.feed(frame))
        _warn_losses(cap, lost_seen, outputs.stderr)
        emit(stage.flush())
    finally:
        stopped = time.time()
        cap.close()
        stage.close()
        if file_sink:
            file_sink.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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


def _uninterrupted(cap: Capture, encode: Callable[[], tuple]) -> tuple:
    """encode() run to its end. polars, which encodes JSON and terminal lines, answers a SIGINT
    that arrives while it works with KeyboardInterrupt, whatever handler is installed: the batch
    in flight at Ctrl-C was then lost from the file and the terminal while the summary counted it
    (seen under a flood: 17k of 578k events). The interrupt still means stop; encoding has no
    side effects, so it is simply run again."""
    while True:
        try:
            return encode()
        except KeyboardInterrupt:
            cap.stop()


def _prepare(stage: Stage, cap: Capture, failures: list) -> None:
    try:
        stage.before_start(cap)
        importlib.import_module("pandas")   # loaded now, not at the first batch
        importlib.import_module("polars")
    except BaseException as err:  # re-raised in the run loop's thread
        failures.append(err)


def _warn_losses(cap: Capture, seen: tuple[int, int], err: IO[str]) -> tuple[int, int]:
    lost, missed = cap.read_lost(), cap.stats.missed or 0
    if lost > seen[0]:
        err.write(f"tcpwatch: warning: {lost - seen[0]} events lost in the kernel ({lost} in all): "
                  f"the {cap.stats.transport} buffer was full; raise --buffer-mb\n")
    if missed > seen[1]:
        err.write(f"tcpwatch: warning: {missed - seen[1]} events missed ({missed} in all): the kernel skipped "
                  f"tcpwatch's programs while another BPF program ran on the same CPU\n")
    err.flush()
    return lost, missed
