"""Find a network namespace from what events carry (an inode) or what people type (an `ip netns` name).

A namespace is held by an open file descriptor once found: the fd keeps it alive and lets a thread
setns() into it even after the process that owned it (the /proc/<pid>/ns/net path) has gone.
"""

from __future__ import annotations

import ctypes
import glob
import os
import subprocess
from dataclasses import dataclass

from ..errors import EnvironmentProblem, UsageProblem

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"


def own_netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


@dataclass(frozen=True, slots=True)
class NetnsRef:
    """A resolved namespace: its inode, a path that named it, and a label for messages.

    path is None for the namespace this process already runs in (nothing to enter)."""

    inode: int
    path: str | None
    label: str


def resolve_netns(netns: str | int | None) -> NetnsRef:
    """An `ip netns` name, a path to a netns file, an inode number, or None (our own namespace)."""
    own = own_netns_inode()
    if netns is None:
        return NetnsRef(own, None, "host")
    if isinstance(netns, str) and not netns.isdigit():
        path = netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)
        try:
            inode = os.stat(path).st_ino
        except OSError as err:
            raise UsageProblem(f"network namespace {netns!r} not found ({err.strerror})",
                               "list them with `ip netns`") from None
        return NetnsRef(inode, None if inode == own else path, netns)
    inode = int(netns)
    if inode == own:
        return NetnsRef(own, None, "host")
    path = find_netns_path(inode)
    if path is None:
        raise UsageProblem(f"no network namespace with inode {inode} (it may have been deleted)")
    return NetnsRef(inode, path, os.path.basename(path) if path.startswith(NETNS_RUN_DIR) else f"netns:{inode}")


def find_netns_path(inode: int) -> str | None:
    """A path naming the namespace with this inode: a bind mount under /run/netns, else a process's."""
    for path in sorted(glob.glob(os.path.join(NETNS_RUN_DIR, "*"))):
        if _inode_of(path) == inode:
            return path
    for path in glob.glob("/proc/[0-9]*/ns/net"):
        if _inode_of(path) == inode:
            return path
    return None


def _inode_of(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:  # a process exited while we scanned, or no permission
        return None


def open_netns(ref: NetnsRef) -> int | None:
    """An fd holding the namespace (None for our own), checked to still be the same inode."""
    if ref.path is None:
        return None
    try:
        fd = os.open(ref.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise UsageProblem(f"cannot open network namespace {ref.label}: {err.strerror}") from None
    if os.fstat(fd).st_ino != ref.inode:  # a pid was reused between resolve and open
        os.close(fd)
        raise UsageProblem(f"network namespace {ref.label} went away")
    return fd


def enter_netns_fd(fd: int) -> None:
    """Move the calling thread (only) into the namespace held by fd."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise EnvironmentProblem(f"setns into a network namespace failed: {os.strerror(err)}", "run as root")


def fd_path(fd: int | None) -> str | None:
    """A path other programs (nsenter) can open to reach the namespace held by fd."""
    return None if fd is None else f"/proc/{os.getpid()}/fd/{fd}"


def run_in_netns(fd: int | None, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """Run a command inside the namespace held by fd (our own when None)."""
    path = fd_path(fd)
    argv = ["nsenter", f"--net={path}", *cmd] if path else list(cmd)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
