"""The process behind each socket: recorded in process context, named in softirq."""

from __future__ import annotations

import pandas as pd
import pytest

from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
from tcpwatch.live.owners import OwnerResolver
from tcpwatch.scenarios import CLIENT_COMM, SERVER_COMM, unread_data
from tcpwatch.scenarios.lifecycle import client_abort, dropped_preexisting

pytestmark = pytest.mark.live


@pytest.fixture(params=["lock", "softirq-depth"])
def context(request, monkeypatch):
    """Whether the on-CPU task acts on a socket: read from the socket's lock (where BTF gives its
    offset, as here), or from the softirq depth the core probes keep (the fallback)."""
    if request.param == "softirq-depth":
        import tcpwatch.live.probes as probes

        monkeypatch.setattr(probes, "context_from_lock", lambda _facts: False)
    return request.param


def events(lab, play, groups=("resets",)):
    with Capture(Filters.parse(netns=[lab.client.name, lab.server.name]), groups=groups) as cap:
        played = play(lab)
        frames = list(cap.batches(0.5))
    return played, pd.concat(frames, ignore_index=True)


def one(frame, kind, netns):
    rows = frame[(frame["kind"] == kind) & (frame["netns"] == netns)]
    assert len(rows) == 1, frame.to_string()
    return rows.iloc[0]


def test_server_resets_sent_and_received_name_the_server(lab, context):
    # the reset it sends when it closes with unread data (process context: close())
    played, frame = events(lab, unread_data)
    sent = one(frame, "reset-sent", lab.server.inode)
    assert (sent["pid"], sent["comm"], sent["owner_from"]) == (played.server_pid, SERVER_COMM, "task")
    # the reset it receives from the client: handled in softirq while the client's close() is
    # on the CPU; the server is named from the owner map, never the client
    played, frame = events(lab, client_abort)
    received = one(frame, "reset-received", lab.server.inode)
    assert (received["pid"], received["comm"]) == (played.server_pid, SERVER_COMM)
    assert received["owner_from"] == "recorded" and received["comm"] != CLIENT_COMM
    assert (received["sport"], received["dport"]) == (played.client_port, played.server_port)


def test_owner_of_a_socket_made_before_the_capture_comes_from_proc(lab):
    """Retransmits fire in timer softirq on a socket the owner map never saw being made: the
    userspace fallback finds it through /proc while the connection still exists."""
    import threading

    frames, threads = [], []

    def read(cap, resolver):
        try:
            for frame in cap.batches(3.2):
                frames.append(resolver.fill(frame))
        finally:
            cap.close()

    def watch_from_now(_client_port):
        cap = Capture(Filters.parse(netns=[lab.client.name]), groups=("retrans",)).start()
        threads.append(threading.Thread(target=read, args=(cap, OwnerResolver())))
        threads[0].start()

    played = dropped_preexisting(lab, watch_from_now, timeout_ms=2600)
    threads[0].join(10)
    frame = pd.concat(frames, ignore_index=True)
    assert len(frame) >= 3 and set(frame["kind"]) == {"retransmit"}
    assert frame["pid"].isna().sum() == 0 and set(frame["comm"]) == {CLIENT_COMM}, frame.to_string()
    assert set(frame["owner_from"]) == {"proc"} and set(frame["sport"]) == {played.client_port}
