"""The conntrack entry record and its `ct_` columns; the one place a netlink message becomes fields."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import socket
from functools import lru_cache
from typing import Any


class CtLookup(enum.StrEnum):
    """What a lookup found; "no entry" is evidence too (conntrack saw the packet as INVALID or never)."""

    FOUND = "found"
    NO_ENTRY = "no-entry"            # conntrack is in use there, but holds nothing for this tuple
    NOT_TRACKED = "not-tracked"      # no rule in that namespace uses conntrack and no entry was ever seen
    UNAVAILABLE = "unavailable"      # no cache for that namespace (gone, failed, or still loading)

class CtEvent(enum.StrEnum):
    DUMP = "dump"        # present in the table when the cache started
    NEW = "new"
    UPDATE = "update"
    DESTROY = "destroy"

# Column name -> pandas dtype, in output order. Nullable: a missing entry is null, never 0.
CT_DTYPES: dict[str, str] = {
    "ct_lookup": "string",
    "ct_state": "string",
    "ct_status": "string",
    "ct_mark": "UInt32",
    "ct_zone": "UInt16",
    "ct_timeout": "UInt32",
    "ct_id": "UInt32",
    "ct_dir": "string",
    "ct_orig_src": "string",
    "ct_orig_dst": "string",
    "ct_orig_sport": "UInt16",
    "ct_orig_dport": "UInt16",
    "ct_reply_src": "string",
    "ct_reply_dst": "string",
    "ct_reply_sport": "UInt16",
    "ct_reply_dport": "UInt16",
    "ct_event": "string",
    "ct_seen_ts": "float64",
}

# include/uapi/linux/netfilter/nf_conntrack_tcp.h
TCP_CT_STATES: dict[int, str] = {
    0: "NONE", 1: "SYN_SENT", 2: "SYN_RECV", 3: "ESTABLISHED", 4: "FIN_WAIT", 5: "CLOSE_WAIT",
    6: "LAST_ACK", 7: "TIME_WAIT", 8: "CLOSE", 9: "SYN_SENT2",
}

# include/uapi/linux/netfilter/nf_conntrack_common.h, enum ip_conntrack_status (bit -> name)
CT_STATUS_BITS: dict[int, str] = {
    0: "EXPECTED", 1: "SEEN_REPLY", 2: "ASSURED", 3: "CONFIRMED", 4: "SRC_NAT", 5: "DST_NAT",
    6: "SEQ_ADJUST", 7: "SRC_NAT_DONE", 8: "DST_NAT_DONE", 9: "DYING", 10: "FIXED_TIMEOUT",
    11: "TEMPLATE", 12: "UNTRACKED", 13: "HELPER", 14: "OFFLOAD", 15: "HW_OFFLOAD",
}


def status_names(status: int | None) -> str | None:
    """Status bits as a stable, comma-joined list of names ("SEEN_REPLY,ASSURED,CONFIRMED")."""
    if status is None:
        return None
    return ",".join(name for bit, name in CT_STATUS_BITS.items() if status & (1 << bit))


def is_missing(value: Any) -> bool:
    """None, NaN, pandas NA, or an empty string: "no evidence" in any of the forms frames hold it."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return str(value) in ("", "<NA>", "nan", "NaT")


@lru_cache(maxsize=65536)
def canonical_addr(family: int, addr: str) -> tuple[int, str]:
    """(family, address) in the form conntrack reports it; v4-mapped IPv6 is the IPv4 packet it is."""
    ip = ipaddress.ip_address(addr)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return socket.AF_INET, str(ip.ipv4_mapped)
    return (socket.AF_INET if ip.version == 4 else socket.AF_INET6), ip.compressed


Tuple5 = tuple[int, str, int, str, int]   # family, src, sport, dst, dport


