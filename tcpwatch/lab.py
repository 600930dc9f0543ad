"""A private network-namespace lab: two hosts joined by a veth pair.

Used by `tcpwatch demo`, the tests, pcap generation and replay. Every namespace it makes is
deleted on every exit path (context manager, atexit, SIGTERM). Addresses come from the
benchmarking range 198.18.0.0/15 and a ULA prefix: they exist only inside the lab.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import EnvironmentProblem

CLONE_NEWNET = 0x40000000
_LIVE_LABS: set["Lab"] = set()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def netns_inode(name: str) -> int:
    """The inode number (what the kernel calls ns.inum) of a named namespace."""
    return os.stat(f"/run/netns/{name}").st_ino


def enter_netns(name: str) -> None:
    """Move the calling thread into a named network namespace (used in forked children)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def _run_in(name: str, func: Callable, args: tuple, queue) -> None:
    try:
        enter_netns(name)
        queue.put(("ok", func(*args)))
    except BaseException as err:  # report to the parent, whatever it was
        queue.put(("error", f"{type(err).__name__}: {err}"))


@dataclass(eq=False)
class Host:
    name: str          # the netns name
    v4: str
    v6: str
    ifname: str

    @property
    def inode(self) -> int:
        return netns_inode(self.name)

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True,
                              check=check, timeout=timeout)

    def popen(self, *cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)

    def call(self, func: Callable, *args: Any, timeout: float = 30) -> Any:
        """Run func(*args) in a forked child inside this namespace; return its result."""
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_in, args=(self.name, func, args, queue), daemon=True)
        proc.start()
        try:
            status, value = queue.get(timeout=timeout)
        finally:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        if status != "ok":
            raise RuntimeError(f"in {self.name}: {value}")
        return value

    def start(self, func: Callable, *args: Any) -> multiprocessing.Process:
        """Start func(*args) in a forked child inside this namespace; the caller joins it."""
        ctx = multiprocessing.get_context("fork")
        proc = ctx.Process(target=lambda: (enter_netns(self.name), func(*args)), daemon=True)
        proc.start()
        return proc


@dataclass(eq=False)
class Lab:
    """Two namespaces, `client` and `server`, joined by veth; loopback up in both."""

    prefix: str = "twlab"
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    client: Host | None = None
    server: Host | None = None
    _made: list[str] = field(default_factory=list)

    def __enter__(self) -> "Lab":
        try:
            self.create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def create(self) -> None:
        if os.geteuid() != 0:
            raise EnvironmentProblem("the namespace lab needs root", "run with sudo")
        _install_cleanup()
        _LIVE_LABS.add(self)
        c, s = f"{self.prefix}-{self.tag}-c", f"{self.prefix}-{self.tag}-s"
        for name in (c, s):
            self._made.append(name)   # first: a signal during the add must not leak the namespace
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        veth_c, veth_s = f"tw{self.tag}c", f"tw{self.tag}s"
        _ip("link", "add", veth_c, "netns", c, "type", "veth", "peer", "name", veth_s, "netns", s)
        self.client = Host(c, "198.18.0.1", "fd74:7763::1", veth_c)
        self.server = Host(s, "198.18.0.2", "fd74:7763::2", veth_s)
        for host in (self.client, self.server):
            _ip("-n", host.name, "addr", "add", f"{host.v4}/24", "dev", host.ifname)
            _ip("-n", host.name, "addr", "add", f"{host.v6}/64", "dev", host.ifname, "nodad")
            _ip("-n", host.name, "link", "set", host.ifname, "up")

    def destroy(self) -> None:
        while self._made:
            _ip("netns", "del", self._made.pop(), check=False)
        _LIVE_LABS.discard(self)

    @property
    def hosts(self) -> tuple[Host, Host]:
        return self.client, self.server


_cleanup_owner: int | None = None  # the pid that made the labs; forked children must not clean up


def _cleanup_all() -> None:
    if os.getpid() != _cleanup_owner:
        return
    for lab in list(_LIVE_LABS):
        lab.destroy()


def _install_cleanup() -> None:
    """Namespaces go away on normal exit and on SIGTERM/SIGHUP too, not only on Ctrl-C."""
    global _cleanup_owner
    if _cleanup_owner == os.getpid():
        return
    _cleanup_owner = os.getpid()
    atexit.register(_cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous in (signal.SIG_DFL, None):
            def handler(signum, frame, _sig=sig):
                _cleanup_all()
                signal.signal(_sig, signal.SIG_DFL)
                os.kill(os.getpid(), _sig)

            signal.signal(sig, handler)
