"""Public API: `tcpwatch.read_pcap(path)` and the richer `analyze(path)` the CLI uses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from . import tables
from .core import Progress, run


@dataclass
class PcapAnalysis:
    path: str
    events: Any        # DataFrame in the event schema (reset-sent, retransmit)
    connections: Any   # DataFrame, one row per Zeek-style connection
    damage: Any        # DataFrame of skipped/damaged records (packet number, byte offset, reason)
    stats: dict

    def summary(self) -> dict:
        ev, cn = self.events, self.connections
        rst = ev[ev["kind"] == "reset-sent"]
        rx = ev[ev["kind"] == "retransmit"]
        out = {
            "file": self.path,
            "format": self.stats["format"],
            "packets": self.stats["packets"],
            "tcp_packets": self.stats["tcp_packets"],
            "connections": len(cn),
            "conn_state": dict(Counter(cn["conn_state"].tolist()).most_common()),
            "resets": len(rst),
            "resets_by": dict(Counter(zip(rst["rst_by"].tolist(), rst["rst_kind"].tolist())).most_common()),
            "retransmissions": len(rx),
            "retransmissions_by_type": dict(Counter(rx["retrans_type"].tolist()).most_common()),
            "out_of_order": self.stats["out_of_order"],
            "skipped": {
                "damaged_records": self.stats["damaged"],
                "ip_fragments": self.stats["ip_fragments"],
                "malformed": self.stats["malformed"],
                "unsupported_linktype": self.stats["unsupported_linktype"],
                "non_ip": self.stats["non_ip"],
                "non_tcp": self.stats["non_tcp"],
            },
        }
        out["resets_by"] = {f"{by}/{kind}": n for (by, kind), n in out["resets_by"].items()}
        if self.stats.get("compression_problem"):
            out["skipped"]["compression_problem"] = self.stats["compression_problem"]
        return out


def analyze(path: str, progress: Progress | None = None, chunk_size: int | None = None) -> PcapAnalysis:
    raw = run(str(path), progress=progress, chunk_size=chunk_size)
    stats = dict(raw.stats)
    stats["compressed"] = raw.notes.compressed
    stats["compression_problem"] = raw.notes.gzip_problem
    connections = tables.connections_frame(raw.connections, str(path))
    events = tables.events_frame(raw.events, str(path))
    # each event carries the final Zeek conn_state of its connection (REJ, RSTR, SF...)
    events["state"] = events["conn_id"].map(dict(zip(connections["conn_id"], connections["conn_state"])))
    events["state"] = events["state"].astype("string")
    return PcapAnalysis(
        path=str(path),
        events=events,
        connections=connections,
        damage=tables.damage_frame(raw.damage),
        stats=stats,
    )


def read_pcap(path):
    """(events, connections) DataFrames for one capture (pcap or pcapng, optionally gzipped)."""
    result = analyze(path)
    return result.events, result.connections
