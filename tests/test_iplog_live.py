"""LOG lines the kernel itself writes, read back from /dev/kmsg and compared field by field with the
packets sent. Runs in a private two-namespace lab; nf_log_all_netns (global) is set for the test and
always restored."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.live

SYSCTL = "/proc/sys/net/netfilter/nf_log_all_netns"


@pytest.fixture
def log_all_netns():
    before = open(SYSCTL).read().strip()
    with open(SYSCTL, "w") as fh:
        fh.write("1")
    try:
        yield
    finally:
        with open(SYSCTL, "w") as fh:
            fh.write(before)


def _mac(host) -> str:
    return host.run("cat", f"/sys/class/net/{host.ifname}/address").stdout.strip()


def _send_raw(packets: list[tuple[int, bytes, str]]) -> None:
    """In the client namespace: send whole IP packets through raw sockets."""
    for family, data, dst in packets:
        s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            s.sendto(data, (dst, 0))
        finally:
            s.close()
        time.sleep(0.05)


def _send_udp_as(uid: int, gid: int, dst: str, port: int) -> None:
    os.setgid(gid)
    os.setuid(uid)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"hello", (dst, port))
    s.close()


def _collect(start_seq: int, tag: str, want: int, timeout: float = 5.0):
    from tcpwatch.iplog.kmsg import read_kmsg_lines

    deadline = time.time() + timeout
    while True:
        data = read_kmsg_lines(start_seq)
        mine = b"\n".join(line for line in data.split(b"\n") if tag.encode() in line) + b"\n"
        if mine.count(b"\n") >= want or time.time() > deadline:
            return mine


def _rows(data: bytes, engine: str) -> list[dict]:
    import pandas as pd

    from tcpwatch.iplog.api import parse_buffer

    arrays, n, errors, _lines, _other = parse_buffer(data, 1, 2026, 1, engine)
    assert errors == [], errors
    out = []
    for i in range(n):
        row = {}
        for name, arr in arrays.items():
            v = arr[i]
            if v is None or v is pd.NA or (isinstance(v, float) and v != v):
                continue
            row[name] = v.item() if hasattr(v, "item") else v
        out.append(row)
    return out


def test_kernel_written_lines_match_the_packets_sent(lab, log_all_netns):
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
    from scapy.layers.inet6 import IPv6

    from tcpwatch.iplog.kmsg import next_seq

    tag = "tw" + secrets.token_hex(2)
    c, s = lab.client, lab.server
    rules4 = [
        f'-A INPUT -p tcp --dport 7001 -j LOG --log-prefix "{tag} seq " --log-tcp-sequence',
        f'-A INPUT -p tcp --dport 7001 -j LOG --log-prefix "{tag} opt: " --log-tcp-options',
        f'-A INPUT -p tcp --dport 7001 -j LOG --log-prefix "{tag}*ipo " --log-ip-options',
        f'-A INPUT -p tcp --dport 7001 -j LOG --log-prefix "{tag} mac " --log-macdecode',
        f'-A OUTPUT -p tcp --tcp-flags RST RST -j LOG --log-prefix "{tag} rst " --log-tcp-sequence',
        f'-A OUTPUT -p udp --dport 7002 -j LOG --log-prefix "{tag} uid " --log-uid',
        f'-A OUTPUT -p icmp -j LOG --log-prefix "{tag} icmp "',
    ]
    rules6 = [
        f'-A INPUT -p tcp --dport 7001 -j LOG --log-prefix "{tag} v6 " --log-tcp-sequence --log-tcp-options',
        f'-A OUTPUT -p tcp --tcp-flags RST RST -j LOG --log-prefix "{tag} v6rst " --log-tcp-sequence',
        f'-A OUTPUT -p ipv6-icmp --icmpv6-type 1 -j LOG --log-prefix "{tag} v6icmp "',
    ]
    for tool, rules in (("iptables-restore", rules4), ("ip6tables-restore", rules6)):
        p = s.popen(tool, "--noflush", stdin=__import__("subprocess").PIPE, text=True)
        p.communicate("*filter\n" + "\n".join(rules) + "\nCOMMIT\n", timeout=20)
        assert p.returncode == 0

    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None), ("WScale", 7)]
    syn = IP(src=c.v4, dst=s.v4, ttl=61, id=4242, tos=0x10, flags="DF", options=[IPOption_NOP()] * 4) / \
        TCP(sport=40001, dport=7001, seq=123456789, window=29200, flags="S", options=opts)
    udp = IP(src=c.v4, dst=s.v4, ttl=59, id=777, flags="DF") / UDP(sport=40002, dport=7003) / (b"x" * 12)
    syn6 = IPv6(src=c.v6, dst=s.v6, hlim=63, tc=0x20, fl=0x12345) / \
        TCP(sport=40003, dport=7001, seq=987654321, window=1000, flags="S", options=opts)
    udp6 = IPv6(src=c.v6, dst=s.v6, hlim=62) / UDP(sport=40004, dport=7003) / (b"y" * 8)
    syn, udp, syn6, udp6 = (p.__class__(bytes(p)) for p in (syn, udp, syn6, udp6))  # checksums, lengths filled

    start = next_seq()
    c.call(_send_raw, [(socket.AF_INET, bytes(syn), s.v4), (socket.AF_INET, bytes(udp), s.v4),
                       (socket.AF_INET6, bytes(syn6), s.v6), (socket.AF_INET6, bytes(udp6), s.v6)])
    s.call(_send_udp_as, 1234, 4321, c.v4, 7002)
    data = _collect(start, tag, want=11)
    rows = _rows(data, "c")
    assert rows == _rows(data, "python")
    by = {r["prefix"][len(tag):]: r for r in rows}
    assert set(by) >= {" seq ", " opt: ", "*ipo ", " mac ", " rst ", " uid ", " icmp ", " v6 ", " v6rst ",
                       " v6icmp "}, sorted(by)

    tcp = syn[TCP]
    for key in (" seq ", " opt: ", "*ipo ", " mac "):
        r = by[key]
        assert (r["in"], r["out"], r["src"], r["dst"], r["family"]) == (s.ifname, "", c.v4, s.v4, 4)
        assert (r["len"], r["tos"], r["prec"], r["ttl"], r["id"], r.get("df")) == (syn.len, 0x10, 0, 61, 4242, True)
        assert (r["proto"], r["spt"], r["dpt"], r["window"], r["res"], r["urgp"]) == ("TCP", 40001, 7001, 29200, 0, 0)
        assert r["tcp_flag_bits"] == int(tcp.flags)
    assert (by[" seq "]["seq"], by[" seq "]["ack"]) == (123456789, 0)
    assert "seq" not in by[" opt: "] and "tcp_opt" not in by[" seq "]
    assert by[" opt: "]["tcp_opt"] == bytes(tcp)[20:tcp.dataofs * 4].hex().upper()
    assert by["*ipo "]["ip_opt"] == "01010101"
    mac = by[" mac "]
    assert (mac["macsrc"], mac["macdst"], mac["macproto"]) == (_mac(c), _mac(s), 0x0800)
    assert "mac" not in mac and "mac" in by[" seq "]     # raw MAC= without --log-macdecode

    rst = by[" rst "]
    assert (rst["src"], rst["dst"], rst["spt"], rst["dpt"], rst["out"], rst["in"]) == (s.v4, c.v4, 7001, 40001, s.ifname, "")
    assert rst["tcp_flag_bits"] == 0x14 and (rst["seq"], rst["ack"]) == (0, 123456790)

    uid = by[" uid "]
    assert (uid["uid"], uid["gid"], uid["udp_len"], uid["dpt"]) == (1234, 4321, 8 + 5, 7002)

    icmp = by[" icmp "]
    assert (icmp["icmp_type"], icmp["icmp_code"], icmp["src"], icmp["dst"]) == (3, 3, s.v4, c.v4)
    assert (icmp["inner_src"], icmp["inner_dst"], icmp["inner_len"], icmp["inner_ttl"], icmp["inner_id"]) == \
        (c.v4, s.v4, udp.len, 59, 777)
    assert (icmp["inner_proto"], icmp["inner_spt"], icmp["inner_dpt"], icmp["inner_udp_len"], icmp["inner_df"]) == \
        ("UDP", 40002, 7003, udp[UDP].len, True)

    # The kernel prints IPv6 addresses in full (%pI6): raw src/dst keep that text.
    c6, s6 = (ipaddress.ip_address(a).exploded for a in (c.v6, s.v6))
    v6 = by[" v6 "]
    assert (v6["src"], v6["dst"], v6["family"], v6["len"], v6["hoplimit"], v6["tc"], v6["flowlbl"]) == \
        (c6, s6, 6, len(bytes(syn6)), 63, 0x20, 0x12345)
    assert (v6["spt"], v6["dpt"], v6["seq"], v6["window"], v6["tcp_flag_bits"]) == (40003, 7001, 987654321, 1000, 0x02)
    assert v6["tcp_opt"] == bytes(syn6[TCP])[20:syn6[TCP].dataofs * 4].hex().upper()
    assert by[" v6rst "]["ack"] == 987654322 and by[" v6rst "]["tcp_flag_bits"] == 0x14
    v6icmp = by[" v6icmp "]
    assert (v6icmp["proto"], v6icmp["icmp_type"], v6icmp["icmp_code"]) == ("ICMPv6", 1, 4)
    assert (v6icmp["inner_src"], v6icmp["inner_dst"], v6icmp["inner_hoplimit"], v6icmp["inner_spt"],
            v6icmp["inner_dpt"], v6icmp["inner_udp_len"]) == (c6, s6, 62, 40004, 7003, 16)
    assert all(r["envelope"] == "kmsg" and r["uptime"] > 0 for r in rows)
