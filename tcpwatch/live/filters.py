"""Kernel-side filters: validated here, handed to BPF only as map entries and 0/1 constants."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ..errors import UsageProblem


@dataclass(frozen=True)
class Filters:
    ports: frozenset[int] = frozenset()
    hosts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    netns: frozenset[int] = frozenset()
    direction: str | None = None   # "sent" | "received" | None

    @classmethod
    def parse(cls, ports=(), hosts=(), netns=(), direction=None) -> "Filters":
        return cls(frozenset(_port(p) for p in ports), tuple(_host(h) for h in hosts),
                   frozenset(_netns(n) for n in netns), _direction(direction))


def _port(value) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise UsageProblem(f"--port {value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise UsageProblem(f"--port {port} is outside 0-65535")
    return port


def _host(value) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise UsageProblem(f"--host {value!r} is not an address or ADDR/PREFIX",
                           "e.g. --host 10.0.0.5, --host 10.0.0.0/8, --host 2001:db8::/32") from None


def _netns(value) -> int:
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if "/" in text or not text:
        raise UsageProblem(f"--netns {text!r} is neither an inode number nor a name from `ip netns`")
    path = f"/run/netns/{text}"
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        raise UsageProblem(f"--netns {text!r}: no such namespace", "see `ip netns list`") from None


def _direction(value) -> str | None:
    if value in (None, "sent", "received"):
        return value
    raise UsageProblem(f"--direction {value!r}: use sent or received")


def lpm_key(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, bytes]:
    """(prefixlen, data) for the f_hosts trie: the family byte counts as 8 prefix bits."""
    family = 4 if net.version == 4 else 6
    data = bytes([family]) + net.network_address.packed.ljust(16, b"\0")
    return 8 + net.prefixlen, data


def fill_maps(bpf, filters: Filters) -> None:
    """Load the filter maps of a compiled program."""
    import ctypes as ct

    one = ct.c_uint8(1)
    if filters.netns:
        table = bpf[b"f_netns"]
        for inode in filters.netns:
            table[ct.c_uint32(inode)] = one
    if filters.ports:
        table = bpf[b"f_ports"]
        for port in filters.ports:
            table[ct.c_uint16(port)] = one
    if filters.hosts:
        table = bpf[b"f_hosts"]
        for net in filters.hosts:
            prefixlen, data = lpm_key(net)
            key = table.Key()
            key.prefixlen = prefixlen
            ct.memmove(ct.addressof(key) + 4, data, len(data))
            table[key] = one


__all__ = ["Filters", "fill_maps", "lpm_key"]
