"""The peer: how bcc's tools consume events. The same BPF program as tcpwatch (built by the same
code), but a 64-page perf buffer and, per event, a ctypes decode and a formatted line written
from Python (the tcpretrans/tcpdrop pattern), instead of tcpwatch's batched ring-buffer reads.

Usage: bcc_style_consumer.py NETNS_INODE SECONDS; prints a JSON summary on the last line."""

import ctypes
import json
import socket
import sys
import time

from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
from tcpwatch.live.header import event_dtype

PERF_MB = 64 * 4096 / (1024 * 1024)   # bcc tools' default: 64 pages


def ctypes_event():
    """A ctypes Structure laid out like bpf/tcpwatch.h (what a bcc tool declares by hand)."""
    dtype = event_dtype()
    kinds = {"u1": ctypes.c_uint8, "u2": ctypes.c_uint16, "u4": ctypes.c_uint32, "u8": ctypes.c_uint64}
    fields = []
    for name in dtype.names:
        sub = dtype.fields[name][0]
        if sub.kind == "S":
            fields.append((name, ctypes.c_char * sub.itemsize))
        elif sub.subdtype:
            fields.append((name, kinds[sub.subdtype[0].str[1:]] * sub.shape[0]))
        else:
            fields.append((name, kinds[sub.str[1:]]))
    return type("Event", (ctypes.Structure,), {"_fields_": fields})


class BccStyle(Capture):
    PERF_WAKEUP_EVENTS = 1      # bcc's default: the reader is woken for every sample

    def __init__(self, netns: int):
        super().__init__(Filters.parse(netns=[netns]), transport="perf", buffer_mb=PERF_MB)
        self.event_type = ctypes_event()
        self.captured = 0
        self.out = open("/dev/null", "w")

    def _read_loop(self) -> None:
        self._closing.wait()    # no reader thread of tcpwatch's: a bcc tool reads in its main loop

    def _poll(self, timeout_ms: int) -> None:
        self._bpf.perf_buffer_poll(timeout_ms)  # epoll on every CPU's buffer, as bcc's tools do

    def _on_event(self, _cpu, data, size):
        e = ctypes.cast(data, ctypes.POINTER(self.event_type)).contents
        n = 4 if e.family == 4 else 16
        fam = socket.AF_INET if e.family == 4 else socket.AF_INET6
        self.out.write("%-9s %s:%d -> %s:%d\n" % ("SENT" if e.kind == 1 else "RECV",
                       socket.inet_ntop(fam, bytes(e.saddr[:n])), e.sport,
                       socket.inet_ntop(fam, bytes(e.daddr[:n])), e.dport))
        self.captured += 1


def main() -> None:
    netns, seconds = int(sys.argv[1]), float(sys.argv[2])
    with BccStyle(netns) as peer:
        print("ready", flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peer._poll(100)
        peer._poll(0)
        lost = peer.read_lost()
    print(json.dumps({"captured": peer.captured, "lost": lost}), flush=True)


if __name__ == "__main__":
    main()
