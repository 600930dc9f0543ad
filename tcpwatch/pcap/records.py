"""Record layouts shared with _pcapcore.c (packed structs) and the labels of their codes.

Each label table is the single place where a C enum value becomes the text tcpwatch prints.
"""

from __future__ import annotations

import numpy as np

ADDR = ("u1", 16)

EVENT_DTYPE = np.dtype([
    ("ts_ns", "<i8"), ("pkt_no", "<u8"), ("conn_id", "<u8"),
    ("saddr", ADDR), ("daddr", ADDR),
    ("seq", "<u4"), ("ack", "<u4"), ("payload", "<u4"),
    ("sport", "<u2"), ("dport", "<u2"), ("ipid", "<u2"), ("expected_ipid", "<u2"),
    ("family", "u1"), ("kind", "u1"), ("subtype", "u1"), ("role", "u1"),
    ("flags", "u1"), ("ttl", "u1"), ("expected_ttl", "u1"), ("basis", "u1"), ("why", "u1"),
    ("pad", "V3"),
])

CONN_DTYPE = np.dtype([
    ("ts_start_ns", "<i8"), ("ts_end_ns", "<i8"), ("conn_id", "<u8"), ("first_pkt", "<u8"),
    ("orig_addr", ADDR), ("resp_addr", ADDR),
    ("orig_pkts", "<u8"), ("resp_pkts", "<u8"), ("orig_ip_bytes", "<u8"), ("resp_ip_bytes", "<u8"),
    ("orig_bytes", "<u8"), ("resp_bytes", "<u8"),
    ("rst_orig", "<u4"), ("rst_resp", "<u4"), ("rexmit_orig", "<u4"), ("rexmit_resp", "<u4"),
    ("ooo_orig", "<u4"), ("ooo_resp", "<u4"),
    ("orig_port", "<u2"), ("resp_port", "<u2"),
    ("family", "u1"), ("orig_state", "u1"), ("resp_state", "u1"), ("hist_len", "u1"),
    ("history", "S32"),
])

DAMAGE_DTYPE = np.dtype([("pkt_no", "<u8"), ("offset", "<u8"), ("length", "<u8"), ("reason", "u1"), ("pad", "V7")])

EV_RST, EV_RETRANSMIT, EV_OUT_OF_ORDER = 1, 2, 3

RST_KINDS = {1: "refused", 2: "abort", 3: "after-fin", 4: "synack-reply", 5: "suspect", 6: "unmatched"}
RETRANS_SUBTYPES = {1: "retransmission", 2: "fast", 3: "spurious", 4: "out-of-order"}
ROLES = {0: "originator", 1: "responder"}
SIDES = {0: "client", 1: "server"}  # the originator is the client (SYN sender or Zeek's port guess)
WHY_BITS = {1: "seq outside receiver window", 2: "ttl differs from sender's other packets",
            4: "ip id does not follow sender's other packets"}

# Zeek's TCP endpoint states, in the order of its enum (TCP_INACTIVE ... TCP_RESET)
ENDPOINT_STATES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")

DAMAGE_REASONS = {
    1: "truncated record", 2: "truncated record header", 3: "record longer than the snap length",
    4: "garbage between records", 5: "invalid pcapng block", 6: "packet for an undeclared interface",
    7: "garbage until the end of the file",
}

TCP_FLAG_LETTERS = (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("A", 0x10), ("U", 0x20), ("E", 0x40), ("C", 0x80))


def check_layouts(core_module) -> None:
    """Fail loudly if the C structs and these dtypes ever drift apart."""
    for name, dtype in (("EVENT_SIZE", EVENT_DTYPE), ("CONN_SIZE", CONN_DTYPE), ("DAMAGE_SIZE", DAMAGE_DTYPE)):
        if getattr(core_module, name) != dtype.itemsize:
            raise RuntimeError(f"_pcapcore {name} {getattr(core_module, name)} != {dtype.itemsize}; rebuild (make setup)")
