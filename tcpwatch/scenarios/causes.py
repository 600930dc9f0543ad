"""Scenarios for the causes only the wire, conntrack or a timer can explain: a firewall's REJECT,
an unsolicited SYN/ACK, a reset arriving after conntrack forgot the connection, a dead peer
found by keepalive. Each runs between lab.client and lab.server in a few seconds at most."""

from __future__ import annotations

import multiprocessing
import socket
import struct
import time

from ..lab import Lab
from .base import CLIENT_COMM, Played, Scenario, accept_one, set_comm
from .resets import _refused_client

REJECT_PORT = 8090
SYNACK_PORT = 8091
LATE_PORT = 8092
KEEPALIVE_PORT = 8093
RETRANSMIT_PORT = 8094
REJECT_RULE = ("-A", "INPUT", "-p", "tcp", "--dport", str(REJECT_PORT), "-j", "REJECT", "--reject-with", "tcp-reset")
# A stateful ruleset: what turns a late reset into an INVALID drop
STATEFUL = (("-A", "INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
            ("-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"),
            ("-A", "INPUT", "-p", "tcp", "--syn", "-j", "ACCEPT"))


def firewall_reject(lab: Lab) -> Played:
    """iptables REJECT --reject-with tcp-reset on the server: netfilter, not TCP, answers the SYN.
    The rule stays (it only concerns REJECT_PORT) so its counters can still be read afterwards."""
    lab.server.run("iptables", *REJECT_RULE)
    port = lab.client.call(_refused_client, lab.server.v4, REJECT_PORT, 4)
    return Played("firewall-reject", REJECT_PORT, port)


def _send_synack(src: str, dst: str, sport: int, dport: int) -> None:
    # scapy only builds the bytes; a raw socket opened here, inside the lab namespace, sends them.
    # (scapy's own send() routes with the tables it read when first imported, which in a forked
    # child may be the parent namespace's: the send then fails with ENODEV.)
    from scapy.layers.inet import IP, TCP  # lazy: scapy takes a second to import

    set_comm(CLIENT_COMM)
    packet = bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="SA", seq=1000, ack=424242))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(packet, (dst, 0))


def unsolicited_synack(lab: Lab) -> Played:
    """A SYN/ACK the server never asked for (what a spoofed-source scan looks like to its victim),
    from the client's port SYNACK_PORT to the server's port 45678."""
    lab.client.call(_send_synack, lab.client.v4, lab.server.v4, SYNACK_PORT, 45678, timeout=60)
    time.sleep(0.2)
    return Played("unsolicited-synack", server_port=45678, client_port=SYNACK_PORT)


def _hold_server(addr: str, port: int, ready, done) -> None:
    s, conn = accept_one(addr, port, 4, ready)
    done.wait(15)
    conn.close()
    s.close()


def _client(addr: str, port: int, connected, go, mode: str, result) -> None:
    set_comm(CLIENT_COMM)
    s = socket.create_connection((addr, port), timeout=5)
    if mode == "keepalive":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    if mode == "user-timeout":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1500)   # give up after 1.5 s
    result.value = s.getsockname()[1]
    connected.set()
    go.wait(10)
    if mode == "abort":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif mode == "keepalive":
        s.settimeout(8)
        try:
            s.recv(1)           # returns when keepalive gives up: ETIMEDOUT
        except OSError:
            pass
    elif mode == "user-timeout":
        s.settimeout(8)
        try:
            s.sendall(b"x" * 1000)   # never acknowledged: retransmitted until the timeout
            s.recv(1)                # fails with ETIMEDOUT when the kernel gives up
        except OSError:
            pass
    s.close()


def _connected_pair(lab: Lab, port: int, mode: str, between) -> Played:
    """Client and server connected; between(lab, client_port) runs; then the client acts (mode)."""
    ctx = multiprocessing.get_context("fork")
    ready, done, connected, go = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
    client_port = ctx.Value("i", 0)
    server = lab.server.start(_hold_server, lab.server.v4, port, ready, done)
    client = None
    try:
        if not ready.wait(5):
            raise RuntimeError(f"{mode}: the server did not start")
        client = lab.client.start(_client, lab.server.v4, port, connected, go, mode, client_port)
        if not connected.wait(5):
            raise RuntimeError(f"{mode}: the client did not connect")
        between(lab, client_port.value)
        go.set()
        client.join(12)
    finally:
        done.set()
        for proc in (client, server):
            if proc is not None:
                proc.join(3)
                if proc.is_alive():
                    proc.kill()
    return Played(mode, port, client_port.value, server.pid)


def late_after_close(lab: Lab) -> Played:
    """The server's conntrack forgets an open connection; then the client resets it: the server's
    stateful ruleset drops that RST as INVALID, so no socket ever sees it."""
    for rule in STATEFUL:
        lab.server.run("iptables", *rule)

    def forget(lab: Lab, client_port: int) -> None:
        lab.server.run("conntrack", "-D", "-p", "tcp", "--orig-port-src", str(client_port), check=False)

    try:
        return _connected_pair(lab, LATE_PORT, "abort", forget)
    finally:
        for rule in STATEFUL:
            lab.server.run("iptables", "-D", *rule[1:], check=False)


def _vanish_server(port: int):
    """iptables rules that make the server silent on port: nothing in, nothing out."""
    return (("-I", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"),
            ("-I", "OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"))


def _with_vanished_server(lab: Lab, port: int, mode: str) -> Played:
    drops = _vanish_server(port)

    def vanish(lab: Lab, _client_port: int) -> None:
        for rule in drops:
            lab.server.run("iptables", *rule)

    try:
        return _connected_pair(lab, port, mode, vanish)
    finally:
        for rule in drops:
            lab.server.run("iptables", "-D", *rule[1:], check=False)


def retransmit_timeout(lab: Lab) -> Played:
    """The server vanishes while the client sends: its data is retransmitted until
    TCP_USER_TIMEOUT (1.5 s) runs out and the kernel closes the socket with ETIMEDOUT. No RST."""
    return _with_vanished_server(lab, RETRANSMIT_PORT, "user-timeout")


def keepalive_timeout(lab: Lab) -> Played:
    """The server vanishes (its namespace drops everything): the client's keepalive probes go
    unanswered and its kernel resets the connection (about 3 s: idle 1 s, 2 probes 1 s apart)."""
    return _with_vanished_server(lab, KEEPALIVE_PORT, "keepalive")


SCENARIOS: list[Scenario] = [
    Scenario("firewall-reject", "iptables REJECT --reject-with tcp-reset refuses the SYN", firewall_reject),
    Scenario("unsolicited-synack", "a SYN/ACK nobody asked for", unsolicited_synack),
    Scenario("late-after-close", "a RST after the server's conntrack forgot the connection", late_after_close),
    Scenario("keepalive-timeout", "keepalive finds the peer gone", keepalive_timeout),
    Scenario("retransmit-timeout", "data never acknowledged: the kernel gives up (no RST)", retransmit_timeout),
]
