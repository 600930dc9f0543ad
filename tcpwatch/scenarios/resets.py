"""Reset scenarios: a refused connection, a close with unread data, an SO_LINGER 0 close."""

from __future__ import annotations

import socket
import struct
import time

from ..lab import Lab
from .base import CLIENT_COMM, Played, Scenario, accept_one, play_with_server, set_comm

CLOSED_PORT = 9  # nothing listens there in a fresh namespace


def _connect(addr: str, port: int, family: int, timeout: float = 3.0) -> socket.socket:
    s = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect((addr, port))
            return s
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _refused_client(addr: str, port: int, family: int) -> int:
    set_comm(CLIENT_COMM)
    s = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((addr, port))
    except ConnectionRefusedError:
        pass
    local = s.getsockname()[1]
    s.close()
    return local


def refused(lab: Lab, family: int = 4) -> Played:
    """SYN to a port nobody listens on: the server's stack answers RST (NO_SOCKET)."""
    addr = lab.server.v4 if family == 4 else lab.server.v6
    port = lab.client.call(_refused_client, addr, CLOSED_PORT, family)
    return Played("refused", CLOSED_PORT, port, None, family)


def _server(addr: str, port: int, family: int, ready, done, mode: str) -> None:
    s, conn = accept_one(addr, port, family, ready)
    if mode == "unread":
        done.wait(5)            # the client's bytes are queued, unread
        conn.close()            # close with unread data: the kernel aborts with RST
    elif mode == "linger":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        done.wait(5)
        conn.close()            # SO_LINGER 0: close aborts with RST
    s.close()


def _client_send_and_wait(addr: str, port: int, family: int, payload: bytes, done_flag, wait: float) -> int:
    set_comm(CLIENT_COMM)
    s = _connect(addr, port, family)
    local = s.getsockname()[1]
    if payload:
        s.sendall(payload)
    time.sleep(0.1)
    done_flag.set()
    s.settimeout(wait)
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return local


def _play_server_close(lab: Lab, mode: str, port: int, family: int, payload: bytes) -> Played:
    return play_with_server(lab, _server, port, family, mode, lambda addr, port, family, done: lab.client.call(
        _client_send_and_wait, addr, port, family, payload, done, 2.0))


def unread_data(lab: Lab, family: int = 4) -> Played:
    """The server closes while the client's request sits unread: RST (TCP_ABORT_ON_CLOSE)."""
    return _play_server_close(lab, "unread", 8081, family, b"GET / HTTP/1.0\r\n\r\n")


def linger_zero(lab: Lab, family: int = 4) -> Played:
    """The server sets SO_LINGER {on, 0} and closes: an abortive close, RST instead of FIN."""
    return _play_server_close(lab, "linger", 8082, family, b"")


SCENARIOS: list[Scenario] = [
    Scenario("refused", "connect to a closed port", refused),
    Scenario("unread", "server closes with unread data", unread_data),
    Scenario("linger", "server closes with SO_LINGER 0", linger_zero),
]
