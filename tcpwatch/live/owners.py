"""Owners of sockets the BPF owner map does not know (made before tcpwatch started), from /proc.

A socket is found by its namespace and endpoints in /proc/<pid>/net/tcp{,6} of a process in
that namespace, which gives its inode; the process holding `socket:[inode]` in /proc/*/fd is
the owner. Both tables are cached and re-read at most once a second, on a miss. A socket that
is gone, a TIME_WAIT entry (inode 0) or an inode held by several processes resolves to None:
no name rather than a wrong one. A snapshot taken at start keeps the owners of sockets that
existed then, for events that arrive after their socket has closed.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass

Endpoint = tuple[str, int]

# Where the socket's own (local) endpoint sits in each kind of event.
LOCAL_IS_DESTINATION = {"reset-received", "wire-in"}
RESOLVABLE = {"reset-sent", "reset-received", "retransmit", "state-change"}


@dataclass(frozen=True)
class Owner:
    pid: int
    comm: str
    uid: int


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # /proc prints IPv6 as four 32-bit words, each in host (little-endian) order
    words = struct.unpack("<4I", raw)
    addr = socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))
    return addr.removeprefix("::ffff:") if addr.startswith("::ffff:") and "." in addr else addr


def _endpoint(text: str) -> Endpoint:
    addr, port = text.split(":")
    return _hex_address(addr), int(port, 16)


def parse_proc_net_tcp(text: str) -> dict[tuple[Endpoint, Endpoint], tuple[int, int]]:
    """(local, remote) -> (inode, uid) for every line of /proc/net/tcp or tcp6 text."""
    out = {}
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        out[(_endpoint(cols[1]), _endpoint(cols[2]))] = (int(cols[9]), int(cols[7]))
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _netns_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


class OwnerResolver:
    def __init__(self, refresh: float = 1.0, now=time.monotonic):
        self.refresh = refresh
        self._now = now
        self._ns_pid: dict[int, int] = {}          # netns inode -> a pid living in it
        self._holders: dict[int, set[int]] = {}    # socket inode -> pids holding it
        self._holders_at = float("-inf")
        self._snapshot: dict[tuple[int, Endpoint, Endpoint], Owner | None] = {}

    # -- tables ---------------------------------------------------------------------------
    def _scan_holders(self) -> None:
        holders: dict[int, set[int]] = {}
        self._ns_pid = {}
        for pid in _pids():
            ns = _netns_of(pid)
            if ns is not None:
                self._ns_pid.setdefault(ns, pid)
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    holders.setdefault(int(link[8:-1]), set()).add(pid)
        self._holders = holders
        self._holders_at = self._now()

    def _sockets(self, netns: int) -> dict[tuple[Endpoint, Endpoint], tuple[int, int]]:
        pid = self._ns_pid.get(netns)
        table: dict = {}
        if pid is None:
            return table
        for name in ("tcp", "tcp6"):
            text = _read(f"/proc/{pid}/net/{name}")
            if text:
                table.update(parse_proc_net_tcp(text))
        return table

    def _owner(self, inode: int, uid: int) -> Owner | None:
        pids = self._holders.get(inode, set())   # /proc/<pid> entries are processes, not threads
        if len(pids) != 1:
            return None          # unknown, or shared by several processes: no single owner
        pid = next(iter(pids))
        comm = (_read(f"/proc/{pid}/comm") or "").strip()
        return Owner(pid, comm, uid) if comm else None

    def _lookup_live(self, netns: int, local: Endpoint, remote: Endpoint) -> Owner | None:
        entry = self._sockets(netns).get((local, remote))
        if entry is None or entry[0] == 0:
            return None
        inode, uid = entry
        if inode not in self._holders and self._now() - self._holders_at >= self.refresh:
            self._scan_holders()
        return self._owner(inode, uid)

    # -- API --------------------------------------------------------------------------------
    def snapshot(self, netns: set[int] | frozenset[int] = frozenset()) -> None:
        """Remember the owner of every socket that exists now (in these namespaces, or all)."""
        self._scan_holders()
        for ns in (netns or list(self._ns_pid)):
            for (local, remote), (inode, uid) in self._sockets(ns).items():
                if inode:
                    self._snapshot[(ns, local, remote)] = self._owner(inode, uid)

    def resolve(self, netns: int, local: Endpoint, remote: Endpoint) -> Owner | None:
        if netns not in self._ns_pid and self._now() - self._holders_at >= self.refresh:
            self._scan_holders()
        owner = self._lookup_live(netns, local, remote)
        if owner is None:
            # gone by now, but it existed when tcpwatch started
            owner = self._snapshot.get((netns, local, remote))
        return owner

    def fill(self, frame):
        """Name the owner where the kernel side could not (pid null, a socket known)."""
        import pandas as pd

        if frame is None or frame.empty:
            return frame
        todo = (frame["pid"].isna() & frame["sk"].notna() & frame["netns"].notna()
                & frame["kind"].isin(list(RESOLVABLE))).fillna(False)
        if not todo.any():
            return frame
        frame = frame.copy()
        for i in frame.index[todo.to_numpy()]:
            row = frame.loc[i]
            src, dst = (row["saddr"], int(row["sport"])), (row["daddr"], int(row["dport"]))
            local, remote = (dst, src) if row["kind"] in LOCAL_IS_DESTINATION else (src, dst)
            owner = self.resolve(int(row["netns"]), local, remote)
            if owner is not None:
                frame.loc[i, ["pid", "comm", "uid", "owner_from"]] = [owner.pid, owner.comm, owner.uid, "proc"]
        return frame.astype({"pid": "Int64", "uid": "Int64", "comm": "string", "owner_from": "string"})


__all__ = ["OwnerResolver", "Owner", "parse_proc_net_tcp"]
