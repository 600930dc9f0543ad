"""`tcpwatch verify --pcap F --log L`: does the capture hold the packets the LOG lines describe?

Every IP packet of the capture is read with scapy's PcapReader (all packets, not only RSTs: any
logged packet can be matched). A logged packet matches a captured one when the 5-tuple, TCP
flags, IP ID (IPv4), TTL/hop limit, LEN and SEQ/ACK (when logged) agree and the times differ by
at most `skew` seconds (capture and log clocks differ; rows without ts match on fields alone).
One packet may match several lines when their prefixes differ (two rules logged it). Who sent
each logged RST and the connection's state come from the pcap analysis
(tcpwatch.pcap.api.read_pcap), joined on the packet number.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Iterator

from ..errors import InputError


@dataclasses.dataclass(frozen=True)
class Captured:
    index: int          # packet number in the file, from 0
    ts: float
    saddr: str
    daddr: str
    proto: str
    sport: int | None
    dport: int | None
    flags: int | None
    ip_id: int | None
    ttl: int
    length: int         # IP total length (IPv6: 40 + payload length), as LOG's LEN=
    seq: int | None
    ack: int | None


def iter_capture(path: str, skipped: list[int] | None = None) -> Iterator[tuple[Captured, object]]:
    """(Captured, scapy IP/IPv6 layer) for every IP packet of a pcap/pcapng; other packets are
    counted in skipped[0] when a list is given."""
    try:
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.utils import PcapReader
    except ImportError as err:  # pragma: no cover
        raise InputError(f"scapy is needed to read captures: {err}", "make setup") from None
    try:
        reader = PcapReader(path)
    except (OSError, Exception) as err:   # scapy raises Scapy_Exception for a bad magic
        raise InputError(f"cannot read capture {path}: {err}", "give a pcap or pcapng file") from None
    with reader:
        for i, pkt in enumerate(reader):
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                if skipped is not None:
                    skipped[0] += 1
                continue
            six = ip.version == 6
            l4 = ip.getlayer(TCP) or ip.getlayer(UDP)
            tcp = l4 if isinstance(l4, TCP) else None
            yield Captured(
                index=i, ts=float(pkt.time),
                saddr=ipaddress.ip_address(ip.src).compressed, daddr=ipaddress.ip_address(ip.dst).compressed,
                proto="TCP" if tcp else ("UDP" if l4 is not None else str(ip.nh if six else ip.proto)),
                sport=int(l4.sport) if l4 is not None else None, dport=int(l4.dport) if l4 is not None else None,
                flags=int(tcp.flags) if tcp else None, ip_id=None if six else int(ip.id),
                ttl=int(ip.hlim if six else ip.ttl), length=int(ip.plen) + 40 if six else int(ip.len),
                seq=int(tcp.seq) if tcp else None, ack=int(tcp.ack) if tcp else None), ip


def read_capture(path: str) -> list[Captured]:
    """Every IP packet of a pcap/pcapng with the fields a LOG line can carry."""
    return [cap for cap, _ip in iter_capture(path)]


def _same(row, cap: Captured) -> bool:
    def val(name):
        v = row.get(name)
        return None if v is None or v != v or str(v) == "<NA>" else int(v)

    checks = [("tcp_flag_bits", cap.flags), ("len", cap.length), ("seq", cap.seq), ("ack", cap.ack)]
    checks.append(("hoplimit", cap.ttl) if row.get("family") == 6 else ("ttl", cap.ttl))
    if row.get("family") != 6:
        checks.append(("id", cap.ip_id))
    return all(val(name) is None or val(name) == want for name, want in checks)


def _port(value) -> int | None:
    return None if value is None or value != value or str(value) == "<NA>" else int(value)


def match_logged(logged, captured: list[Captured], skew: float) -> list[tuple[dict, Captured | None]]:
    """Each logged row (as a dict) with the captured packet it describes, or None."""
    index: dict[tuple, list[Captured]] = {}
    for cap in captured:
        index.setdefault((cap.saddr, cap.sport, cap.daddr, cap.dport, cap.proto), []).append(cap)
    used: set[tuple[int, str]] = set()
    out = []
    for row in logged.to_dict("records"):
        key = (row["saddr"], _port(row["sport"]), row["daddr"], _port(row["dport"]), row.get("proto"))
        ts, prefix = row["ts"], row.get("prefix")
        best = None
        for cap in index.get(key, []):
            if (cap.index, prefix) in used or not _same(row, cap):
                continue
            if ts == ts and abs(cap.ts - ts) > skew:
                continue
            if best is None or (ts == ts and abs(cap.ts - ts) < abs(best.ts - ts)):
                best = cap
        if best is not None:
            used.add((best.index, prefix))
        out.append((row, best))
    return out


def verify(pcap: str, log: str, skew: float = 5.0) -> dict:
    """Match logged packets to captured ones; returns counts and per-row results (DataFrames)."""
    import pandas as pd

    from .api import parse_iptables_log

    logged, report = parse_iptables_log(log)
    captured = read_capture(pcap)
    results = []
    for row, best in match_logged(logged, captured, skew):
        ts = row["ts"]
        results.append({"lineno": row["lineno"], "file": row["file"], "kind": row["kind"], "prefix": row["prefix"],
                        "saddr": row["saddr"], "sport": _port(row["sport"]), "daddr": row["daddr"],
                        "dport": _port(row["dport"]),
                        "status": "matched" if best else "logged-not-captured",
                        "packet_index": best.index if best else None,
                        "clock_offset": (best.ts - ts) if best and ts == ts else None})
    used = {r["packet_index"] for r in results if r["packet_index"] is not None}
    unlogged_rsts = [c for c in captured if c.flags is not None and c.flags & 0x04 and c.index not in used]
    matched = pd.DataFrame(results)
    _add_pcap_context(matched, pcap)
    return {
        "summary": {"logged": len(logged), "matched": sum(r["status"] == "matched" for r in results),
                    "logged_not_captured": sum(r["status"] != "matched" for r in results),
                    "captured_rsts_not_logged": len(unlogged_rsts), "captured_packets": len(captured),
                    "bad_log_lines": len(report.errors)},
        "logged": matched,
        "unlogged_rsts": pd.DataFrame([dataclasses.asdict(c) for c in unlogged_rsts]),
    }


# pcap-analysis columns added to each logged RST that matched a captured packet
CONTEXT_COLUMNS = {"rst_sender": "rst_side", "rst_by": "rst_by", "rst_kind": "rst_kind", "conn_id": "conn_id",
                   "conn_state": "state"}


def _add_pcap_context(matched, pcap: str) -> None:
    """Who sent each logged RST (client/server, originator/responder, what kind of reset) and the
    connection's Zeek state and history in the capture, from the pcap analysis."""
    import pandas as pd

    from ..pcap.api import read_pcap

    if matched.empty:
        return
    events, connections = read_pcap(pcap)
    resets = events[events["kind"] == "reset-sent"]
    by_packet = {int(p) - 1: r for p, r in zip(resets["packet"], resets.to_dict("records"))}  # packet is 1-based
    history = dict(zip(connections["conn_id"], connections["history"]))
    rows = [by_packet.get(int(p)) if k == "reset-sent" and pd.notna(p) else None
            for k, p in zip(matched["kind"], matched["packet_index"])]
    for column, source in CONTEXT_COLUMNS.items():
        matched[column] = [None if r is None or pd.isna(r[source]) else r[source] for r in rows]
    matched["conn_history"] = [None if r is None else history.get(r["conn_id"]) for r in rows]
