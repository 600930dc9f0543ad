"""Connection tracking offline: ids shared by a socket's events, new lives, summaries."""

from __future__ import annotations

import pandas as pd

from tcpwatch.events import conform
from tcpwatch.live.decode import LIVE_DTYPES
from tcpwatch.live.lifecycle import Tracker, derived_id

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def ev(ts, kind, src, dst, sk=None, old=None, new=None, err=None, cookie=None, netns=1, retrans=None, pid=None):
    return {"ts": ts, "source": "bpf", "kind": kind, "family": 4, "saddr": src[0], "sport": src[1],
            "daddr": dst[0], "dport": dst[1], "state": new, "old_state": old, "err": err, "sk": sk,
            "cookie": cookie, "netns": netns, "retransmit": retrans, "pid": pid, "comm": "app" if pid else None}


def frame(rows):
    return conform(pd.DataFrame(rows), LIVE_DTYPES)


def test_client_life_retransmits_and_timeout():
    t = Tracker()
    out = t.feed(frame([
        ev(0.0, "state-change", ("10.0.0.1", 0), S, sk=7, old="CLOSE", new="SYN_SENT", pid=5),
        ev(0.1, "state-change", C, S, sk=7, old="SYN_SENT", new="ESTABLISHED"),
        ev(0.3, "retransmit", C, S, sk=7, retrans="data"),
        ev(0.7, "retransmit", C, S, sk=7, retrans="data"),
        ev(1.5, "retransmit", C, S, sk=7, retrans="data"),
        ev(2.0, "state-change", C, S, sk=7, old="ESTABLISHED", new="CLOSE", err=110),
        ev(2.1, "reset-sent", C, S),              # no socket any more: joins by endpoints
    ]))
    assert out["conn"].nunique() == 1
    [c] = t.summaries()
    assert (c["role"], c["ended"], c["local"], c["pid"], c["comm"]) == ("client", "timeout", "10.0.0.1:40000", 5, "app")
    assert c["retransmit_gaps"] == [0.4, 0.8] and c["retransmits"] == 3 and c["duration"] == 2.0
    assert c["states"] == "CLOSE > SYN_SENT > ESTABLISHED > CLOSE"
    assert out["conn"].iloc[0] == derived_id(1, 7, ("10.0.0.1", 0), S, 0)


def test_passive_close_and_a_reused_socket_address():
    t = Tracker()
    out = t.feed(frame([
        ev(0.0, "state-change", S, C, sk=9, old="LISTEN", new="SYN_RECV", cookie=1234),
        ev(0.1, "state-change", S, C, sk=9, old="SYN_RECV", new="ESTABLISHED"),
        ev(0.2, "state-change", S, C, sk=9, old="ESTABLISHED", new="CLOSE_WAIT"),
        ev(0.3, "state-change", S, C, sk=9, old="CLOSE_WAIT", new="LAST_ACK"),
        ev(0.4, "state-change", S, C, sk=9, old="LAST_ACK", new="CLOSE"),
        # the same kernel address, another connection: a new id
        ev(5.0, "retransmit", S, ("10.0.0.3", 5555), sk=9, retrans="data"),
    ]))
    first, second = out["conn"].iloc[0], out["conn"].iloc[-1]
    assert first == 1234 and second != first and out["conn"].iloc[:5].nunique() == 1
    s = t.connections[1234].as_dict()
    assert (s["role"], s["first_close"], s["ended"]) == ("server", "client", "fin")


def test_synack_retransmit_joins_the_child_socket_and_listeners_are_apart():
    t = Tracker()
    out = t.feed(frame([
        ev(0.0, "state-change", (S[0], 80), ("0.0.0.0", 0), sk=1, old="CLOSE", new="LISTEN"),
        ev(1.0, "retransmit", S, C, sk=50, retrans="synack"),          # names the request socket
        ev(1.5, "state-change", S, C, sk=60, old="LISTEN", new="SYN_RECV"),
        ev(1.6, "state-change", S, C, sk=60, old="SYN_RECV", new="ESTABLISHED"),
        ev(2.0, "state-change", S, C, sk=60, old="ESTABLISHED", new="FIN_WAIT1"),
    ]))
    assert out["conn"].iloc[1:].nunique() == 1 and out["conn"].iloc[0] != out["conn"].iloc[1]
    [conn] = t.summaries()                      # the listener is left out
    assert conn["retransmit_kinds"] == {"synack": 1} and conn["first_close"] == "server"
    assert len(t.summaries(include_listeners=True)) == 2


def test_namespaces_keep_mirror_sockets_apart():
    t = Tracker()
    out = t.feed(frame([ev(0.0, "retransmit", C, S, sk=3, netns=1), ev(0.0, "retransmit", S, C, sk=3, netns=2)]))
    assert out["conn"].nunique() == 2
