"""The live session loop with a stand-in capture: what reaches the summary, the file and the
terminal when a signal cuts into a batch."""

from __future__ import annotations

import io
import time

import pandas as pd

from tcpwatch.events import conform
from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
from tcpwatch.live.session import Outputs, run
from tcpwatch.sinks import read_back


class BatchesOnly(Capture):
    """Yields prepared batches; nothing is loaded into the kernel."""

    def __init__(self, frames):
        super().__init__(Filters())
        self.frames = frames

    def start(self):
        self.stats.started = time.time()
        return self

    def batches(self, duration=None, idle_ticks=False):
        for frame in self.frames:
            if self._stopped:
                break
            yield frame

    def read_lost(self) -> int:
        return 0

    def close(self) -> None:
        pass


def batch(first_port: int, n: int):
    return conform(pd.DataFrame({"ts": [1.7e9 + i for i in range(n)], "source": "bpf", "kind": "reset-sent",
                                 "family": 4, "saddr": "10.0.0.1", "sport": 9, "daddr": "10.0.0.2",
                                 "dport": range(first_port, first_port + n), "netns": 1}))


def test_a_signal_during_encoding_loses_nothing(tmp_path, monkeypatch):
    """polars raises KeyboardInterrupt when SIGINT arrives while it encodes (our handler
    notwithstanding): the batch must still be written whole, counted once, and the run stop."""
    import tcpwatch.sinks as sinks

    real = sinks.frame_to_jsonl_bytes
    calls = []

    def interrupted_once(frame):
        calls.append(len(frame))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(frame)

    monkeypatch.setattr(sinks, "frame_to_jsonl_bytes", interrupted_once)
    cap = BatchesOnly([batch(1000, 3), batch(2000, 4), batch(3000, 5)])
    out = tmp_path / "x.jsonl"
    stdout = io.StringIO()
    result = run(cap, None, Outputs(output=str(out), stdout=stdout, stderr=io.StringIO()))
    written = read_back(str(out))
    assert sorted(written["dport"]) == [1000, 1001, 1002, 2000, 2001, 2002, 2003]
    assert result["events"] == 7
    assert sum(line.count(":2003") for line in stdout.getvalue().splitlines()) == 1
    assert cap._stopped       # the interrupt still meant stop: the third batch never came


def test_stop_from_a_signal_handler_never_hangs():
    """Ctrl-C runs stop() in a signal handler, at any point of the main thread's wait for the
    next read: it once took a lock that wait could be holding, and the capture hung for good."""
    import subprocess
    import sys

    script = """
import signal, time
from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
for i in range(400):
    cap = Capture(Filters(), flush_interval=0.001)
    cap._t0 = time.monotonic()
    cap.read_lost = lambda: 0
    signal.signal(signal.SIGALRM, lambda *_: cap.stop())
    signal.setitimer(signal.ITIMER_REAL, 0.0005 + (i % 20) * 0.0001)
    for _ in cap.batches(idle_ticks=True):
        pass
print("stopped", i + 1)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["stopped", "400"], done.stderr[-2000:]
