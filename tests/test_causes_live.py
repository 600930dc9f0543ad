"""Every reset gets a cause: each scenario played in the test's own namespaces, captured with the
full live pipeline (stack and device probes, origin pairing, conntrack, diagnosis)."""

from __future__ import annotations

import pandas as pd
import pytest

from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
from tcpwatch.live.pipeline import Enrichment, enriched
from tcpwatch.scenarios import CLIENT_COMM, SERVER_COMM, linger_zero, refused, unread_data
from tcpwatch.scenarios.causes import (REJECT_PORT, firewall_reject, keepalive_timeout, late_after_close,
                                       retransmit_timeout, unsolicited_synack)

pytestmark = pytest.mark.live


def diagnosed(lab, play):
    filters = Filters.parse(netns=[lab.client.name, lab.server.name])
    stage = Enrichment(watch_netns=filters.netns)
    stage.before_start()   # caches and firewall counters before the traffic, as `tcpwatch resets` does
    with Capture(filters, groups=("resets", "netdev", "giveup"), origins=True) as cap:
        played = play(lab)
        frames = list(enriched(cap.batches(1.0, idle_ticks=True), stage))
    assert cap.stats.lost == 0
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["kind", "netns"])
    frame.attrs["capture"] = {k: v for k, v in cap.stats.as_dict().items() if k in ("captured", "lost", "missed")}
    return played, frame


def _ifindex(name: str) -> int:
    import socket

    return socket.if_nametoindex(name)


def only(frame, **match):
    rows = frame
    for column, value in match.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, (f"want one row with {match}, got (capture: {frame.attrs.get('capture')}):\n"
                            f"{frame.drop(columns=['explanation']).to_string()}")
    return rows.iloc[0]


def test_port_closed(lab):
    played, frame = diagnosed(lab, refused)
    sent = only(frame, kind="reset-sent", netns=lab.server.inode)
    assert (sent["cause"], sent["origin"], sent["trigger_flags"]) == ("port-closed", "tcp-stack", "S")
    received = only(frame, kind="reset-received", netns=lab.client.inode)
    assert (received["cause"], received["origin"], received["delivered"]) == ("port-closed", "remote", "yes")
    assert received["comm"] == CLIENT_COMM
    # the RST as its device saw it, taken by the socket's event in the kernel (one record, not two)
    assert (received["tcp_flags"], received["ifindex"]) == ("R.", lab.client.call(_ifindex, lab.client.ifname))
    assert frame.attrs["capture"]["captured"] == 2


def test_abort_on_close_and_peer_abort(lab):
    played, frame = diagnosed(lab, unread_data)
    sent = only(frame, kind="reset-sent", netns=lab.server.inode)
    assert (sent["cause"], sent["pid"], sent["comm"]) == ("abort-on-close", played.server_pid, SERVER_COMM)
    received = only(frame, kind="reset-received", netns=lab.client.inode)
    assert (received["cause"], received["state"], received["origin"]) == ("peer-abort", "ESTABLISHED", "remote")


def test_linger_zero(lab):
    _, frame = diagnosed(lab, linger_zero)
    assert only(frame, kind="reset-sent", netns=lab.server.inode)["cause"] == "linger-zero"


def test_firewall_reject_names_the_rule(lab):
    played, frame = diagnosed(lab, firewall_reject)
    sent = only(frame, kind="reset-sent", netns=lab.server.inode)
    assert (sent["cause"], sent["origin"]) == ("firewall-reject", "netfilter")
    assert pd.isna(sent["reason"])  # the TCP stack never saw it
    assert (sent["sport"], sent["dport"]) == (REJECT_PORT, played.client_port)
    assert f"--dport {REJECT_PORT}" in sent["rule"] and "REJECT --reject-with tcp-reset" in sent["rule"]


def test_unsolicited_synack(lab):
    played, frame = diagnosed(lab, unsolicited_synack)
    sent = only(frame, kind="reset-sent", netns=lab.server.inode)
    assert (sent["cause"], sent["trigger_flags"], sent["reason"]) == ("unsolicited-synack", "S.", "NO_SOCKET")
    assert (sent["sport"], sent["dport"]) == (played.server_port, played.client_port)
    stray = only(frame, kind="reset-received", netns=lab.client.inode)   # no socket there takes it
    assert (stray["delivered"], stray["cause"]) == ("no", "no-connection")


def test_late_after_close(lab):
    played, frame = diagnosed(lab, late_after_close)
    # the client's abort reached the server's device but conntrack had forgotten the connection:
    # the stateful ruleset dropped it as INVALID before TCP, so no socket took it
    late = frame[(frame["kind"] == "reset-received") & (frame["netns"] == lab.server.inode)
                 & (frame["sport"] == played.client_port)].iloc[0]
    assert (late["delivered"], late["cause"]) == ("no", "late-after-close")
    abort = only(frame[frame["reason"] == "TCP_STATE"], kind="reset-sent", netns=lab.client.inode)
    assert abort["cause"] == "linger-zero"


def test_keepalive_timeout(lab):
    played, frame = diagnosed(lab, keepalive_timeout)
    sent = only(frame, kind="reset-sent", netns=lab.client.inode, reason="TCP_KEEPALIVE_TIMEOUT")
    assert (sent["cause"], sent["state"], sent["sport"]) == ("keepalive-timeout", "ESTABLISHED", played.client_port)
    # fired from the keepalive timer, in softirq: never the interrupted task's name
    assert pd.isna(sent["comm"]) or sent["comm"] == CLIENT_COMM

    # the close that follows the keepalive RST is that reset's aftermath, not a second story
    assert not ((frame["kind"] == "state-change") & (frame["sport"] == played.client_port)).any()


def test_retransmit_timeout(lab):
    played, frame = diagnosed(lab, retransmit_timeout)
    gave_up = only(frame, kind="state-change", netns=lab.client.inode)
    assert (gave_up["cause"], gave_up["err"], gave_up["old_state"]) == ("retransmit-timeout", 110, "ESTABLISHED")
    assert gave_up["origin"] == "tcp-stack"
    assert (gave_up["sport"], gave_up["dport"]) == (played.client_port, played.server_port)
    assert gave_up["comm"] == CLIENT_COMM   # closed from the retransmit timer: named from the owner map
    # giving up sent no RST (later, the server's own close meets a client with no socket: that
    # RST is another event, after this one)
    assert not ((frame["kind"] == "reset-sent") & (frame["ts"] <= gave_up["ts"])).any()
