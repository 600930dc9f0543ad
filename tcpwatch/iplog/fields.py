"""The iptables LOG line grammar as data, shared by the C tokenizer and the pure-Python reference.

Source of truth: net/netfilter/nf_log_syslog.c (Linux >= 5.12; the older nf_log_ipv4.c,
nf_log_ipv6.c and nf_log_common.c write the same text) and ulogd2's printpkt.c (LOGEMU).
The kernel writes `<prefix>IN=<dev> OUT=<dev> ` and then, in a fixed order, one section per
protocol layer. Each section is a *context* below: a list of keys in the order the kernel
writes them (a key's rank is its index), so a key out of order, a repeated key or an unknown
token makes the whole line an error instead of a half-parsed row.

A key's token is matched as `KEY=value`, `KEY:value` (when the token ends with ':') or a bare
word. `conv` says how the value is checked and converted (see Conv); `column` is where it goes
(inside an ICMP error's quoted packet `[...]` the column gets the `inner_` prefix).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Conv(enum.IntEnum):
    """Value conversions; the numbers are shared with _iplogcore.c (keep in sync)."""

    STR = 0        # any text without spaces (interface names, raw MAC)
    UINT = 1       # decimal, at most the column's width
    HEX = 2        # hexadecimal with an optional 0x
    HEX4 = 3       # exactly four hex digits, no 0x (MACPROTO=0800)
    MAC = 4        # aa:bb:cc:dd:ee:ff
    IPV4 = 5
    IPV6 = 6
    FLAG = 7       # bare word -> boolean column True
    TCPFLAG = 8    # bare word -> bit `arg` OR-ed into tcp_flag_bits
    SRC = 9        # SRC=: stores the address, picks ip4/ip6 from it
    PROTO = 10     # PROTO=: stores the name, switches to that protocol's context
    OPTHEX = 11    # OPT followed by "(HEX)" (or "(TRUNCATED)")
    INCOMPLETE = 12  # INCOMPLETE [N bytes]   (ulogd: bare INCOMPLETE at the end)
    INNER = 13     # "[" opens the quoted packet of an ICMP error
    ARP = 14       # bare ARP: switches to the arp context
    TRUNCATED = 15  # bare TRUNCATED -> truncated=True
    EXT = 16       # IPv6 extension headers (raw text kept; FRAG/ID/INCOMPLETE decoded)


class Col(enum.IntEnum):
    """Column storage types; numbers shared with _iplogcore.c."""

    U8 = 0
    U16 = 1
    U32 = 2
    U64 = 3
    F64 = 4
    BOOL = 5
    STR = 6
    CAT = 7        # text from a small set (interfaces, prefixes): pandas Categorical, sorted categories


PANDAS_DTYPE = {Col.U8: "UInt8", Col.U16: "UInt16", Col.U32: "UInt32", Col.U64: "UInt64",
                Col.F64: "float64", Col.BOOL: "boolean", Col.STR: "string", Col.CAT: "category"}
MAX_VALUE = {Col.U8: 0xFF, Col.U16: 0xFFFF, Col.U32: 0xFFFFFFFF, Col.U64: 0xFFFFFFFFFFFFFFFF}

# Columns about the line itself, filled from the envelope (not from LOG fields).
LINE_COLUMNS: dict[str, Col] = {
    "lineno": Col.U64,
    "ts": Col.F64,          # seconds since the epoch, UTC; NaN when the envelope has no wall clock
    "uptime": Col.F64,      # printk's [seconds since boot] when the line carries it
    "host": Col.CAT,
    "envelope": Col.CAT,
    "level": Col.U8,        # syslog severity when the envelope says it
    "prefix": Col.CAT,
    "family": Col.U8,       # 4 or 6
    "ts_local": Col.BOOL,   # internal: ts was local wall-clock time without an offset
    "saddr": Col.STR,       # the schema's endpoints: src/dst of the outer packet, IPv6 in short form
    "daddr": Col.STR,
}

# Raw-field columns (outer packet). Order here is the DataFrame's column order.
FIELD_COLUMNS: dict[str, Col] = {
    "in": Col.CAT, "out": Col.CAT, "physin": Col.CAT, "physout": Col.CAT,
    "mac": Col.CAT, "tunnel": Col.STR, "macsrc": Col.STR, "macdst": Col.STR,
    "vproto": Col.U16, "vid": Col.U16, "macproto": Col.U16,
    "src": Col.STR, "dst": Col.STR, "len": Col.U32, "tos": Col.U8, "prec": Col.U8, "ttl": Col.U8,
    "id": Col.U16, "ce": Col.BOOL, "df": Col.BOOL, "mf": Col.BOOL, "frag": Col.U16, "ip_opt": Col.STR,
    "tc": Col.U8, "hoplimit": Col.U8, "flowlbl": Col.U32,
    "ip6_ext": Col.STR, "ip6_frag": Col.U16, "ip6_frag_id": Col.U32, "ip6_mf": Col.BOOL,
    "proto": Col.CAT,
    "spt": Col.U16, "dpt": Col.U16, "seq": Col.U32, "ack": Col.U32, "window": Col.U16, "res": Col.U8,
    "tcp_flag_bits": Col.U16, "urgp": Col.U16, "tcp_opt": Col.STR,
    "udp_len": Col.U16,
    "icmp_type": Col.U8, "icmp_code": Col.U8, "icmp_id": Col.U16, "icmp_seq": Col.U16,
    "icmp_parameter": Col.U8, "icmp_gateway": Col.STR, "icmp_pointer": Col.U32, "mtu": Col.U32,
    "spi": Col.U32,
    "incomplete": Col.U32, "truncated": Col.BOOL,
    "arp_htype": Col.U16, "arp_ptype": Col.U16, "arp_opcode": Col.U16,
    "arp_macsrc": Col.STR, "arp_ipsrc": Col.STR, "arp_macdst": Col.STR, "arp_ipdst": Col.STR,
    "uid": Col.U32, "gid": Col.U32, "mark": Col.U32,
}


@dataclass(frozen=True)
class Key:
    token: str        # "IN=", "FRAG:", "DF", "OPT", "["
    column: str
    conv: Conv
    arg: int = 0      # TCP flag bit


# TCP flag bits as on the wire (th->ae is bit 8 of the flag word).
TCP_FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
                 "ECE": 0x40, "CWR": 0x80, "AE": 0x100}
TCP_FLAG_ORDER = ("AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")  # kernel order

_TCP = [Key("SPT=", "spt", Conv.UINT), Key("DPT=", "dpt", Conv.UINT),
        Key("SEQ=", "seq", Conv.UINT), Key("ACK=", "ack", Conv.UINT),
        Key("WINDOW=", "window", Conv.UINT), Key("RES=", "res", Conv.HEX)]
_TCP += [Key(name, "tcp_flag_bits", Conv.TCPFLAG, TCP_FLAG_BITS[name]) for name in TCP_FLAG_ORDER]
_TCP += [Key("URGP=", "urgp", Conv.UINT), Key("OPT", "tcp_opt", Conv.OPTHEX)]

# context name -> keys in the order the kernel writes them
CONTEXTS: dict[str, list[Key]] = {
    "hdr": [
        Key("IN=", "in", Conv.STR), Key("OUT=", "out", Conv.STR),
        Key("PHYSIN=", "physin", Conv.STR), Key("PHYSOUT=", "physout", Conv.STR),
        Key("MAC=", "mac", Conv.STR), Key("TUNNEL=", "tunnel", Conv.STR),
        Key("MACSRC=", "macsrc", Conv.MAC), Key("MACDST=", "macdst", Conv.MAC),
        Key("VPROTO=", "vproto", Conv.HEX4), Key("VID=", "vid", Conv.UINT),
        Key("MACPROTO=", "macproto", Conv.HEX4),
        Key("ARP", "proto", Conv.ARP), Key("TRUNCATED", "truncated", Conv.TRUNCATED),
        Key("SRC=", "src", Conv.SRC),
    ],
    "ip4": [
        Key("DST=", "dst", Conv.IPV4), Key("LEN=", "len", Conv.UINT), Key("TOS=", "tos", Conv.HEX),
        Key("PREC=", "prec", Conv.HEX), Key("TTL=", "ttl", Conv.UINT), Key("ID=", "id", Conv.UINT),
        Key("CE", "ce", Conv.FLAG), Key("DF", "df", Conv.FLAG), Key("MF", "mf", Conv.FLAG),
        Key("FRAG:", "frag", Conv.UINT), Key("OPT", "ip_opt", Conv.OPTHEX),
        Key("TRUNCATED", "truncated", Conv.TRUNCATED), Key("PROTO=", "proto", Conv.PROTO),
    ],
    "ip6": [
        Key("DST=", "dst", Conv.IPV6), Key("LEN=", "len", Conv.UINT), Key("TC=", "tc", Conv.UINT),
        Key("HOPLIMIT=", "hoplimit", Conv.UINT), Key("FLOWLBL=", "flowlbl", Conv.UINT),
        Key("OPT", "ip6_ext", Conv.EXT), Key("FRAG:", "ip6_ext", Conv.EXT),
        Key("Unknown", "ip6_ext", Conv.EXT),
        Key("TRUNCATED", "truncated", Conv.TRUNCATED), Key("PROTO=", "proto", Conv.PROTO),
    ],
    "tcp": [Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE)] + _TCP,
    "udp": [Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE), Key("SPT=", "spt", Conv.UINT),
            Key("DPT=", "dpt", Conv.UINT), Key("LEN=", "udp_len", Conv.UINT)],
    "sctp": [Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE), Key("SPT=", "spt", Conv.UINT),
             Key("DPT=", "dpt", Conv.UINT)],
    "icmp": [
        Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE),
        Key("TYPE=", "icmp_type", Conv.UINT), Key("CODE=", "icmp_code", Conv.UINT),
        Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE),
        Key("ID=", "icmp_id", Conv.UINT), Key("SEQ=", "icmp_seq", Conv.UINT),
        Key("PARAMETER=", "icmp_parameter", Conv.UINT), Key("GATEWAY=", "icmp_gateway", Conv.IPV4),
        Key("[", "inner", Conv.INNER), Key("MTU=", "mtu", Conv.UINT),
    ],
    "icmp6": [
        Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE),
        Key("TYPE=", "icmp_type", Conv.UINT), Key("CODE=", "icmp_code", Conv.UINT),
        Key("ID=", "icmp_id", Conv.UINT), Key("SEQ=", "icmp_seq", Conv.UINT),
        Key("POINTER=", "icmp_pointer", Conv.HEX),
        Key("[", "inner", Conv.INNER), Key("MTU=", "mtu", Conv.UINT),
    ],
    "spi": [Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE), Key("SPI=", "spi", Conv.HEX)],
    "other": [],
    "arp": [
        Key("HTYPE=", "arp_htype", Conv.UINT), Key("PTYPE=", "arp_ptype", Conv.HEX),
        Key("OPCODE=", "arp_opcode", Conv.UINT),
        Key("INCOMPLETE", "incomplete", Conv.INCOMPLETE),
        Key("MACSRC=", "arp_macsrc", Conv.MAC), Key("IPSRC=", "arp_ipsrc", Conv.IPV4),
        Key("MACDST=", "arp_macdst", Conv.MAC), Key("IPDST=", "arp_ipdst", Conv.IPV4),
    ],
    # UID/GID/MARK close an outer line whatever the protocol was (entered from any context
    # after PROTO=/ARP when the token is none of that context's keys).
    "trailer": [Key("UID=", "uid", Conv.UINT), Key("GID=", "gid", Conv.UINT),
                Key("MARK=", "mark", Conv.HEX)],
}
CONTEXT_NAMES = tuple(CONTEXTS)

# PROTO=<value> -> next context ("other" for a number)
PROTO_CONTEXT = {"TCP": "tcp", "UDP": "udp", "UDPLITE": "udp", "SCTP": "sctp", "ICMP": "icmp",
                 "ICMPv6": "icmp6", "AH": "spi", "ESP": "spi"}

# Keys that must be there once a context was entered, unless the packet is a fragment or
# INCOMPLETE/TRUNCATED was logged (the kernel stops early then).
REQUIRED: dict[str, tuple[str, ...]] = {
    "hdr": ("IN=", "OUT="),
    "ip4": ("DST=", "LEN=", "TTL=", "ID=", "PROTO="),
    "ip6": ("DST=", "LEN=", "HOPLIMIT=", "PROTO="),
    "tcp": ("SPT=", "DPT=", "WINDOW=", "URGP="),
    "udp": ("SPT=", "DPT=", "LEN="),
    "sctp": ("SPT=", "DPT="),
    "icmp": ("TYPE=", "CODE="),
    "icmp6": ("TYPE=", "CODE="),
    "spi": ("SPI=",),
    "arp": ("HTYPE=", "PTYPE=", "OPCODE="),
}

# Contexts that may appear inside the quoted packet; their columns get INNER_PREFIX.
INNER_CONTEXTS = ("ip4", "ip6", "tcp", "udp", "sctp", "icmp", "icmp6", "spi", "other")
INNER_PREFIX = "inner_"
INNER_EXTRA = ("src", "proto", "incomplete", "truncated")


def _inner_columns() -> dict[str, Col]:
    names = {k.column for ctx in INNER_CONTEXTS for k in CONTEXTS[ctx] if k.conv != Conv.INNER}
    names.update(INNER_EXTRA)
    return {INNER_PREFIX + name: FIELD_COLUMNS[name] for name in FIELD_COLUMNS if name in names}


INNER_COLUMNS = _inner_columns()

# Every column the parser fills, in output order.
ALL_COLUMNS: dict[str, Col] = {**LINE_COLUMNS, **FIELD_COLUMNS, **INNER_COLUMNS}
COLUMN_INDEX = {name: i for i, name in enumerate(ALL_COLUMNS)}

# Envelope names (values of the `envelope` column).
ENVELOPES = ("kmsg", "rfc5424", "rfc3339", "syslog", "dmesg-T", "dmesg", "bare", "journal-json")


def column_for(key: Key, inner: bool) -> str:
    return INNER_PREFIX + key.column if inner else key.column


def tcp_flags_text(bits: int) -> str:
    """The flags as the kernel prints them, e.g. 'ACK RST'."""
    return " ".join(name for name in TCP_FLAG_ORDER if bits & TCP_FLAG_BITS[name])
