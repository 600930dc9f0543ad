"""`tcpwatch retrans` for real: drops made with iptables in the test's own namespaces."""

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
from tcpwatch.scenarios import CLIENT_COMM
from tcpwatch.scenarios.lifecycle import dropped_after_handshake, syn_dropped

pytestmark = pytest.mark.live


def capture(lab, play, groups=("retrans", "lifecycle", "resets")):
    with Capture(Filters.parse(netns=[lab.client.name, lab.server.name]), groups=groups) as cap:
        played = play(lab)
        frames = list(cap.batches(0.5))
    assert cap.stats.lost == 0
    frame = pd.concat(frames, ignore_index=True)
    tracker = Tracker()
    return played, tracker.feed(frame), tracker


def test_drops_after_handshake_back_off_and_time_out(lab):
    played, frame, tracker = capture(lab, dropped_after_handshake)
    retx = frame[frame["kind"] == "retransmit"]
    assert len(retx) >= 3, frame.to_string()
    # all from the client's socket, the same data segment each time, in timer softirq: the
    # owner comes from the owner map, not from whichever task was interrupted
    assert set(retx["sport"]) == {played.client_port} and set(retx["netns"]) == {lab.client.inode}
    assert set(retx["retransmit"]) == {"data"} and retx["seq"].nunique() == 1
    assert set(retx["comm"]) == {CLIENT_COMM} and set(retx["owner_from"]) == {"recorded"}
    gaps = retx["ts"].diff().dropna().tolist()
    assert all(b > a * 1.5 for a, b in zip(gaps, gaps[1:])), gaps     # exponential backoff
    conn = retx["conn"].unique()
    assert len(conn) == 1
    summary = tracker.connections[int(conn[0])].as_dict()
    assert summary["retransmits"] == len(retx) and summary["role"] == "client"
    assert summary["ended"] == "timeout" and summary["err"] == 110
    assert summary["states"].endswith("ESTABLISHED > CLOSE")


def test_syn_dropped_is_a_syn_retransmit(lab):
    played, frame, tracker = capture(lab, syn_dropped)
    retx = frame[frame["kind"] == "retransmit"]
    assert len(retx) >= 1 and set(retx["retransmit"]) == {"syn"} and set(retx["tcp_flags"]) == {"S"}
    assert set(retx["state"]) == {"SYN_SENT"} and set(retx["sport"]) == {played.client_port}
    summary = tracker.connections[int(retx["conn"].iloc[0])].as_dict()
    assert summary["states"] == "CLOSE > SYN_SENT > CLOSE" and summary["ended"] == "abandoned"


def test_retrans_cli_json_per_flow_summary(lab, tmp_path):
    out = tmp_path / "retrans.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "tcpwatch.cli", "retrans", "--json", "--output", str(out),
                             "--netns", lab.client.name, "--netns", lab.server.name, "--duration", "4.5"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "tracing" in proc.stderr.readline()
    played = dropped_after_handshake(lab, timeout_ms=1600)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    events, summary = lines[:-1], lines[-1]["summary"]
    assert events and {e["kind"] for e in events} == {"retransmit"}
    [flow] = summary["flows"]
    assert flow["retransmits"] == len(events) and flow["local"] == f"{lab.client.v4}:{played.client_port}"
    assert len(flow["retransmit_gaps"]) == len(events) - 1 and flow["retransmit_first"] <= flow["retransmit_last"]
    written = pd.read_parquet(out)
    assert len(written) == len(events) and set(written["conn"]) == {flow["conn"]}
