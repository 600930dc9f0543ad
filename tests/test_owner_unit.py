"""The /proc fallback for socket owners: parsing, and sockets of this very process."""

from __future__ import annotations

import os
import socket
import time

from tcpwatch.live.owners import OwnerResolver, parse_proc_net_tcp

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1591 1 0 100 0 0 10 0
   1: 020012C6:9C40 010012C6:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0 20 4 30 10 -1
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 555 1 0 20 4 30 10 -1
   1: 000074FD000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 556 1 0 100 0 0 10 0
"""


def test_parse_v4_and_v6_tables():
    v4 = parse_proc_net_tcp(TCP)
    assert v4[(("127.0.0.1", 80), ("0.0.0.0", 0))] == (1591, 0)
    assert v4[(("198.18.0.2", 40000), ("198.18.0.1", 8080))] == (777, 1000)
    v6 = parse_proc_net_tcp(TCP6)
    assert v6[(("127.0.0.1", 8080), ("127.0.0.1", 40960))] == (555, 0)     # v4-mapped shown as IPv4
    assert v6[(("fd74::1", 80), ("::", 0))] == (556, 0)


def test_resolves_own_socket_and_refuses_shared_or_gone():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    netns = os.stat("/proc/self/ns/net").st_ino
    local, remote = client.getsockname(), client.getpeername()
    resolver = OwnerResolver(refresh=0)
    owner = resolver.resolve(netns, local, remote)
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    assert owner is not None and (owner.pid, owner.comm, owner.uid) == (os.getpid(), comm, os.getuid())
    # held by two processes: no single owner, so no name
    pid = os.fork()
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    try:
        assert OwnerResolver(refresh=0).resolve(netns, local, remote) is None
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    for s in (client, conn, server):
        s.close()
    assert OwnerResolver(refresh=0).resolve(netns, local, remote) is None     # gone: no name
