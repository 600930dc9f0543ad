"""The peer: how bcc's tools consume events. Same probes as tcpwatch, but a 64-page perf
buffer and a per-event ctypes decode and formatted line in Python (tcpretrans/tcpdrop style).

Usage: bcc_style_consumer.py NETNS_INODE SECONDS; prints a JSON summary on the last line."""

import ctypes
import json
import socket
import sys
import time

from tcpwatch.live.btf import kernel_btf
from tcpwatch.live.probes import select
from tcpwatch.live.program import BPF_DIR, Options, build_source, kernel_offsets
from tcpwatch.live.tracefs import read_format


class Event(ctypes.Structure):
    _fields_ = [("ts_ns", ctypes.c_uint64), ("skaddr", ctypes.c_uint64), ("cookie", ctypes.c_uint64),
                ("netns", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("uid", ctypes.c_uint32),
                ("seq", ctypes.c_uint32), ("saddr", ctypes.c_uint8 * 16), ("daddr", ctypes.c_uint8 * 16),
                ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16), ("family", ctypes.c_uint8),
                ("kind", ctypes.c_uint8), ("state", ctypes.c_uint8), ("oldstate", ctypes.c_uint8),
                ("reason", ctypes.c_uint16), ("tcpflags", ctypes.c_uint8), ("flags", ctypes.c_uint8),
                ("comm", ctypes.c_char * 16)]


def main() -> None:
    from bcc import BPF

    netns, seconds = int(sys.argv[1]), float(sys.argv[2])
    formats = {n: read_format("tcp", n) for n in ("tcp_send_reset", "tcp_receive_reset")}
    source = build_source(formats, kernel_offsets(kernel_btf()), Options(use_ringbuf=False, filter_netns=True))
    b = BPF(text=source.encode(), cflags=[f"-I{BPF_DIR}", "-Wno-macro-redefined"])
    b[b"f_netns"][ctypes.c_uint32(netns)] = ctypes.c_uint8(1)
    for probe in select(["resets"]):
        b.attach_tracepoint(tp=probe.tracepoint.encode(), fn_name=probe.function.encode())
    counts = {"captured": 0, "lost": 0}
    out = open("/dev/null", "w")

    def on_event(cpu, data, size):
        e = ctypes.cast(data, ctypes.POINTER(Event)).contents
        n = 4 if e.family == 4 else 16
        fam = socket.AF_INET if e.family == 4 else socket.AF_INET6
        out.write("%-9s %s:%d -> %s:%d\n" % ("SENT" if e.kind == 1 else "RECV",
                  socket.inet_ntop(fam, bytes(e.saddr[:n])), e.sport,
                  socket.inet_ntop(fam, bytes(e.daddr[:n])), e.dport))
        counts["captured"] += 1

    def on_lost(count):
        counts["lost"] += count

    b[b"events"].open_perf_buffer(on_event, page_cnt=64, lost_cb=on_lost)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        b.perf_buffer_poll(100)
    b.perf_buffer_poll(0)
    b.cleanup()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
