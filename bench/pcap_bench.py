"""Side by side on one synthetic capture: `tcpwatch pcap`, tshark's retransmission analysis and
scapy's PcapReader loop. Prints packets/s, peak memory and the RST / retransmission counts of
each (tcpwatch and tshark must agree exactly).

    python bench/pcap_bench.py [--packets 1000000] [--scapy-packets 50000] [--file F]

tcpwatch is timed as the median of three runs of the whole command (start-up included), once
printing only the summary and once with its default 200 event rows (which imports pandas).
scapy is timed on the first --scapy-packets packets only (it runs at a few thousand packets/s);
its rate is what it reached on that prefix. It has no retransmission analysis.
"""

from __future__ import annotations

import argparse
import re
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of one child, reaped with wait4 to read its own peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    chunks = []
    for line in proc.stdout:
        chunks.append(line)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, "".join(chunks)


def bench_tcpwatch(path: str, *options: str, repeat: int = 3):
    # the whole command, Python start-up included: the full analysis, then what the options print.
    # Under a second, so one run is at the mercy of other processes: the median of `repeat` runs.
    cmd = [sys.executable, "-m", "tcpwatch.cli", "pcap", *options, path]
    runs = sorted(run_measured(cmd) for _ in range(repeat))
    secs, rss, out = runs[len(runs) // 2]
    fields = dict(re.findall(r"(\w+)=(\d+)", out))
    return secs, rss, int(fields["packets"]), int(fields["resets"]), int(fields["retransmissions"])


def bench_tshark(path: str):
    cmd = ["tshark", "-n", "-r", path, "-Y", "tcp.analysis.retransmission || tcp.flags.reset==1",
           "-T", "fields", "-e", "tcp.flags.reset", "-e", "tcp.analysis.retransmission"]
    secs, rss, out = run_measured(cmd)
    rst = rexmit = 0
    for line in out.splitlines():
        parts = line.split("\t")
        rst += parts[0] in ("1", "True")
        rexmit += len(parts) > 1 and parts[1] != ""
    count = subprocess.run(["capinfos", "-c", "-M", path], capture_output=True, text=True).stdout
    packets = int(next((ln.split(":")[1] for ln in count.splitlines() if "Number of packets" in ln), "0").strip())
    return secs, rss, packets, rst, rexmit


SCAPY_SNIPPET = """
import sys
from scapy.utils import PcapReader
from scapy.layers.inet import TCP
limit = int(sys.argv[2]); n = rst = 0
for pkt in PcapReader(sys.argv[1]):
    n += 1
    if TCP in pkt and pkt[TCP].flags & 0x04:
        rst += 1
    if n >= limit:
        break
print(n, rst)
"""


def bench_scapy(path: str, limit: int):
    secs, rss, out = run_measured([sys.executable, "-c", SCAPY_SNIPPET, path, str(limit)])
    n, rst = map(int, out.split())
    return secs, rss, n, rst, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--scapy-packets", type=int, default=50_000)
    parser.add_argument("--file", default=str(HERE / "out" / "synthetic.pcap"))
    args = parser.parse_args()

    import gen_synthetic_pcap

    path = Path(args.file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ({args.packets} packets)...", flush=True)
        gen_synthetic_pcap.write(str(path), args.packets)
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL)  # same warm page cache for every tool

    rows = [("tcpwatch pcap --max-lines 0 (summary)", *bench_tcpwatch(str(path), "--max-lines", "0")),
            ("tcpwatch pcap (200 rows + summary)", *bench_tcpwatch(str(path))),
            ("tshark -Y retransmission", *bench_tshark(str(path))),
            (f"scapy PcapReader (first {args.scapy_packets})", *bench_scapy(str(path), args.scapy_packets))]
    print(f"\ncapture: {path} ({path.stat().st_size / 1e6:.0f} MB)\n")
    print(f"{'tool':<38} {'packets':>9} {'seconds':>8} {'packets/s':>11} {'peak MiB':>9} {'RSTs':>7} {'retrans':>8}")
    for name, secs, rss, packets, rst, rexmit in rows:
        rx = "n/a" if rexmit is None else rexmit
        print(f"{name:<38} {packets:>9} {secs:>8.2f} {packets / secs:>11,.0f} {rss:>9.0f} {rst:>7} {rx:>8}")
    tw, ts = rows[0], rows[2]
    agree = all(row[4] == ts[4] and row[5] == ts[5] for row in rows[:2])
    print(f"\ntcpwatch vs tshark: {tw[3] / tw[1] / (ts[3] / ts[1]):.1f}x the packet rate; counts "
          f"{'agree' if agree else 'DISAGREE'} (RST {tw[4]} vs {ts[4]}, retransmissions {tw[5]} vs {ts[5]})")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
