"""Property-based tests of the envelope and field grammar: render like the kernel, parse back."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpwatch.iplog.api import core, parse_buffer
from tcpwatch.iplog.render import render_envelope, render_fields

ENGINES = ["python"] + (["c"] if core() is not None else [])
SETTINGS = settings(max_examples=int(__import__("os").environ.get("TW_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8, u16, u32 = (st.integers(0, m) for m in (255, 65535, 2**32 - 1))
ifname = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_@", min_size=0, max_size=15)
hexbytes = st.binary(min_size=1, max_size=40).map(lambda b: b.hex().upper())
mac = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
v4 = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
v6 = st.integers(0, 2**128 - 1).map(lambda i: ipaddress.IPv6Address(i).exploded)
# Prefixes: any text with spaces, colons, stars, brackets; not containing the IN= marker itself.
prefix = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x7f"), max_size=29) \
    .filter(lambda p: "IN=" not in p and "kernel: " not in p)


@st.composite
def l4(draw, p=""):
    proto = draw(st.sampled_from(["TCP", "UDP", "ICMP", "47"]))
    row = {p + "proto": proto}
    if proto == "TCP":
        row.update({p + "spt": draw(u16), p + "dpt": draw(u16), p + "window": draw(u16), p + "res": draw(st.integers(0, 15)),
                    p + "urgp": draw(u16), p + "tcp_flag_bits": draw(st.integers(1, 511))})
        if draw(st.booleans()):
            row.update({p + "seq": draw(u32), p + "ack": draw(u32)})
        if draw(st.booleans()):
            row[p + "tcp_opt"] = draw(hexbytes)
    elif proto == "UDP":
        row.update({p + "spt": draw(u16), p + "dpt": draw(u16), p + "udp_len": draw(u16)})
    elif proto == "ICMP":
        row.update({p + "icmp_type": 8, p + "icmp_code": draw(u8), p + "icmp_id": draw(u16), p + "icmp_seq": draw(u16)})
    return row


@st.composite
def packet(draw):
    six = draw(st.booleans())
    row = {"in": draw(ifname), "out": draw(ifname)}
    if draw(st.booleans()):
        row.update(macsrc=draw(mac), macdst=draw(mac), macproto=draw(u16))
    elif row["in"]:
        row["mac"] = draw(mac)
    if six:
        row.update(src=draw(v6), dst=draw(v6), len=draw(u16), tc=draw(u8), hoplimit=draw(u8),
                   flowlbl=draw(st.integers(0, 0xFFFFF)))
    else:
        row.update(src=draw(v4), dst=draw(v4), len=draw(u16), tos=draw(u8) & 0x1E, prec=draw(u8) & 0xE0,
                   ttl=draw(u8), id=draw(u16))
        for flag in ("ce", "df", "mf"):
            if draw(st.booleans()):
                row[flag] = True
        if draw(st.booleans()):
            row["ip_opt"] = draw(hexbytes)
    row.update(draw(l4()))
    if row["proto"] == "ICMP":
        if six:
            row["proto"] = "ICMPv6"
            row["icmp_type"] = 128
        elif draw(st.booleans()):   # port unreachable quoting a packet
            row.update(icmp_type=3, icmp_code=3)
            del row["icmp_id"], row["icmp_seq"]
            inner = {"inner_src": draw(v4), "inner_dst": draw(v4), "inner_len": draw(u16), "inner_tos": 0,
                     "inner_prec": 0, "inner_ttl": draw(u8), "inner_id": draw(u16)}
            inner.update(draw(l4("inner_").filter(lambda r: r["inner_proto"] in ("TCP", "UDP"))))
            row.update(inner)
    if draw(st.booleans()):
        row.update(uid=draw(u32), gid=draw(u32))
    if draw(st.booleans()):
        row["mark"] = draw(st.integers(1, 2**32 - 1))
    if six and "family" not in row:
        row["family"] = 6
    row["family"] = 6 if six else 4
    return row


def _parsed(line: str, engine: str):
    arrays, n, errors, lines, other = parse_buffer((line + "\n").encode(), 1, 2024, 12, engine)
    rows = []
    for i in range(n):
        row = {}
        for name, arr in arrays.items():
            v = arr[i]
            if v is None or str(v) in ("<NA>", "nan"):
                continue
            row[name] = v.item() if hasattr(v, "item") else v
        rows.append(row)
    return rows, [e[0] for e in errors], other


ENVELOPES = st.sampled_from(["kmsg", "rfc5424", "rfc3339", "syslog", "dmesg-T", "dmesg", "bare"])
HOST = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=20)\
    .filter(lambda h: h != "-")   # a lone "-" is RFC 5424's nil host
TS = st.integers(0, 4_000_000_000).map(float)
UPTIME = st.integers(0, 10**9).map(lambda us: us / 1e6)


@pytest.mark.parametrize("engine", ENGINES)
@SETTINGS
@given(row=packet(), pre=prefix, envelope=ENVELOPES, ts=TS, host=HOST, uptime=UPTIME)
def test_render_then_parse_gives_back_every_field(engine, row, pre, envelope, ts, host, uptime):
    msg = pre + render_fields(row)
    line = render_envelope(msg, envelope, ts=ts, host=host, uptime=uptime)
    rows, errors, _ = _parsed(line, engine)
    assert errors == [] and len(rows) == 1, (line, errors)
    got = rows[0]
    for name, value in row.items():
        assert got.get(name) == value, (name, line)
    assert got["prefix"] == pre and got["envelope"] == envelope
    if envelope in ("rfc5424", "rfc3339", "syslog", "dmesg-T"):
        assert got["ts"] == ts if envelope != "syslog" else got["ts"] % 31_536_000 >= 0
    if envelope in ("rfc5424", "rfc3339", "syslog"):
        assert got["host"] == host
    if envelope in ("kmsg", "dmesg"):
        assert got["uptime"] == pytest.approx(uptime, abs=1e-6)
    for raw, short in (("src", "saddr"), ("dst", "daddr")):   # the schema's endpoints: same address, short text
        assert ipaddress.ip_address(got[short]) == ipaddress.ip_address(row[raw]), line
        if not getattr(ipaddress.ip_address(row[raw]), "ipv4_mapped", None):
            assert got[short] == ipaddress.ip_address(row[raw]).compressed, line
    extra = set(got) - set(row) - {"prefix", "envelope", "ts", "ts_local", "host", "uptime", "level", "lineno",
                                   "saddr", "daddr"}
    assert not extra, extra


@SETTINGS
@given(row=packet(), pre=prefix, cut=st.integers(0, 400))
def test_truncated_lines_never_give_wrong_values(row, pre, cut):
    """Cut a line at a token boundary: the result is an error or a row whose every value is right."""
    line = pre + render_fields(row)
    head = line[:cut]
    head = head[: head.rfind(" ") + 1] if " " in head and cut < len(line) else head
    for engine in ENGINES:
        rows, errors, other = _parsed(head, engine)
        for got in rows:
            for name, value in got.items():
                if name in row:
                    assert value == row[name], (name, head)


@pytest.mark.skipif(len(ENGINES) < 2, reason="C tokenizer not built")
@SETTINGS
@given(row=packet(), pre=prefix, envelope=ENVELOPES, edits=st.lists(
    st.tuples(st.integers(0, 500), st.sampled_from(["del", "dup", "chr"]), st.characters(min_codepoint=32,
                                                                                        max_codepoint=126)),
    max_size=4))
def test_c_and_python_agree_on_mangled_lines(row, pre, envelope, edits):
    line = render_envelope(pre + render_fields(row), envelope, ts=1.7e9, host="h", uptime=12.5)
    for pos, op, ch in edits:
        pos %= max(1, len(line))
        if op == "del":
            line = line[:pos] + line[pos + 1:]
        elif op == "dup":
            line = line[:pos] + line[pos:pos + 8] + line[pos:]
        else:
            line = line[:pos] + ch + line[pos + 1:]
    assert _parsed(line, "c") == _parsed(line, "python"), line
