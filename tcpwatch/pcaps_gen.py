"""Make the reference captures in pcaps/: real kernel behaviour recorded with tcpdump inside a
private two-namespace lab, one scenario per file, each with a sidecar of expected findings.

    python -m tcpwatch.pcaps_gen pcaps        (what `make pcaps` runs; needs root)

Traffic stays inside the lab (198.18.0.1/2, fd74:7763::1/2). Every sidecar states what a
correct analysis must find: connection states, who reset and what kind of reset, and which side
retransmitted. The tests read the captures offline and also compare counts with tshark.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .lab import Host, Lab

PORT = 8080
CLOSED_PORT = 9


@dataclass
class Scenario:
    name: str
    description: str
    run: Callable[[Lab], None]
    expected: dict = field(default_factory=dict)


# --------------------------------------------------------------- code run inside the namespaces

def _serve(addr: str, family: int, mode: str, ready) -> None:
    """Accept one connection and end it the way `mode` says; `ready` is set once it listens."""
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, PORT))
    srv.listen(4)
    srv.settimeout(10)
    ready.set()
    conn, _ = srv.accept()
    if mode == "close-unread":
        time.sleep(0.3)          # the client's data sits unread in the receive queue
        conn.close()             # -> the kernel aborts with a RST
    elif mode == "echo":
        total = 0
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                total += len(data)
            conn.sendall(str(total).encode())
        except ConnectionResetError:
            pass                 # the linger0 client aborts instead of closing
        conn.close()
    elif mode == "keep-writing":
        conn.settimeout(5)
        conn.recv(100)
        time.sleep(0.3)          # the client has closed by now
        try:
            for _ in range(3):
                conn.sendall(b"z" * 500)
                time.sleep(0.1)
        except OSError:
            pass
        conn.close()
    srv.close()


def _connect(addr: str, family: int, mode: str) -> str:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect((addr, PORT if mode != "closed-port" else CLOSED_PORT))
    except OSError as err:
        sock.close()
        return f"connect: {err.__class__.__name__}"
    if mode == "close-unread":
        sock.sendall(b"request that nobody reads\n")
        time.sleep(0.8)
    elif mode == "linger0":
        sock.sendall(b"hello\n")
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif mode == "bulk":
        sock.sendall(b"d" * 60_000)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(100)
    elif mode == "close-early":
        sock.sendall(b"hi\n")
        time.sleep(0.1)
    sock.close()
    time.sleep(0.6)
    return "done"


def _unsolicited_synack(src: str, dst: str) -> str:
    """A SYN/ACK out of the blue: the server's kernel must answer with a RST.

    scapy only crafts the bytes; the kernel of this namespace routes them through a raw socket.
    scapy's own send() would route with the interface and route tables scapy read when it was
    first imported: if the parent (e.g. an earlier test in the same pytest run) imported it in
    the root namespace, this forked child inherits those tables and sends on an interface that
    does not exist here (ENODEV)."""
    from scapy.layers.inet import IP, TCP  # lazy: heavy import

    packet = bytes(IP(src=src, dst=dst) / TCP(sport=PORT, dport=45678, flags="SA", seq=1000, ack=424242))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(packet, (dst, 0))
    time.sleep(0.5)
    return "sent"


# --------------------------------------------------------------- capture plumbing

class Tcpdump:
    """tcpdump on the client's veth, started before and stopped after a scenario."""

    def __init__(self, host: Host, path: Path):
        self.proc = host.popen("tcpdump", "-i", host.ifname, "--immediate-mode", "-U", "-Z", "root", "-n", "-s", "262144", "-w", str(path), "tcp",
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        line = b""
        while time.monotonic() < deadline and b"listening on" not in line:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("tcpdump did not start")

    def stop(self) -> None:
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _pair(lab: Lab, server_mode: str, client_mode: str, v6: bool = False) -> None:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    addr = lab.server.v6 if v6 else lab.server.v4
    server = None
    if server_mode:
        ready = multiprocessing.get_context("fork").Event()
        server = lab.server.start(_serve, addr, family, server_mode, ready)
        if not ready.wait(10):   # a fixed sleep loses this race on a loaded machine: the SYN meets a closed port
            server.kill()
            raise RuntimeError(f"the {server_mode} server in {lab.server.name} did not start listening")
    lab.client.call(_connect, addr, family, client_mode, timeout=30)
    if server:
        server.join(timeout=15)
        if server.is_alive():
            server.kill()


def _iptables(host: Host, *rule: str) -> None:
    # -w: where iptables is the legacy variant, its lock is shared by every namespace (other labs)
    host.run("iptables", "-w", "10", *rule)


# --------------------------------------------------------------- scenarios

C4, S4, C6, S6 = "198.18.0.1", "198.18.0.2", "fd74:7763::1", "fd74:7763::2"


def refused(lab):
    _pair(lab, None, "closed-port")


def refused_v6(lab):
    _pair(lab, None, "closed-port", v6=True)


def abort_unread(lab):
    _pair(lab, "close-unread", "close-unread")


def linger0(lab):
    _pair(lab, "echo", "linger0")


def iptables_reject(lab):
    _iptables(lab.server, "-A", "INPUT", "-p", "tcp", "--dport", str(PORT), "-j", "REJECT", "--reject-with",
              "tcp-reset")
    _pair(lab, None, "connect-only")


def retransmit_drops(lab):
    # the server drops its first SYN and every fourth data segment: the client retransmits both
    _iptables(lab.server, "-A", "INPUT", "-p", "tcp", "--dport", str(PORT), "--syn", "-m", "statistic", "--mode",
              "nth", "--every", "2", "--packet", "0", "-j", "DROP")
    _iptables(lab.server, "-A", "INPUT", "-p", "tcp", "--dport", str(PORT), "-m", "length", "--length", "1000:",
              "-m", "statistic", "--mode", "nth", "--every", "4", "--packet", "1", "-j", "DROP")
    lab.client.run("ip", "link", "set", lab.client.ifname, "mtu", "1500")
    _pair(lab, "echo", "bulk")


def rst_after_fin(lab):
    _pair(lab, "keep-writing", "close-early")


def unsolicited_synack(lab):
    lab.client.call(_unsolicited_synack, C4, S4, timeout=60)


SCENARIOS = [
    Scenario("refused", "connect() to a closed port: the server kernel answers the SYN with RST-ACK", refused, {
        "connections": [{"conn_state": "REJ", "history": "Sr"}],
        "resets": [{"saddr": S4, "rst_by": "responder", "rst_kind": "refused"}],
        "retransmissions": {"min": 0, "max": 0}}),
    Scenario("refused-v6", "the same refusal over IPv6", refused_v6, {
        "connections": [{"conn_state": "REJ", "history": "Sr"}],
        "resets": [{"saddr": S6, "rst_by": "responder", "rst_kind": "refused"}],
        "retransmissions": {"min": 0, "max": 0}}),
    Scenario("abort-unread", "the server closes a socket with unread data: its kernel aborts with a RST",
             abort_unread, {
                 "connections": [{"conn_state": "RSTR"}],
                 "resets": [{"saddr": S4, "rst_by": "responder", "rst_kind": "abort"}],
                 "retransmissions": {"min": 0, "max": 0}}),
    Scenario("linger0", "the client sets SO_LINGER 0 and closes: an abortive close from the originator", linger0, {
        "connections": [{"conn_state": "RSTO"}],
        "resets": [{"saddr": C4, "rst_by": "originator", "rst_kind": "abort"}],
        "retransmissions": {"min": 0, "max": 0}}),
    Scenario("iptables-reject", "iptables REJECT --reject-with tcp-reset on the server refuses the SYN",
             iptables_reject, {
                 "connections": [{"conn_state": "REJ", "history": "Sr"}],
                 "resets": [{"saddr": S4, "rst_by": "responder", "rst_kind": "refused"}],
                 "retransmissions": {"min": 0, "max": 0}}),
    # The dropped SYN is resent after a 1 s timeout: always a retransmission. A dropped data segment
    # is often resent within 3 ms of the newest segment on a veth, which tshark (and so tcpwatch)
    # calls out-of-order instead: the data resends are counted as either ("resent_min").
    Scenario("retransmit-drops", "the server drops the first SYN and some data segments; the client resends",
             retransmit_drops, {
                 "connections": [{"conn_state": "SF"}],
                 "resets": [],
                 "retransmissions": {"min": 1, "senders": [C4], "syn_retransmitted": True, "resent_min": 2}}),
    Scenario("rst-after-fin", "the client closes; the server keeps writing; the client's kernel resets",
             rst_after_fin, {
                 "connections": [{"conn_state": "RSTO"}],
                 "resets": [{"saddr": C4, "rst_by": "originator", "rst_kind": "after-fin"}],
                 "retransmissions": {"min": 0, "max": 0}}),
    Scenario("unsolicited-synack", "a SYN/ACK nobody asked for (crafted with scapy): the server resets it",
             unsolicited_synack, {
                 "resets": [{"saddr": S4, "rst_kind": "synack-reply"}],
                 "retransmissions": {"min": 0, "max": 0}}),
]


def generate(out_dir: str, only: list[str] | None = None) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for sc in SCENARIOS:
        if only and sc.name not in only:
            continue
        path = out / f"{sc.name}.pcap"
        with Lab(prefix="twpcap") as lab:
            dump = Tcpdump(lab.client, path)
            try:
                sc.run(lab)
            finally:
                dump.stop()
        os.chmod(path, 0o644)
        sidecar = {"scenario": sc.name, "description": sc.description, "capture": path.name, **sc.expected}
        (out / f"{sc.name}.expected.json").write_text(json.dumps(sidecar, indent=2) + "\n")
        made.append(path)
        print(f"pcaps: wrote {path}")
    return made


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tcpwatch.pcaps_gen OUT_DIR [SCENARIO...]", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("pcaps: needs root (network namespaces, tcpdump, iptables)", file=sys.stderr)
        return 2
    generate(argv[0], argv[1:] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
