"""Conntrack enrichment against the kernel, in the lab's own namespaces (root only)."""

from __future__ import annotations

import socket
import struct
import time

import pandas as pd
import pytest

from tcpwatch.conntrack import ConntrackCache, ConntrackCaches, CtEvent, enrich

pytestmark = pytest.mark.live

TRACK_ESTABLISHED = ("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                     "-j", "ACCEPT")


def serve_then_abort(addr: str, port: int) -> None:
    """Accept one connection and reset it (SO_LINGER 0 close)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(1)
    listener.settimeout(10)
    conn, _ = listener.accept()
    conn.recv(16)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    listener.close()


def connect_until_reset(addr: str, port: int) -> int:
    """Connect, send a little, wait for the reset; return our port."""
    for _ in range(50):                     # the server process may still be starting
        conn = socket.socket()
        try:
            conn.connect((addr, port))
            break
        except ConnectionRefusedError:
            conn.close()
            time.sleep(0.05)
    local_port = conn.getsockname()[1]
    conn.sendall(b"hello")
    conn.settimeout(5)
    try:
        conn.recv(16)
    except ConnectionResetError:
        pass
    conn.close()
    return local_port


def eventually(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def reset_connection(lab, listen_port: int, connect_port: int) -> int:
    server = lab.server.start(serve_then_abort, lab.server.v4, listen_port)
    try:
        return lab.client.call(connect_until_reset, lab.server.v4, connect_port)
    finally:
        server.join(5)


def test_reset_connection_resolves_after_close_and_after_destroy(lab):
    lab.server.run(*TRACK_ESTABLISHED)
    with ConntrackCache(lab.server.name, ttl=30) as cache:
        assert cache.wait_ready(10) and cache.failure is None
        client_port = reset_connection(lab, 8001, 8001)
        reset = (socket.AF_INET, lab.server.v4, 8001, lab.client.v4, client_port)  # the RST the server sent
        closed = eventually(lambda: (e := cache.lookup(*reset, ts=time.time())) and e.ct_state == "CLOSE" and e)
        assert closed, cache.counts
        assert (closed.ct_orig_src, closed.ct_orig_sport, closed.ct_orig_dst, closed.ct_orig_dport) == (
            lab.client.v4, client_port, lab.server.v4, 8001)
        assert (closed.ct_reply_src, closed.ct_reply_sport) == (lab.server.v4, 8001)
        assert "ASSURED" in closed.ct_status and "SEEN_REPLY" in closed.ct_status
        # expiry is reaped by a lazy GC (up to a minute): delete the entry instead; the cache still answers
        lab.server.run("conntrack", "-D", "-p", "tcp", "--orig-port-src", str(client_port))
        gone = eventually(lambda: (e := cache.lookup(*reset)) and e.ct_event == CtEvent.DESTROY and e)
        assert gone and gone.ct_id == closed.ct_id and gone.ct_state == "CLOSE"
        assert cache.columns(socket.AF_INET, lab.client.v4, 1, lab.server.v4, 2)["ct_lookup"] == "no-entry"


def test_dnat_reply_tuple_shows_the_real_port(lab):
    lab.server.run(*TRACK_ESTABLISHED)
    lab.server.run("iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8002",
                   "-j", "DNAT", "--to-destination", f"{lab.server.v4}:9002")
    with ConntrackCaches(ttl=30) as caches:
        caches.watch(lab.server.inode).wait_ready(10)
        client_port = reset_connection(lab, 9002, 8002)
        # the server's RST leaves from the real port 9002; conntrack knows the client asked for 8002
        events = pd.DataFrame({"ts": [time.time()], "family": [socket.AF_INET], "saddr": [lab.server.v4],
                               "sport": [9002], "daddr": [lab.client.v4], "dport": [client_port],
                               "netns": [lab.server.inode]})
        found = eventually(lambda: enrich(events, caches).loc[0, "ct_lookup"] == "found")
        assert found, caches.get(lab.server.inode).counts
        row = enrich(events, caches).iloc[0]
        assert (row["ct_orig_dst"], row["ct_orig_dport"]) == (lab.server.v4, 8002)
        assert (row["ct_reply_src"], row["ct_reply_sport"]) == (lab.server.v4, 9002)
        assert row["ct_dir"] == "reply" and "DST_NAT" in row["ct_status"]


def test_namespace_without_conntrack_rules_gives_null_columns(lab):
    with ConntrackCaches(ttl=30) as caches:
        cache = caches.watch(lab.client.name)
        assert cache.wait_ready(10) and cache.failure is None
        client_port = reset_connection(lab, 8003, 8003)
        events = pd.DataFrame({"ts": [time.time()], "family": [socket.AF_INET], "saddr": [lab.client.v4],
                               "sport": [client_port], "daddr": [lab.server.v4], "dport": [8003],
                               "netns": [lab.client.inode]})
        row = enrich(events, caches).iloc[0]
        assert row["ct_lookup"] == "not-tracked" and not cache.tracked
        assert pd.isna(row["ct_state"]) and pd.isna(row["ct_id"]) and len(cache) == 0
