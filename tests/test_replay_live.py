"""`tcpwatch replay`: captures replayed through a ruleset inside private namespaces (root needed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_cli
from tcpwatch.iplog.render import render_envelope, render_fields

pytestmark = pytest.mark.live

RULES4 = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j LOG --log-prefix "raw dns "
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --tcp-flags RST RST -j LOG --log-prefix "[drds] " --log-level 7 --log-tcp-sequence
-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -j LOG --log-prefix "syn in: "
-A INPUT -i eth7 -p tcp -m tcp --tcp-flags FIN FIN -j LOG --log-prefix "fin on eth7 "
-A INPUT -i eth0 -p tcp -m tcp --tcp-flags FIN FIN -j LOG --log-prefix "fin on eth0 "
-A INPUT -p udp -m udp --dport 9999 -j LOG --log-prefix "never "
COMMIT
"""
RULES6 = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --tcp-flags RST RST -j LOG --log-prefix "v6 rst "
COMMIT
"""
NO_NS_BEFORE = "twreplay-"


def _crafted(path):
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    a, b = "192.0.2.10", "192.0.2.20"   # not the lab's addresses: the receiver must take them anyway
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    rst = eth / IP(src=b, dst=a, id=0, flags="DF", ttl=64) / TCP(sport=80, dport=40000, flags="R", seq=5000, window=0)
    pkts = [
        eth / IP(src=a, dst=b, id=1) / TCP(sport=40000, dport=80, flags="S", seq=4999),        # 0 syn in
        eth / IP(src=b, dst=a, id=2) / TCP(sport=80, dport=40000, flags="SA", seq=1, ack=5000),  # 1 nothing
        rst,                                                                                   # 2 [drds]
        rst,                                                                                   # 3 same bytes
        eth / IP(src=a, dst=b, id=3) / UDP(sport=5000, dport=53) / b"q",                       # 4 raw dns
        eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=443, dport=1234, flags="R"),  # 5 v6 rst
        Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=b),                # 6 not IP
        eth / IP(src=a, dst=b, id=4) / TCP(sport=40000, dport=80, flags="FA", seq=5000, ack=2),  # 7 fin on eth7
    ]
    pkts = [p.__class__(bytes(p)) for p in pkts]
    for i, p in enumerate(pkts):
        p.time = 1_714_000_000 + i * 0.01
    wrpcap(str(path), pkts)
    return pkts


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(NO_NS_BEFORE)}


def test_replay_reports_per_packet_prefixes(tmp_path):
    from tcpwatch.iplog.replay import replay

    _crafted(tmp_path / "c.pcap")
    before = _namespaces()
    result = replay(str(tmp_path / "c.pcap"), RULES4, RULES6, iface="eth7")
    assert _namespaces() == before
    got = {r.index: r.prefixes for r in result["packets"].itertuples()}
    assert got == {0: "INPUT 'syn in: '", 1: "", 2: "INPUT '[drds] '", 3: "INPUT '[drds] '",
                   4: "PREROUTING 'raw dns '", 5: "INPUT 'v6 rst '", 7: "INPUT 'fin on eth7 '"}
    s = result["summary"]
    assert (s["packets"], s["skipped_not_ip"], s["log_rules"], s["packets_logged"], s["messages"]) == (7, 1, 7, 6, 6)
    assert (s["unattributed_messages"], s["lost_messages"], s["send_errors"], s["interface"]) == (0, 0, {}, "eth7")


def _line(pkt, prefix: str) -> str:
    ip = pkt["IP"]
    tcp = ip["TCP"]
    row = {"in": "eth0", "out": "", "mac": "02:00:00:00:00:02:02:00:00:00:00:01:08:00", "src": ip.src,
           "dst": ip.dst, "len": ip.len, "tos": 0, "prec": 0, "ttl": ip.ttl, "id": ip.id, "df": bool(ip.flags.DF),
           "proto": "TCP", "spt": tcp.sport, "dpt": tcp.dport, "seq": tcp.seq, "ack": tcp.ack,
           "window": tcp.window, "res": 0, "tcp_flag_bits": int(tcp.flags), "urgp": 0}
    return render_envelope(prefix + render_fields(row), "rfc3339", ts=float(pkt.time) + 2, host="h")


def test_reproduce_check_against_a_recorded_log_on_a_real_capture(tmp_path):
    from scapy.utils import rdpcap

    from tcpwatch.iplog.rules import RuleSpec, save_fragment

    pcap = str(ROOT / "pcaps" / "rst-after-fin.pcap")
    __import__("scapy.layers.l2")
    pkts = rdpcap(pcap)
    rst = [i for i, p in enumerate(pkts) if p.haslayer("TCP") and p["TCP"].flags.R]
    assert len(rst) == 1
    (tmp_path / "rules").write_text(save_fragment(RuleSpec(prefix="[drds] ", exclude_ports=(3406,))))
    good = tmp_path / "good.log"
    good.write_text("not a LOG line\n" + _line(pkts[rst[0]], "[drds] ") + "\n")
    res = run_cli("replay", "--pcap", pcap, "--rules", str(tmp_path / "rules"), "--log", str(good), "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    summary = rows[-1]["summary"]
    assert summary["reproduce"] == {"reproduced": 1, "other-prefix": 0, "not-logged": 0, "extra": 0,
                                    "not-in-capture": 0, "reproduces": True}
    assert summary["interface"] == "eth0" and summary["packets_logged"] == 1
    assert [(r["index"], r["status"], r["prefix"]) for r in rows[:-1]] == [(rst[0], "reproduced", "[drds] ")]

    # The recorded log also shows the SYN with the same prefix: this ruleset cannot have written that.
    bad = tmp_path / "bad.log"
    bad.write_text(_line(pkts[0], "[drds] ") + "\n" + _line(pkts[rst[0]], "[drds] ") + "\n")
    res = run_cli("replay", "--pcap", pcap, "--rules", str(tmp_path / "rules"), "--log", str(bad))
    assert res.returncode == 0, res.stderr
    assert "not-logged" in res.stdout and "reproduced" in res.stdout
    assert "the ruleset reproduces the recorded log: no (reproduced 1, other-prefix 0, not-logged 1, extra 0, " \
        "not-in-capture 0)" in res.stdout


def test_bad_ruleset_is_one_line_and_namespaces_are_gone(tmp_path):
    _crafted(tmp_path / "c.pcap")
    (tmp_path / "rules").write_text("*filter\n-A INPUT -p tcp --no-such-option -j LOG\nCOMMIT\n")
    before = _namespaces()
    res = run_cli("replay", "--pcap", str(tmp_path / "c.pcap"), "--rules", str(tmp_path / "rules"))
    assert res.returncode == 1 and res.stderr.startswith("tcpwatch: iptables-restore rejected the ruleset")
    assert "Traceback" not in res.stderr and _namespaces() == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_replay_leaves_no_namespace(tmp_path, sig):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    # explicit MACs: Ether() alone would make scapy ARP for a gateway on the host network
    one = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2") / \
        UDP(sport=1, dport=9) / b"x"
    one = Ether(bytes(one))
    wrpcap(str(tmp_path / "big.pcap"), [one] * 5000)
    (tmp_path / "rules").write_text(RULES4)
    before = _namespaces()
    proc = subprocess.Popen([sys.executable, "-m", "tcpwatch.cli", "replay", "--pcap", str(tmp_path / "big.pcap"),
                             "--rules", str(tmp_path / "rules")], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (_namespaces() - before) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert _namespaces() - before, "the replay never made its namespaces"
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert _namespaces() == before, err