@dataclasses.dataclass(frozen=True, slots=True)
class CtEntry:
    ct_id: int
    family: int
    ct_orig_src: str
    ct_orig_sport: int
    ct_orig_dst: str
    ct_orig_dport: int
    ct_reply_src: str
    ct_reply_sport: int
    ct_reply_dst: str
    ct_reply_dport: int
    ct_state: str | None = None
    ct_status: str | None = None
    ct_mark: int = 0          # the kernel leaves mark and zone out of messages when they are 0
    ct_zone: int = 0
    ct_timeout: int | None = None
    ct_event: CtEvent = CtEvent.DUMP
    ct_seen_ts: float = 0.0
    first_seen_ts: float | None = None   # None: already there when the cache started
    destroyed_ts: float | None = None

    @property
    def orig_tuple(self) -> Tuple5:
        return (self.family, self.ct_orig_src, self.ct_orig_sport, self.ct_orig_dst, self.ct_orig_dport)

    @property
    def reply_tuple(self) -> Tuple5:
        return (self.family, self.ct_reply_src, self.ct_reply_sport, self.ct_reply_dst, self.ct_reply_dport)

    def as_columns(self, direction: str | None = None) -> dict[str, Any]:
        """The `ct_` columns of CT_DTYPES, ct_lookup = found; direction says which tuple the packet matched."""
        row = {name: getattr(self, name, None) for name in CT_DTYPES}
        row["ct_lookup"] = str(CtLookup.FOUND)
        row["ct_event"] = str(self.ct_event)
        row["ct_dir"] = direction
        return row


def empty_columns(outcome: CtLookup) -> dict[str, Any]:
    """The `ct_` columns when nothing was found: all null but the outcome."""
    row: dict[str, Any] = dict.fromkeys(CT_DTYPES)
    row["ct_lookup"] = str(outcome)
    return row


def fields_from_msg(msg) -> dict[str, Any] | None:
    """A pyroute2 nfct_msg as CtEntry fields (only those the message carries); None if not TCP."""
    family = msg["nfgen_family"]
    orig, reply = msg.get_attr("CTA_TUPLE_ORIG"), msg.get_attr("CTA_TUPLE_REPLY")
    if orig is None:
        return None
    proto = orig.get_attr("CTA_TUPLE_PROTO")
    if proto is None or proto.get_attr("CTA_PROTO_NUM") != socket.IPPROTO_TCP:
        return None
    fields: dict[str, Any] = {"family": family}
    for prefix, nla in (("ct_orig", orig), ("ct_reply", reply)):
        if nla is None:
            continue
        ip, ports = nla.get_attr("CTA_TUPLE_IP"), nla.get_attr("CTA_TUPLE_PROTO")
        v = "V4" if family == socket.AF_INET else "V6"
        fields[f"{prefix}_src"] = ip.get_attr(f"CTA_IP_{v}_SRC")
        fields[f"{prefix}_dst"] = ip.get_attr(f"CTA_IP_{v}_DST")
        fields[f"{prefix}_sport"] = ports.get_attr("CTA_PROTO_SRC_PORT")
        fields[f"{prefix}_dport"] = ports.get_attr("CTA_PROTO_DST_PORT")
    optional = {"ct_id": "CTA_ID", "ct_mark": "CTA_MARK", "ct_zone": "CTA_ZONE", "ct_timeout": "CTA_TIMEOUT"}
    for name, attr in optional.items():
        value = msg.get_attr(attr)
        if value is not None:
            fields[name] = value
    status = msg.get_attr("CTA_STATUS")
    if status is not None:
        fields["ct_status"] = status_names(status)
    info = msg.get_attr("CTA_PROTOINFO")
    tcp = info.get_attr("CTA_PROTOINFO_TCP") if info is not None else None
    if tcp is not None and tcp.get_attr("CTA_PROTOINFO_TCP_STATE") is not None:
        state = tcp.get_attr("CTA_PROTOINFO_TCP_STATE")
        fields["ct_state"] = TCP_CT_STATES.get(state, str(state))
    return fields
