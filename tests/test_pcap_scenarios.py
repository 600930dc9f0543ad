"""The checked-in captures in pcaps/ (real kernels in a namespace lab) give the findings their
sidecar files state. The live test regenerates one set with tcpdump and checks it the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REQUIRE_LIVE, ROOT
from test_pcap_tshark import assert_agrees

SIDECARS = sorted((ROOT / "pcaps").glob("*.expected.json"))


def check_findings(pcap: Path, expected: dict) -> None:
    from tcpwatch.pcap.api import analyze

    result = analyze(str(pcap))
    conns, events = result.connections, result.events
    for want in expected.get("connections", []):
        matches = conns
        for key, value in want.items():
            matches = matches[matches[key].astype(str) == value]
        assert len(matches) >= 1, f"{pcap.name}: no connection with {want}: {conns[['conn_state', 'history']]}"
    resets = events[events["kind"] == "reset-sent"]
    got = [{k: row[k] for k in want} for row, want in zip(resets.astype(object).to_dict("records"),
                                                             expected["resets"])]
    assert len(resets) == len(expected["resets"]) and got == expected["resets"], pcap.name
    rexmit = events[events["kind"] == "retransmit"]
    spec = expected["retransmissions"]
    assert spec["min"] <= len(rexmit) <= spec.get("max", len(rexmit)), pcap.name
    if "senders" in spec:
        assert set(rexmit["saddr"]) <= set(spec["senders"]), pcap.name
    if spec.get("syn_retransmitted"):
        assert (rexmit["flags"] == "S").any(), f"{pcap.name}: the dropped SYN was not seen resent"
    if "resent_min" in spec:   # resends tshark calls out-of-order (within 3 ms of the newest segment) count too
        assert len(rexmit) + result.stats["out_of_order"] >= spec["resent_min"], pcap.name
    assert result.stats["damaged"] == 0


def test_every_scenario_has_a_capture():
    names = {p.name.removesuffix(".expected.json") for p in SIDECARS}
    assert {"refused", "abort-unread", "linger0", "iptables-reject", "retransmit-drops",
            "unsolicited-synack"} <= names
    for sidecar in SIDECARS:
        assert (sidecar.parent / json.loads(sidecar.read_text())["capture"]).exists()


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_checked_in_capture_findings(sidecar):
    expected = json.loads(sidecar.read_text())
    check_findings(sidecar.parent / expected["capture"], expected)


@pytest.mark.live
def test_regenerated_captures_give_the_same_findings(tmp_path):
    # scapy already imported in this (root-namespace) process, as it is after the iplog tests in a
    # full run: the lab's forked children must not use the interface/route tables it read here
    import scapy.layers.inet  # noqa: F401

    from tcpwatch.pcaps_gen import SCENARIOS, generate

    generate(str(tmp_path))      # every scenario, about 10 s
    sidecars = sorted(tmp_path.glob("*.expected.json"))
    assert len(sidecars) == len(SCENARIOS)
    for sidecar in sidecars:
        expected = json.loads(sidecar.read_text())
        check_findings(tmp_path / expected["capture"], expected)
        if shutil.which("tshark") or REQUIRE_LIVE:   # make setup installs it; CI must compare
            assert_agrees(tmp_path / expected["capture"])
