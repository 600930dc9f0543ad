"""A minimal nfnetlink_log (NFLOG) listener: the packets an `-j NFLOG` rule hands to user space.

Hand-written because no installed library speaks NFNL_SUBSYS_ULOG (pyroute2 only names the
constant; the PyPI bindings need libnetfilter_log). Wire format: include/uapi/linux/netfilter/
nfnetlink_log.h and nfnetlink.h. The socket belongs to the network namespace it was created in,
so the caller creates it inside the namespace whose rules it wants to hear.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
SO_RCVBUFFORCE = 33

# config attributes and commands
CFG_CMD, CFG_MODE, CFG_QTHRESH = 1, 2, 5
CMD_BIND, CMD_PF_BIND = 1, 3
COPY_PACKET = 2

# packet attributes
ATTR = {1: "packet_hdr", 4: "indev", 5: "outdev", 9: "payload", 10: "prefix"}

# netfilter hook numbers (NF_INET_*) -> the built-in chain that runs there
HOOKS = {0: "PREROUTING", 1: "INPUT", 2: "FORWARD", 3: "OUTPUT", 4: "POSTROUTING"}

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")


@dataclass(frozen=True)
class LoggedPacket:
    prefix: str
    chain: str         # from the hook: PREROUTING, INPUT, ...
    hw_protocol: int   # ethertype (0x0800 IPv4, 0x86dd IPv6)
    payload: bytes     # from the network header on


def _attr(kind: int, value: bytes) -> bytes:
    raw = _NLATTR.pack(_NLATTR.size + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, pos)
        if length < _NLATTR.size:
            break
        out[kind & 0x3FFF] = data[pos + _NLATTR.size: pos + length]
        pos += (length + 3) & ~3
    return out


class NflogSocket:
    """Bound to one NFLOG group, copying whole packets. Use as a context manager."""

    def __init__(self, group: int, rcvbuf: int = 8 << 20):
        self.group = group
        self.lost = 0          # messages the kernel dropped because our buffer was full (ENOBUFS)
        self._seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((0, 0))
            for family in (socket.AF_INET, socket.AF_INET6):   # a no-op on kernels >= 3.17, needed before
                self._config(family, 0, _attr(CFG_CMD, bytes([CMD_PF_BIND])), check=False)
            self._config(socket.AF_UNSPEC, group, _attr(CFG_CMD, bytes([CMD_BIND])))
            self._config(socket.AF_UNSPEC, group, _attr(CFG_MODE, struct.pack("!IBB", 0xFFFF, COPY_PACKET, 0)))
            self._config(socket.AF_UNSPEC, group, _attr(CFG_QTHRESH, struct.pack("!I", 1)))
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> "NflogSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _config(self, family: int, group: int, attrs: bytes, check: bool = True) -> None:
        self._seq += 1
        body = _NFGENMSG.pack(family, 0, group) + attrs
        msg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK,
                                      self._seq, 0) + body)
        reply = self.sock.recv(65536)
        _len, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(reply)
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", reply, _NLMSGHDR.size)[0]
            if code and check:
                raise OSError(code, f"NFLOG group {group}: {os.strerror(code)}")

    def read(self, timeout: float) -> list[LoggedPacket]:
        """What arrived within `timeout` seconds (0: only what is queued now)."""
        self.sock.settimeout(timeout if timeout > 0 else None)
        if timeout <= 0:
            self.sock.setblocking(False)
        try:
            data = self.sock.recv(1 << 20)
        except (BlockingIOError, socket.timeout):
            return []
        except OSError as err:
            if err.errno == errno.ENOBUFS:
                self.lost += 1
                return []
            raise
        return list(self._packets(data))

    def _packets(self, data: bytes):
        pos = 0
        while pos + _NLMSGHDR.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, pos)
            if length < _NLMSGHDR.size:
                break
            if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                attrs = _attrs(data[pos + _NLMSGHDR.size + _NFGENMSG.size: pos + length])
                hw_protocol, hook = struct.unpack_from("!HB", attrs.get(1, b"\0\0\0\0"))
                yield LoggedPacket(prefix=attrs.get(10, b"").split(b"\0", 1)[0].decode("utf-8", "replace"),
                                   chain=HOOKS.get(hook, str(hook)), hw_protocol=hw_protocol,
                                   payload=attrs.get(9, b""))
            pos += (length + 3) & ~3
