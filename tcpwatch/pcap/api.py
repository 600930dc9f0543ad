"""Public API: `tcpwatch.read_pcap(path)` and the richer `analyze(path)` the CLI uses.

The DataFrames are built on first use: the terminal summary and the damage report come
straight from the core's packed records, so `tcpwatch pcap FILE` never imports pandas.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property

import numpy as np

from . import records, tables
from .core import Progress, RawResult, run


class PcapAnalysis:
    def __init__(self, raw: RawResult):
        self.path = raw.path
        self.stats = dict(raw.stats)
        self.stats["compressed"] = raw.notes.compressed
        self.stats["compression_problem"] = raw.notes.gzip_problem
        self.raw_events = tables.reported_events(raw.events)          # capture order
        self.raw_connections = tables.connections_in_order(raw.connections)
        self.raw_damage = raw.damage

    @cached_property
    def histories(self) -> list[str]:
        return tables.histories(self.raw_connections)

    @cached_property
    def conn_states(self) -> np.ndarray:
        """Zeek's conn_state per connection record (in the order of raw_connections)."""
        return tables.conn_states(self.raw_connections, self.histories)

    def event_states(self, ev: np.ndarray) -> list:
        """The final conn_state of each event's connection (REJ, RSTR, SF...)."""
        by_id = dict(zip(self.raw_connections["conn_id"].tolist(), self.conn_states.tolist()))
        return [by_id.get(conn_id) for conn_id in ev["conn_id"].tolist()]

    @cached_property
    def events(self):
        """DataFrame in the event schema (reset-sent, retransmit)."""
        return tables.events_frame(self.raw_events, self.path, self.event_states(self.raw_events))

    def events_head(self, count: int):
        """The first `count` events only (what the terminal shows), without building the rest."""
        head = self.raw_events[:count]
        return tables.events_frame(head, self.path, self.event_states(head))

    @cached_property
    def connections(self):
        """DataFrame, one row per Zeek-style connection."""
        return tables.connections_frame(self.raw_connections, self.path, self.histories, self.conn_states)

    @cached_property
    def damage(self):
        """DataFrame of skipped/damaged records (packet number, byte offset, reason)."""
        return tables.damage_frame(self.raw_damage)

    def damage_rows(self, limit: int) -> list[tuple[int, int, int, str]]:
        """(packet, byte offset, length, reason) of the first `limit` damaged records."""
        dm = self.raw_damage[:limit]
        reasons = [records.DAMAGE_REASONS.get(code) for code in dm["reason"].tolist()]
        return list(zip(dm["pkt_no"].tolist(), dm["offset"].tolist(), dm["length"].tolist(), reasons))

    def summary(self) -> dict:
        ev = self.raw_events
        is_rst = ev["kind"] == records.EV_RST
        rst, rx = ev[is_rst], ev[~is_rst]
        resets_by = Counter(zip(rst["role"].tolist(), rst["subtype"].tolist())).most_common()
        retrans_by = Counter(rx["subtype"].tolist()).most_common()
        out = {
            "file": self.path,
            "format": self.stats["format"],
            "packets": self.stats["packets"],
            "tcp_packets": self.stats["tcp_packets"],
            "connections": len(self.raw_connections),
            "conn_state": dict(Counter(self.conn_states.tolist()).most_common()),
            "resets": len(rst),
            "resets_by": {f"{records.ROLES[role]}/{records.RST_KINDS[kind]}": n for (role, kind), n in resets_by},
            "retransmissions": len(rx),
            "retransmissions_by_type": {records.RETRANS_SUBTYPES[kind]: n for kind, n in retrans_by},
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
        if self.stats.get("compression_problem"):
            out["skipped"]["compression_problem"] = self.stats["compression_problem"]
        return out


def analyze(path: str, progress: Progress | None = None, chunk_size: int | None = None) -> PcapAnalysis:
    return PcapAnalysis(run(str(path), progress=progress, chunk_size=chunk_size))


def read_pcap(path):
    """(events, connections) DataFrames for one capture (pcap or pcapng, optionally gzipped)."""
    result = analyze(path)
    return result.events, result.connections
