"""iptables LOG parsing speed: tcpwatch (C tokenizer, columnar) vs a naive per-line regex parser.

Prints lines/s for both on the same generated file (real kernel formats: syslog envelope, TCP
RSTs with SEQ/ACK, SYNs with options, UDP, ICMP port-unreachable quoting its packet, IPv6).
Goal: >= 1,000,000 lines/s for tcpwatch, as the MEDIAN of --repeat runs (end to end: file ->
the DataFrame read_iptables_log returns). Every run's frame is kept until the end, so each run
parses into fresh memory as a one-shot `tcpwatch iplog` does (on this machine fresh memory costs
far more than memory a process frees and reuses). The naive parser does about 160k lines/s here.
    .venv/bin/python bench/iplog_bench.py [--lines N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tcpwatch.iplog.api import core, parse_iptables_log  # noqa: E402
from tcpwatch.iplog.render import render_envelope, render_fields  # noqa: E402

SAMPLES = [
    {"out": "eth0", "src": "10.0.186.75", "dst": "10.0.175.109", "len": 40, "tos": 0, "prec": 0, "ttl": 64,
     "id": 0, "df": True, "proto": "TCP", "spt": 8182, "dpt": 9366, "seq": 0, "ack": 1747027778, "window": 0,
     "res": 0, "tcp_flag_bits": 0x14, "urgp": 0},
    {"in": "eth0", "mac": "52:54:00:12:34:56:52:54:00:65:43:21:08:00", "src": "10.0.175.109", "dst": "10.0.186.75",
     "len": 60, "tos": 0, "prec": 0, "ttl": 63, "id": 54321, "df": True, "proto": "TCP", "spt": 51234, "dpt": 3306,
     "seq": 123456789, "ack": 0, "window": 64240, "res": 0, "tcp_flag_bits": 0x02, "urgp": 0,
     "tcp_opt": "020405B40402080A0001E2400000000001030307"},
    {"out": "eth0", "src": "10.0.186.75", "dst": "10.0.0.53", "len": 72, "tos": 0, "prec": 0, "ttl": 64, "id": 4242,
     "proto": "UDP", "spt": 40000, "dpt": 53, "udp_len": 52, "uid": 0, "gid": 0},
    {"out": "eth0", "src": "10.0.186.75", "dst": "10.0.175.109", "len": 96, "tos": 0, "prec": 0xC0, "ttl": 64,
     "id": 777, "proto": "ICMP", "icmp_type": 3, "icmp_code": 3, "inner_src": "10.0.175.109",
     "inner_dst": "10.0.186.75", "inner_len": 68, "inner_tos": 0, "inner_prec": 0, "inner_ttl": 63, "inner_id": 1,
     "inner_df": True, "inner_proto": "UDP", "inner_spt": 5000, "inner_dpt": 6000, "inner_udp_len": 48},
    {"in": "eth0", "mac": "52:54:00:12:34:56:52:54:00:65:43:21:86:dd", "src": "2001:db8::1", "dst": "2001:db8::2",
     "len": 60, "tc": 0, "hoplimit": 64, "flowlbl": 123456, "proto": "TCP", "spt": 443, "dpt": 55555,
     "seq": 1, "ack": 2, "window": 0, "res": 0, "tcp_flag_bits": 0x04, "urgp": 0},
]


def make_file(path: str, n: int) -> None:
    lines = []
    for i, row in enumerate(SAMPLES):
        msg = "[drds] " + render_fields(row)
        lines.append(render_envelope(msg, "syslog", ts=1_714_000_000 + i, host="vb"))
    with open(path, "w") as fh:
        block = "\n".join(lines) + "\n"
        for _ in range(n // len(lines)):
            fh.write(block)


ENV = re.compile(r"^(\w{3} +\d+ [\d:]+) (\S+) kernel: (.*?)IN=")
KV = re.compile(r"([A-Z]+)=(\S*)")


def naive_rows(path: str) -> list[dict]:
    """What a script usually does: one regex for the head, findall for KEY=value, a dict per line."""
    rows = []
    with open(path) as fh:
        for line in fh:
            m = ENV.match(line)
            if not m:
                continue
            row = dict(KV.findall(line))
            row["time"], row["host"], row["prefix"] = m.group(1), m.group(2), m.group(3)
            row["RST"] = " RST " in line
            rows.append(row)
    return rows


def naive(path: str):
    """The same, then a DataFrame. pandas 3 infers Arrow strings for every text cell of every dict:
    for 200k rows that alone takes about 2 s here, which is why this line is far below the per-line
    regex pass (the ~180k lines/s quoted for a naive parser is that pass, printed separately)."""
    import pandas as pd

    return pd.DataFrame(naive_rows(path))


def timed(func, *args):
    t0 = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - t0, result


def median_run(repeat: int, keep: bool, func, *args):
    """(median seconds, every run's seconds in order, the last result). keep: every result stays
    alive until the end (each run works in fresh memory); else each is dropped before the next run."""
    kept, times, result = [], [], None
    for _ in range(repeat):
        result = None
        seconds, result = timed(func, *args)
        times.append(seconds)
        if keep:
            kept.append(result)
    return sorted(times)[len(times) // 2], times, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=200_000, help="lines for the slow per-line parsers")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if core() is None:
        print("the C tokenizer is not built: run `make setup`", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "iptables.log")
        make_file(path, args.lines)
        os.sync()   # written back now, not by the kernel's flusher in the middle of the timed runs
        size = os.path.getsize(path)
        n = sum(1 for _ in open(path))
        parse_iptables_log(path)  # warm the page cache and imports
        t_c, c_times, (frame, report) = median_run(args.repeat, True, parse_iptables_log, path)
        assert len(frame) == n and not report.errors, report.as_dict()
        small = os.path.join(tmp, "small.log")
        with open(path) as src, open(small, "w") as dst:
            for i, line in enumerate(src):
                if i >= args.sample:
                    break
                dst.write(line)
        # The naive parsers' results are dropped between runs: their garbage-collected objects
        # would otherwise slow every later run (this favours them, never tcpwatch).
        t_naive, _, naive_frame = median_run(args.repeat, False, naive, small)
        t_rows, _, naive_list = median_run(args.repeat, False, naive_rows, small)
        t_py, (py_frame, _) = timed(lambda p: parse_iptables_log(p, engine="python"), small)
    goal = n / t_c >= 1_000_000
    print(f"tcpwatch iplog parser: median {n / t_c:,.0f} lines/s over {args.repeat} runs "
          f"(goal 1,000,000 lines/s: {'met' if goal else 'NOT met'})")
    print(f"iptables LOG parsing, {n:,} lines ({size / 1e6:.0f} MB), {os.cpu_count()} cores; every figure below "
          f"is a median of {args.repeat} runs (pure-Python reference: 1 run)")
    print(f"tcpwatch runs in order: {', '.join(f'{n / t:,.0f}' for t in c_times)} lines/s")
    print(f"{'parser':44s} {'lines/s':>12s} {'seconds':>9s} {'rows':>10s} {'columns':>8s}")
    rows = [("tcpwatch (C tokenizer -> columnar DataFrame)", n / t_c, t_c, len(frame), frame.shape[1]),
            (f"naive per-line regex -> DataFrame ({len(naive_frame) // 1000}k)", len(naive_frame) / t_naive,
             t_naive, len(naive_frame), naive_frame.shape[1]),
            (f"naive per-line regex -> dicts only ({len(naive_list) // 1000}k)", len(naive_list) / t_rows, t_rows,
             len(naive_list), len(naive_list[0]) if naive_list else 0),
            (f"tcpwatch pure-Python reference ({len(py_frame) // 1000}k)", len(py_frame) / t_py, t_py, len(py_frame),
             py_frame.shape[1])]
    for name, rate, secs, count, cols in rows:
        print(f"{name:44s} {rate:12,.0f} {secs:9.2f} {count:10,d} {cols:8d}")
    print(f"speed-up over naive: {(n / t_c) / (len(naive_frame) / t_naive):.1f}x "
          f"({(n / t_c) / (len(naive_list) / t_rows):.1f}x over its regex pass alone); "
          f"goal 1,000,000 lines/s (median): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
