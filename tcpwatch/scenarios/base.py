"""What every scenario shares: the record of what was played, and naming its processes."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

from ..lab import Lab

SERVER_COMM = "tw-server"
CLIENT_COMM = "tw-client"


def set_comm(name: str) -> None:
    """Name this process (what the kernel reports as comm), so captures can be checked."""
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


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
