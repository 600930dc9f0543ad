"""Retransmit and lifecycle scenarios: packets dropped after the handshake, SYNs dropped, a
client aborting with RST, an orderly active close by the client. Each is bounded to a few
seconds: drops end through TCP_USER_TIMEOUT or a connect timeout, never tcp_retries2's minutes."""

from __future__ import annotations

import multiprocessing
import socket
import struct
import time

from ..lab import Host, Lab
from .base import CLIENT_COMM, Played, Scenario, accept_one, play_with_server, set_comm
from .resets import _connect

DROP_PORT = 8101
SYN_DROP_PORT = 8102
ABORT_PORT = 8103
CLOSE_PORT = 8104
TCP_USER_TIMEOUT = 18  # socket option number (linux/tcp.h)


def _drop_rule(port: int, syn_only: bool = False) -> tuple[str, ...]:
    return ("INPUT", "-p", "tcp", *(("--syn",) if syn_only else ()), "--dport", str(port), "-j", "DROP")


class _Dropping:
    """An iptables DROP rule in a host's namespace for the scenario's duration (ip6tables too)."""

    def __init__(self, host: Host, rule: tuple[str, ...]):
        self.host, self.rule = host, rule

    def __enter__(self):
        for tool in ("iptables", "ip6tables"):
            self.host.run(tool, "-A", *self.rule)
        return self

    def __exit__(self, *exc):
        for tool in ("iptables", "ip6tables"):
            self.host.run(tool, "-D", *self.rule, check=False)


def _server(addr: str, port: int, family: int, ready, done, mode: str) -> None:
    """Accept one connection; then hold it (until done), read it to EOF and close, or wait
    for the peer's RST."""
    s, conn = accept_one(addr, port, family, ready)
    conn.settimeout(8)
    try:
        if mode == "hold":
            done.wait(10)
        else:               # "eof" and "abort": read until the client closes or resets
            while conn.recv(4096):
                pass
    except (ConnectionResetError, socket.timeout):
        pass
    conn.close()
    s.close()


def _serve(lab: Lab, port: int, family: int, mode: str, client, *args) -> Played:
    """Run the server in lab.server and client(addr, port, family, done, *args) in lab.client."""
    return _serve_local(lab, port, family, mode, lambda *a: lab.client.call(client, *a), *args)


def _serve_local(lab: Lab, port: int, family: int, mode: str, client, *args) -> Played:
    """Run the server in lab.server and client(addr, port, family, done, *args) here."""
    return play_with_server(lab, _server, port, family, mode,
                            lambda addr, port, family, done: client(addr, port, family, done, *args))


def _client_until_timeout(addr: str, port: int, family: int, done, server: Host, timeout_ms: int,
                          connected=None, go=None) -> int:
    set_comm(CLIENT_COMM)
    s = _connect(addr, port, family)
    s.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, timeout_ms)
    local = s.getsockname()[1]
    if connected is not None:    # the caller starts watching only now: the socket predates it
        connected.put(local)
        go.wait(10)
    with _Dropping(server, _drop_rule(port)):
        s.sendall(b"x" * 100)
        s.settimeout(timeout_ms / 1000 + 3)
        try:
            s.recv(1)       # TCP gives up after timeout_ms: ETIMEDOUT
        except OSError:
            pass
    s.close()
    return local


def dropped_after_handshake(lab: Lab, family: int = 4, timeout_ms: int = 2600) -> Played:
    """The server's namespace drops every packet of the connection once it is established: the
    client retransmits its data with growing gaps until TCP_USER_TIMEOUT ends the connection."""
    return _serve(lab, DROP_PORT, family, "hold", _client_until_timeout, lab.server, timeout_ms)


def dropped_preexisting(lab: Lab, on_connected, timeout_ms: int = 1500) -> Played:
    """As dropped_after_handshake, but on_connected(client_port) runs once the connection is up
    and before any drop: a capture started there sees sockets it did not see being made."""
    ctx = multiprocessing.get_context("fork")
    connected, go = ctx.Queue(), ctx.Event()

    def client(addr, port, family, done):
        return _client_until_timeout(addr, port, family, done, lab.server, timeout_ms, connected, go)

    def started(addr, port, family, done):
        proc = lab.client.start(client, addr, port, family, done)
        port = None
        try:
            port = connected.get(timeout=10)
            on_connected(port)
        finally:
            go.set()
            proc.join(timeout_ms / 1000 + 8)
        return port

    return _serve_local(lab, DROP_PORT, 4, "hold", started)


def _client_syn(addr: str, port: int, family: int, timeout: float) -> int:
    set_comm(CLIENT_COMM)
    s = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("", 0))
    local = s.getsockname()[1]
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
    except OSError:
        pass
    s.close()
    return local


def syn_dropped(lab: Lab, family: int = 4, timeout: float = 1.6) -> Played:
    """The server's namespace drops SYNs: the client retransmits its SYN (after 1 s) until the
    connect timeout."""
    addr = lab.server.v4 if family == 4 else lab.server.v6
    with _Dropping(lab.server, _drop_rule(SYN_DROP_PORT, syn_only=True)):
        port = lab.client.call(_client_syn, addr, SYN_DROP_PORT, family, timeout)
    return Played("syn-dropped", SYN_DROP_PORT, port, None, family)


def _client_abort(addr: str, port: int, family: int, done) -> int:
    set_comm(CLIENT_COMM)
    s = _connect(addr, port, family)
    local = s.getsockname()[1]
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()           # RST to the server, received there in softirq on the client's CPU time
    return local


def client_abort(lab: Lab, family: int = 4) -> Played:
    """The client closes with SO_LINGER 0: the server (known pid, comm tw-server) receives a RST."""
    return _serve(lab, ABORT_PORT, family, "abort", _client_abort)


def _client_close(addr: str, port: int, family: int, done) -> int:
    set_comm(CLIENT_COMM)
    s = _connect(addr, port, family)
    local = s.getsockname()[1]
    s.sendall(b"bye")
    time.sleep(0.1)
    s.close()           # FIN first: the client closes actively
    time.sleep(0.3)     # the server reads EOF and closes: the client reaches TIME_WAIT
    return local


def active_close(lab: Lab, family: int = 4) -> Played:
    """An orderly close the client starts: client FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT, server
    CLOSE_WAIT -> LAST_ACK -> CLOSE."""
    return _serve(lab, CLOSE_PORT, family, "eof", _client_close)


SCENARIOS: list[Scenario] = [
    Scenario("active-close", "the client closes first (FIN)", active_close),
    Scenario("client-abort", "the client aborts with RST (SO_LINGER 0)", client_abort),
    Scenario("syn-dropped", "SYNs dropped by the server's firewall", syn_dropped),
    Scenario("dropped", "every packet dropped after the handshake", dropped_after_handshake),
]
