"""`tcpwatch verify`: logged packets matched to a capture, with clock skew and unlogged RSTs."""

from __future__ import annotations

import json

import pytest

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
        p = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src="198.18.0.2", dst="198.18.0.1", ttl=64, id=10 + i) / \
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


def _log_line(pkt, ts: float) -> str:
    """The LOG line the kernel would write for this captured TCP packet (OUTPUT chain, --log-tcp-sequence)."""
    import ipaddress

    ip = pkt["IP"] if pkt.haslayer("IP") else pkt["IPv6"]
    tcp = ip["TCP"]
    row = {"out": "eth0", "proto": "TCP", "spt": tcp.sport, "dpt": tcp.dport, "seq": tcp.seq, "ack": tcp.ack,
           "window": tcp.window, "res": 0, "tcp_flag_bits": int(tcp.flags), "urgp": 0}
    if ip.version == 4:
        row.update(src=ip.src, dst=ip.dst, len=ip.len, tos=ip.tos, prec=0, ttl=ip.ttl, id=ip.id, df=bool(ip.flags.DF))
    else:
        row.update(src=ipaddress.ip_address(ip.src).exploded, dst=ipaddress.ip_address(ip.dst).exploded,
                   len=ip.plen + 40, tc=ip.tc, hoplimit=ip.hlim, flowlbl=ip.fl)
    return render_envelope("[drds] " + render_fields(row), "rfc3339", ts=ts, host="h")


def _capture_cases():
    from conftest import ROOT

    for expected in sorted((ROOT / "pcaps").glob("*.expected.json")):
        spec = json.loads(expected.read_text())
        if spec.get("resets") and len(spec.get("connections", [])) == 1:
            yield pytest.param(ROOT / "pcaps" / spec["capture"], spec, id=spec["scenario"])


@pytest.mark.parametrize("pcap,spec", list(_capture_cases()))
def test_logged_rsts_say_who_sent_them_and_the_connection_state(tmp_path, pcap, spec):
    """On the real captures: every RST rendered as the kernel logs it, then verify tells who sent it and
    the state of its connection, checked against the scenario's own expectations."""
    import scapy.layers.inet6  # noqa: F401  (dissect IPv6)
    import scapy.layers.l2  # noqa: F401
    from scapy.utils import rdpcap

    pkts = rdpcap(str(pcap))
    rsts = [p for p in pkts if p.haslayer("TCP") and p["TCP"].flags.R]
    (tmp_path / "fw.log").write_text("".join(_log_line(p, float(p.time) + 1.5) + "\n" for p in rsts))
    result = verify(str(pcap), str(tmp_path / "fw.log"))
    logged = result["logged"]
    assert result["summary"]["matched"] == len(rsts) == len(logged) and result["summary"]["captured_rsts_not_logged"] == 0
    want_conn = spec["connections"][0]
    for row, want in zip(logged.to_dict("records"), spec["resets"]):
        assert (row["kind"], row["saddr"]) == ("reset-sent", want["saddr"])
        assert (row["rst_by"], row["rst_kind"]) == (want["rst_by"], want["rst_kind"])
        assert row["rst_sender"] == {"originator": "client", "responder": "server"}[want["rst_by"]]
        assert row["conn_state"] == want_conn["conn_state"]
        if "history" in want_conn:
            assert row["conn_history"] == want_conn["history"]
