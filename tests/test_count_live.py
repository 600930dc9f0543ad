"""--count: per-flow totals counted in the kernel equal what per-event capture sees."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT
from tcpwatch.live.capture import Capture
from tcpwatch.live.counting import read_flows
from tcpwatch.live.filters import Filters
from tcpwatch.scenarios import refused
from tcpwatch.scenarios.lifecycle import dropped_after_handshake, syn_dropped

pytestmark = pytest.mark.live
FLOW = ["kind", "netns", "saddr", "sport", "daddr", "dport"]


def test_count_equals_per_event_totals(lab):
    filters = Filters.parse(netns=[lab.client.name, lab.server.name])
    groups = ("retrans", "resets")
    with Capture(filters, groups=groups) as events, Capture(filters, groups=groups, count=True) as counts:
        dropped_after_handshake(lab, timeout_ms=1600)
        syn_dropped(lab, timeout=1.2)
        refused(lab)
        frames = list(events.batches(0.5))
        flows = read_flows(counts)
    per_event = pd.concat(frames, ignore_index=True).groupby(FLOW).size().rename("count").reset_index()
    assert set(per_event["kind"]) == {"retransmit", "reset-sent", "reset-received"}
    merged = per_event.merge(flows[FLOW + ["count"]].astype({"count": "int64"}), on=FLOW, how="outer",
                             suffixes=("_events", "_kernel"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.to_string()
    assert (merged["count_events"] == merged["count_kernel"]).all(), merged.to_string()
    assert counts.stats.captured == 0 and counts.stats.lost == 0   # nothing crossed per event


def test_resets_count_cli(lab):
    proc = subprocess.Popen([sys.executable, "-m", "tcpwatch.cli", "resets", "--count", "--interval", "0.5",
                             "--json", "--no-netdev", "--netns", lab.client.name, "--netns", lab.server.name, "--duration", "2"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "counting" in proc.stderr.readline()
    for _ in range(3):
        refused(lab)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    summary = lines[-1]["summary"]
    final = [r for r in lines[:-1] if r.get("final")]
    totals = pd.DataFrame(final).groupby("kind")["count"].sum().to_dict()
    assert totals == {"reset-sent": 3, "reset-received": 3} and len(final) == 6   # one flow per client port
    assert summary["events"] == 6 and summary["by_kind"] == {"reset-sent": 3, "reset-received": 3}
    assert any(not r["final"] for r in lines[:-1])   # printed every interval too
