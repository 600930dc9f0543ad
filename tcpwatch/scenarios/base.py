"""What every scenario shares: the record of what was played, and naming its processes."""

from __future__ import annotations

import ctypes
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
