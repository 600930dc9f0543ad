"""What every scenario shares: the record of what was played, and naming its processes."""

from __future__ import annotations

import ctypes
import multiprocessing
import socket
from dataclasses import dataclass
from typing import Callable

from ..lab import Lab

SERVER_COMM = "tw-server"
CLIENT_COMM = "tw-client"


def set_comm(name: str) -> None:
    """Name this process (what the kernel reports as comm), so captures can be checked."""
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def accept_one(addr: str, port: int, family: int, ready) -> tuple[socket.socket, socket.socket]:
    """As the scenario's server (named SERVER_COMM): listen, signal ready, accept one connection.
    Returns (listener, connection)."""
    set_comm(SERVER_COMM)
    listener = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(8)
    ready.set()
    conn, _ = listener.accept()
    return listener, conn


def play_with_server(lab: Lab, server: Callable, port: int, family: int, mode: str, client: Callable) -> Played:
    """Start server(addr, port, family, ready, done, mode) in lab.server; once it listens, run
    client(addr, port, family, done) here and return what was played. done is set when the
    client returns (it may set it earlier); the server is killed if it outlives the scenario."""
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    addr = lab.server.v4 if family == 4 else lab.server.v6
    proc = lab.server.start(server, addr, port, family, ready, done, mode)
    try:
        if not ready.wait(5):
            raise RuntimeError(f"{mode} scenario: the server did not start")
        client_port = client(addr, port, family, done)
        done.set()
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
    return Played(mode, port, client_port, proc.pid, family)


@dataclass
class Played:
    name: str
    server_port: int
    client_port: int | None = None
    server_pid: int | None = None
    family: int = 4


@dataclass
class Scenario:
    name: str
    title: str
    play: Callable[[Lab], Played]
