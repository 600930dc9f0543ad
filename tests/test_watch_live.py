"""`tcpwatch watch`: lifecycle events, connection ids and summaries, for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT
from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
from tcpwatch.live.lifecycle import Tracker
from tcpwatch.scenarios import CLIENT_COMM, SERVER_COMM
from tcpwatch.scenarios.lifecycle import active_close, client_abort

pytestmark = pytest.mark.live


def test_active_close_by_the_client(lab):
    with Capture(Filters.parse(netns=[lab.client.name, lab.server.name]), groups=("lifecycle", "resets")) as cap:
        played = active_close(lab)
        frames = list(cap.batches(0.5))
    tracker = Tracker()
    frame = tracker.feed(pd.concat(frames, ignore_index=True))
    changes = frame[frame["kind"] == "state-change"]
    client = changes[(changes["netns"] == lab.client.inode) & (changes["sport"] == played.client_port)]
    server = changes[(changes["netns"] == lab.server.inode) & (changes["dport"] == played.client_port)]
    assert list(zip(client["old_state"], client["state"]))[-3:] == [
        ("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
    assert list(zip(server["old_state"], server["state"]))[-3:] == [
        ("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]
    assert client["conn"].nunique() == 1 and server["conn"].nunique() == 1
    c = tracker.connections[int(client["conn"].iloc[0])].as_dict()
    s = tracker.connections[int(server["conn"].iloc[0])].as_dict()
    assert c["states"] == "CLOSE > SYN_SENT > ESTABLISHED > FIN_WAIT1 > FIN_WAIT2 > TIME_WAIT"
    assert s["states"] == "LISTEN > SYN_RECV > ESTABLISHED > CLOSE_WAIT > LAST_ACK > CLOSE"
    assert (c["role"], c["first_close"], c["ended"], c["comm"]) == ("client", "client", "fin", CLIENT_COMM)
    assert (s["role"], s["first_close"], s["ended"], s["pid"]) == ("server", "client", "fin", played.server_pid)
    assert 0 < c["duration"] < 2 and c["resets_sent"] == c["resets_received"] == 0


def test_watch_cli_shares_connection_ids(lab, tmp_path):
    out = tmp_path / "watch.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "tcpwatch.cli", "watch", "--json", "--output", str(out),
                             "--netns", lab.client.name, "--netns", lab.server.name, "--duration", "2.5"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "tracing" in proc.stderr.readline()
    played = client_abort(lab)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    events, summary = pd.DataFrame(lines[:-1]), lines[-1]["summary"]
    server_side = events[(events["netns"] == lab.server.inode) & (events["dport"].isin([played.client_port]) |
                                                                   events["sport"].isin([played.client_port]))]
    # the accepted socket: its state changes and the reset it received, one connection id
    assert set(server_side["kind"]) == {"state-change", "reset-received"} and server_side["conn"].nunique() == 1
    conns = {c["conn"]: c for c in summary["connections"]}
    server = conns[int(server_side["conn"].iloc[0])]
    assert (server["role"], server["ended"], server["comm"]) == ("server", "rst-received", SERVER_COMM)
    client = [c for c in conns.values() if c["role"] == "client"]
    assert len(client) == 1 and client[0]["ended"] == "rst-sent" and client[0]["comm"] == CLIENT_COMM
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["conn"] for r in written] == events["conn"].tolist()
