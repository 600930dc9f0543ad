"""RST and retransmission packets must be exactly the frames tshark flags
(tcp.flags.reset==1, tcp.analysis.retransmission) on the same file: oracle traces, the
project's scenario captures, and a synthetic capture with every retransmission kind."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ORACLE, ROOT

pytestmark = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed (make setup installs it)")

CAPTURES = sorted((ORACLE / "traces").glob("*.pcap")) + sorted((ROOT / "pcaps").glob("*.pcap*"))


def tshark_frames(path: Path, display_filter: str) -> list[int]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return sorted(int(x) for x in out.stdout.split())


def mine(path: Path):
    from tcpwatch.pcap.api import analyze

    ev = analyze(str(path)).events
    frames = lambda kind: sorted(ev.loc[ev["kind"] == kind, "packet"].astype(int).tolist())  # noqa: E731
    return frames("reset-sent"), frames("retransmit")


def assert_agrees(path: Path):
    rst, rexmit = mine(path)
    assert rst == tshark_frames(path, "tcp.flags.reset==1"), path.name
    assert rexmit == tshark_frames(path, "tcp.analysis.retransmission"), path.name


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_same_frames_as_tshark(path):
    assert_agrees(path)


def test_synthetic_capture_agrees(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_synthetic_pcap", ROOT / "bench" / "gen_synthetic_pcap.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path = tmp_path / "synthetic.pcap"
    gen.write(str(path), packets=30000, seed=3, batch_flows=300)
    rst, rexmit = mine(path)
    assert len(rst) > 50 and len(rexmit) > 50  # the recipes really produce both
    assert_agrees(path)


def test_scenario_captures_are_present():
    assert len(list((ROOT / "pcaps").glob("*.pcap*"))) >= 6, "run `make pcaps`"
