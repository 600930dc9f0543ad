"""tcpwatch's BPF programs attached and records drained, nothing decoded: the kernel-side cost
alone, for bench/resets_bench.py. Usage: bpf_only.py NETNS_INODE [GROUPS]; prints "ready",
then on SIGINT one JSON line with the records read and lost."""

from __future__ import annotations

import json
import signal
import sys
import threading

from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters


def main() -> None:
    groups = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else ("resets", "netdev")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Capture(Filters(netns=frozenset([int(sys.argv[1])])), groups=groups) as cap:
        print("ready", flush=True)
        size = cap._event_size
        records = 0
        while not stop.wait(cap.flush_interval):
            records += len(cap.take_records()) // size
        print(json.dumps({"records": records, "lost": cap.read_lost()}), flush=True)


if __name__ == "__main__":
    main()
