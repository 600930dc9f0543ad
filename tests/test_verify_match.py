"""`tcpwatch verify`: logged packets matched to a capture, with clock skew and unlogged RSTs."""

from __future__ import annotations

import json

from conftest import run_cli
from tcpwatch.iplog.render import render_envelope, render_fields
from tcpwatch.iplog.verify import verify


def _fixture(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    base = 1_714_000_000.0
    pkts = []
    for i, (flags, seq) in enumerate([("S", 100), ("RA", 0), ("R", 5000), ("R", 7000)]):
        p = Ether() / IP(src="198.18.0.2", dst="198.18.0.1", ttl=64, id=10 + i) / \
            TCP(sport=80, dport=40000 + i, flags=flags, seq=seq, ack=101 if "A" in flags else 0, window=0)
        p = Ether(bytes(p))
        p.time = base + i
        pkts.append(p)
    wrpcap(str(tmp_path / "cap.pcap"), pkts)
    lines = []
    for i in (1, 2):   # the RSTs of packets 1 and 2 were logged (log clock 3 s ahead); 3 was not
        ip = pkts[i]["IP"]
        row = {"out": "eth0", "src": ip.src, "dst": ip.dst, "len": ip.len, "tos": 0, "prec": 0, "ttl": ip.ttl,
               "id": ip.id, "proto": "TCP", "spt": ip.sport, "dpt": ip.dport, "seq": ip["TCP"].seq,
               "ack": ip["TCP"].ack, "window": 0, "res": 0, "tcp_flag_bits": int(ip["TCP"].flags), "urgp": 0}
        lines.append(render_envelope("[drds] " + render_fields(row), "rfc3339", ts=base + i + 3, host="h"))
    # logged but never captured: a different IP ID
    lines.append(lines[-1].replace(f"ID={pkts[2]['IP'].id} ", "ID=999 "))
    (tmp_path / "fw.log").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "cap.pcap"), str(tmp_path / "fw.log")


def test_verify_counts(tmp_path):
    pcap, log = _fixture(tmp_path)
    result = verify(pcap, log, skew=5)
    s = result["summary"]
    assert (s["logged"], s["matched"], s["logged_not_captured"], s["captured_rsts_not_logged"]) == (3, 2, 1, 1)
    logged = result["logged"]
    assert list(logged["status"]) == ["matched", "matched", "logged-not-captured"]
    assert list(logged["packet_index"][:2]) == [1, 2] and logged["clock_offset"][0] == -3
    assert list(result["unlogged_rsts"]["index"]) == [3]
    tight = verify(pcap, log, skew=1)["summary"]
    assert tight["matched"] == 0 and tight["captured_rsts_not_logged"] == 3


def test_verify_cli(tmp_path):
    pcap, log = _fixture(tmp_path)
    res = run_cli("verify", "--pcap", pcap, "--log", log, "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert rows[-1]["summary"]["matched"] == 2 and len(rows) == 4
    assert "rst_sender" in rows[0]
