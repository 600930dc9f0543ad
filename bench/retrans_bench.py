"""Retransmit capture side by side with bcc's tcpretrans, then per-event vs --count overhead.

In a private namespace lab, the server's namespace drops a share of incoming packets at random
(iptables statistic) while the client pushes bulk data over several connections: a steady
stream of retransmits. Run 1: Debian's tcpretrans-bpfcc and `tcpwatch retrans` watch the same
traffic; both counts (they must agree) and both tools' CPU seconds are printed. Runs 2 and 3:
`tcpwatch retrans` per event, then `--count`, on the same traffic at the highest rate this
generator reaches; CPU seconds in userspace and the BPF programs' own run time (bpf_stats).

    sudo .venv/bin/python bench/retrans_bench.py [--seconds 5] [--drop 0.05] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tcpwatch.lab import Lab
from tcpwatch.scenarios.base import set_comm

PORT = 8110
TCPRETRANS = "/usr/sbin/tcpretrans-bpfcc"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _sink(addr: str, port: int, seconds: float) -> None:
    set_comm("tw-sink")
    srv = socket.create_server((addr, port), backlog=128, reuse_port=False)
    srv.settimeout(seconds + 10)
    import threading

    def drain(conn):
        try:
            while conn.recv(1 << 16):
                pass
        except OSError:
            pass

    try:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()
    except OSError:
        pass


def _push(addr: str, port: int, connections: int, seconds: float) -> int:
    set_comm("tw-push")
    import threading

    chunk = b"x" * (1 << 16)
    stop = time.monotonic() + seconds
    sent = [0] * connections

    def run(i):
        s = socket.create_connection((addr, port), timeout=5)
        try:
            while time.monotonic() < stop:
                sent[i] += s.send(chunk)
        except OSError:
            pass
        s.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def bpf_run_ns(prefix: str) -> int:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True).stdout
    return sum(p.get("run_time_ns", 0) for p in json.loads(out or "[]") if p.get("name", "").startswith(prefix))


class Tool:
    """A tool writing to files (a pipe left unread would stall it mid-run)."""

    def __init__(self, *cmd: str):
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_ready(self, marker: str, timeout: float = 60) -> None:
        stream, text = (self.err if marker.startswith("stderr:") else self.out), marker.split(":", 1)[1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stream.seek(0)
            if text in stream.read():
                return
            if self.proc.poll() is not None:
                self.err.seek(0)
                raise RuntimeError(f"{self.proc.args[0]} exited: {self.err.read()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.proc.args[0]} did not start")

    def stop(self) -> tuple[str, float]:
        cpu = cpu_seconds(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.out.seek(0)
        return self.out.read(), cpu


def traffic(lab: Lab, seconds: float, connections: int) -> tuple[int, float]:
    sink = lab.server.start(_sink, lab.server.v4, PORT, seconds)
    time.sleep(0.3)
    t0 = time.monotonic()
    sent = lab.client.call(_push, lab.server.v4, PORT, connections, seconds, timeout=seconds + 30)
    elapsed = time.monotonic() - t0
    sink.kill()
    sink.join(5)
    time.sleep(0.5)   # the last retransmits of closing connections
    return sent, elapsed


def tcpwatch(lab: Lab, *extra: str) -> Tool:
    tool = Tool(sys.executable, "-m", "tcpwatch.cli", "retrans", "--netns", lab.client.name, "--netns",
                lab.server.name, *extra)
    tool.wait_ready("stderr:tcpwatch:")
    return tool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--drop", type=float, default=0.05, help="share of the server's incoming packets dropped")
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if not os.path.exists(TCPRETRANS):
        sys.exit(f"{TCPRETRANS} missing: apt-get install bpfcc-tools")
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=False)
    with Lab(prefix="twbench") as lab:
        rule = ("INPUT", "-p", "tcp", "--dport", str(PORT), "-m", "statistic", "--mode", "random",
                "--probability", str(args.drop), "-j", "DROP")
        lab.server.run("iptables", "-A", *rule)

        # -- run 1: tcpretrans-bpfcc and tcpwatch on the same traffic -------------------------------
        bcc = Tool(TCPRETRANS)
        bcc.wait_ready("stdout:TIME")
        ours = tcpwatch(lab, "--json")
        sent, elapsed = traffic(lab, args.seconds, args.connections)
        bcc_out, bcc_cpu = bcc.stop()
        our_out, our_cpu = ours.stop()
        # bcc watches the whole host: keep the lab's lines (either end in the lab's addresses)
        lab_ends = (f" {lab.client.v4}:", f" {lab.server.v4}:")
        bcc_count = sum(1 for line in bcc_out.splitlines() if any(end in line for end in lab_ends))
        our_count = json.loads(our_out.splitlines()[-1])["summary"]["captured"]
        print(f"traffic: {args.connections} connections, {sent / elapsed / 1e6:.1f} MB/s for {elapsed:.1f}s, "
              f"{args.drop:.0%} of the server's incoming packets dropped")
        print(f"{'tool':<34} {'retransmits':>12} {'CPU s':>8}")
        print(f"{'tcpretrans-bpfcc (bcc)':<34} {bcc_count:>12} {bcc_cpu:>8.2f}")
        print(f"{'tcpwatch retrans --json':<34} {our_count:>12} {our_cpu:>8.2f}")
        print(f"counts agree: {'yes' if bcc_count == our_count else 'NO'}")

        # -- runs 2, 3: per event vs --count -----------------------------------------------------------
        print(f"\n{'tcpwatch mode':<34} {'retransmits':>12} {'rate /s':>9} {'CPU s':>8} {'BPF ms':>8}")
        for label, extra in (("per event (--json)", ("--json",)), ("--count", ("--count", "--interval", "1",
                                                                               "--json"))):
            tool = tcpwatch(lab, *extra)
            before = bpf_run_ns("tw_")
            _sent, elapsed = traffic(lab, args.seconds, args.connections)
            bpf_ms = (bpf_run_ns("tw_") - before) / 1e6
            out, cpu = tool.stop()
            summary = json.loads(out.splitlines()[-1])["summary"]
            count = summary["events"]
            print(f"{'tcpwatch retrans ' + label:<34} {count:>12} {count / elapsed:>9.0f} {cpu:>8.2f} {bpf_ms:>8.1f}")
        print("(CPU s: the tool's process, start-up and BPF compilation included; BPF ms: run time of tcpwatch's "
              "BPF programs, kernel.bpf_stats_enabled)")


if __name__ == "__main__":
    main()
