"""`tcpwatch verify --pcap F --log L`: does the capture hold the packets the LOG lines describe?

Every IPv4/IPv6 TCP/UDP packet of the capture is read with scapy's PcapReader (all packets, not
only RSTs: any logged packet can be matched). A logged packet matches a captured one when the
5-tuple, TCP flags, IP ID (IPv4), TTL/hop limit, LEN and SEQ/ACK (when logged) agree and the
times differ by at most `skew` seconds (capture and log clocks differ; rows without ts match on
fields alone). Who sent each logged RST and the connection's state come from the pcap analysis
(tcpwatch.pcap.api.read_pcap) when it is installed; otherwise those columns say so.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from ..errors import InputError

UNAVAILABLE = "unavailable: tcpwatch.pcap not installed"


@dataclasses.dataclass(frozen=True)
class Captured:
    index: int
    ts: float
    saddr: str
    daddr: str
    proto: str
    sport: int | None
    dport: int | None
    flags: int | None
    ip_id: int | None
    ttl: int
    length: int
    seq: int | None
    ack: int | None


def read_capture(path: str) -> list[Captured]:
    """Every IP packet of a pcap/pcapng with the fields a LOG line can carry."""
    try:
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.utils import PcapReader
    except ImportError as err:  # pragma: no cover
        raise InputError(f"scapy is needed to read captures: {err}", "make setup") from None
    out = []
    try:
        reader = PcapReader(path)
    except (OSError, Exception) as err:   # scapy raises Scapy_Exception for a bad magic
        raise InputError(f"cannot read capture {path}: {err}", "give a pcap or pcapng file") from None
    with reader:
        for i, pkt in enumerate(reader):
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                continue
            six = ip.version == 6
            l4 = ip.getlayer(TCP) or ip.getlayer(UDP)
            tcp = l4 if isinstance(l4, TCP) else None
            out.append(Captured(
                index=i, ts=float(pkt.time),
                saddr=ipaddress.ip_address(ip.src).compressed, daddr=ipaddress.ip_address(ip.dst).compressed,
                proto="TCP" if tcp else ("UDP" if l4 is not None else str(ip.nh if six else ip.proto)),
                sport=int(l4.sport) if l4 is not None else None, dport=int(l4.dport) if l4 is not None else None,
                flags=int(tcp.flags) if tcp else None, ip_id=None if six else int(ip.id),
                ttl=int(ip.hlim if six else ip.ttl), length=int(ip.plen) + 40 if six else int(ip.len),
                seq=int(tcp.seq) if tcp else None, ack=int(tcp.ack) if tcp else None))
    return out


def _key(saddr, sport, daddr, dport, proto):
    return (saddr, sport, daddr, dport, proto)


def _same(row, cap: Captured) -> bool:
    def val(name):
        v = row.get(name)
        return None if v is None or v != v or str(v) == "<NA>" else int(v)

    checks = [("tcp_flag_bits", cap.flags), ("len", cap.length), ("seq", cap.seq), ("ack", cap.ack)]
    checks.append(("hoplimit", cap.ttl) if row.get("family") == 6 else ("ttl", cap.ttl))
    if row.get("family") != 6:
        checks.append(("id", cap.ip_id))
    return all(val(name) is None or val(name) == want for name, want in checks)


def verify(pcap: str, log: str, skew: float = 5.0) -> dict:
    """Match logged packets to captured ones; returns counts and per-row results (DataFrames)."""
    import pandas as pd

    from .api import parse_iptables_log

    logged, report = parse_iptables_log(log)
    captured = read_capture(pcap)
    index: dict[tuple, list[Captured]] = {}
    for cap in captured:
        index.setdefault(_key(cap.saddr, cap.sport, cap.daddr, cap.dport, cap.proto), []).append(cap)
    used: set[int] = set()
    results = []
    for row in logged.to_dict("records"):
        sport = None if pd.isna(row["sport"]) else int(row["sport"])
        dport = None if pd.isna(row["dport"]) else int(row["dport"])
        candidates = index.get(_key(row["saddr"], sport, row["daddr"], dport, row.get("proto")), [])
        ts = row["ts"]
        best = None
        for cap in candidates:
            if cap.index in used or not _same(row, cap):
                continue
            if ts == ts and abs(cap.ts - ts) > skew:
                continue
            if best is None or (ts == ts and abs(cap.ts - ts) < abs(best.ts - ts)):
                best = cap
        if best is not None:
            used.add(best.index)
        results.append({"lineno": row["lineno"], "file": row["file"], "kind": row["kind"], "prefix": row["prefix"],
                        "saddr": row["saddr"], "sport": sport, "daddr": row["daddr"], "dport": dport,
                        "status": "matched" if best else "logged-not-captured",
                        "packet_index": best.index if best else None,
                        "clock_offset": (best.ts - ts) if best and ts == ts else None})
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


def _add_pcap_context(matched, pcap: str) -> None:
    """Who sent each logged RST and the connection's state, from the pcap analysis when it exists."""
    if matched.empty:
        return
    try:
        from ..pcap.api import read_pcap
    except ImportError:
        matched["rst_sender"] = UNAVAILABLE
        matched["connection_state"] = UNAVAILABLE
        return
    events, _connections = read_pcap(pcap)
    resets = events[events["kind"] == "reset-sent"] if "kind" in events else events.iloc[0:0]
    by_tuple = {(r.saddr, int(r.sport), r.daddr, int(r.dport)): r for r in resets.itertuples()}
    senders, states = [], []
    for row in matched.itertuples():
        ev = by_tuple.get((row.saddr, row.sport, row.daddr, row.dport)) if row.kind == "reset-sent" else None
        senders.append(None if ev is None else (getattr(ev, "reason", None) or f"{ev.saddr}:{ev.sport}"))
        states.append(None if ev is None else getattr(ev, "state", None))
    matched["rst_sender"] = senders
    matched["connection_state"] = states
