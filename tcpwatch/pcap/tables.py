"""Packed records -> the project's event schema and the connections table (vectorised)."""

from __future__ import annotations

import socket

import numpy as np

from . import records, zeek

EVENT_EXTRA_DTYPES = {
    "conn_id": "UInt64",
    "packet": "UInt64",
    "rst_kind": "string",
    "rst_basis": "string",
    "rst_by": "string",
    "rst_side": "string",
    "retrans_type": "string",
    "seq": "UInt32",
    "ack": "UInt32",
    "flags": "string",
    "payload": "UInt32",
    "ttl": "UInt8",
    "suspect_why": "string",
    "file": "string",
}


def addresses(family: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Text addresses; each distinct (family, address) is formatted once."""
    if len(raw) == 0:
        return np.zeros(0, dtype=object)
    keyed = np.concatenate([family.reshape(-1, 1).astype(np.uint8), raw], axis=1)
    keys = np.ascontiguousarray(keyed).view(np.dtype((np.void, 17))).ravel()
    uniq, inverse = np.unique(keys, return_inverse=True)
    texts = []
    for key in uniq:
        b = bytes(key)
        texts.append(socket.inet_ntop(socket.AF_INET, b[13:17]) if b[0] == 4 else socket.inet_ntop(socket.AF_INET6, b[1:17]))
    return np.array(texts, dtype=object)[inverse.ravel()]


def _labels(codes: np.ndarray, table: dict) -> np.ndarray:
    lut = np.array([table.get(i) for i in range(256)], dtype=object)
    return lut[codes]


def _flag_text(flags: np.ndarray) -> np.ndarray:
    lut = np.array(["".join(ch for ch, bit in records.TCP_FLAG_LETTERS if i & bit) for i in range(256)], dtype=object)
    return lut[flags]


def _why_text(why: np.ndarray) -> np.ndarray:
    lut = np.array(["; ".join(t for bit, t in records.WHY_BITS.items() if i & bit) or None for i in range(256)],
                   dtype=object)
    return lut[why]


def reported_events(ev: np.ndarray) -> np.ndarray:
    """The events tcpwatch reports (resets, retransmissions; out-of-order segments are counted per
    connection instead), in capture order: by timestamp, then packet number."""
    ev = ev[ev["kind"] != records.EV_OUT_OF_ORDER]
    return ev[np.lexsort((ev["pkt_no"], ev["ts_ns"]))]


def connections_in_order(cn: np.ndarray) -> np.ndarray:
    """Connections by start time, then first packet number."""
    return cn[np.lexsort((cn["first_pkt"], cn["ts_start_ns"]))]


def histories(cn: np.ndarray) -> list[str]:
    return [h.decode("ascii", "replace") for h in cn["history"].tolist()]


def conn_states(cn: np.ndarray, history: list[str]) -> np.ndarray:
    """Zeek's conn_state of each connection record."""
    return zeek.conn_states(cn["orig_state"], cn["resp_state"], cn["orig_bytes"], cn["resp_bytes"], history)


def events_frame(ev: np.ndarray, path: str | None = None, state: list | None = None):
    """The event table of `reported_events(...)` (already filtered and in order); `state` is the
    conn_state of each event's connection."""
    import pandas as pd

    from ..events import Kind, Source, conform

    is_rst = ev["kind"] == records.EV_RST
    frame = pd.DataFrame({
        "ts": ev["ts_ns"] / 1e9,
        "source": str(Source.PCAP),
        "kind": np.where(is_rst, str(Kind.RESET_SENT), str(Kind.RETRANSMIT)),
        "family": ev["family"],
        "saddr": addresses(ev["family"], ev["saddr"]),
        "sport": ev["sport"],
        "daddr": addresses(ev["family"], ev["daddr"]),
        "dport": ev["dport"],
    })
    rst_kind = np.where(is_rst, _labels(ev["subtype"], records.RST_KINDS), None)
    retrans = np.where(is_rst, None, _labels(ev["subtype"], records.RETRANS_SUBTYPES))
    frame["reason"] = np.where(is_rst, rst_kind, retrans)
    frame["conn_id"] = ev["conn_id"]
    frame["packet"] = ev["pkt_no"]
    frame["rst_kind"] = rst_kind
    frame["rst_basis"] = np.where(is_rst, _labels(ev["basis"], records.RST_KINDS), None)
    frame["rst_by"] = _labels(ev["role"], records.ROLES)
    frame["rst_side"] = _labels(ev["role"], records.SIDES)
    frame.loc[~is_rst, ["rst_by", "rst_side"]] = None
    frame["retrans_type"] = retrans
    frame["seq"] = ev["seq"]
    frame["ack"] = ev["ack"]
    frame["flags"] = _flag_text(ev["flags"])
    frame["payload"] = ev["payload"]
    frame["ttl"] = ev["ttl"]
    frame["suspect_why"] = np.where(is_rst, _why_text(ev["why"]), None)
    frame["file"] = path
    if state is not None:
        frame["state"] = state
    return conform(frame, EVENT_EXTRA_DTYPES)


CONNECTION_DTYPES = {
    "conn_id": "UInt64", "ts": "float64", "duration": "float64",
    "orig_h": "string", "orig_p": "UInt16", "resp_h": "string", "resp_p": "UInt16", "family": "UInt8",
    "conn_state": "string", "history": "string",
    "orig_pkts": "UInt64", "orig_ip_bytes": "UInt64", "resp_pkts": "UInt64", "resp_ip_bytes": "UInt64",
    "orig_bytes": "UInt64", "resp_bytes": "UInt64",
    "resets_orig": "UInt32", "resets_resp": "UInt32", "retrans_orig": "UInt32", "retrans_resp": "UInt32",
    "ooo_orig": "UInt32", "ooo_resp": "UInt32",
    "orig_tcp_state": "string", "resp_tcp_state": "string", "first_packet": "UInt64", "file": "string",
}


def connections_frame(cn: np.ndarray, path: str | None = None, history: list[str] | None = None,
                      state: np.ndarray | None = None):
    """The connection table of `connections_in_order(...)`; history and state are computed unless given."""
    import pandas as pd

    history = histories(cn) if history is None else history
    frame = pd.DataFrame({
        "conn_id": cn["conn_id"],
        "ts": cn["ts_start_ns"] / 1e9,
        "duration": (cn["ts_end_ns"] - cn["ts_start_ns"]) / 1e9,
        "orig_h": addresses(cn["family"], cn["orig_addr"]),
        "orig_p": cn["orig_port"],
        "resp_h": addresses(cn["family"], cn["resp_addr"]),
        "resp_p": cn["resp_port"],
        "family": cn["family"],
        "conn_state": conn_states(cn, history) if state is None else state,
        "history": np.array(history, dtype=object),
        "orig_pkts": cn["orig_pkts"], "orig_ip_bytes": cn["orig_ip_bytes"],
        "resp_pkts": cn["resp_pkts"], "resp_ip_bytes": cn["resp_ip_bytes"],
        "orig_bytes": cn["orig_bytes"], "resp_bytes": cn["resp_bytes"],
        "resets_orig": cn["rst_orig"], "resets_resp": cn["rst_resp"],
        "retrans_orig": cn["rexmit_orig"], "retrans_resp": cn["rexmit_resp"],
        "ooo_orig": cn["ooo_orig"], "ooo_resp": cn["ooo_resp"],
        "orig_tcp_state": _labels(cn["orig_state"], dict(enumerate(records.ENDPOINT_STATES))),
        "resp_tcp_state": _labels(cn["resp_state"], dict(enumerate(records.ENDPOINT_STATES))),
        "first_packet": cn["first_pkt"],
        "file": path,
    })
    return frame.astype(CONNECTION_DTYPES)


def damage_frame(dm: np.ndarray):
    import pandas as pd

    return pd.DataFrame({
        "packet": dm["pkt_no"].astype("uint64"),
        "offset": dm["offset"].astype("uint64"),
        "length": dm["length"].astype("uint64"),
        "reason": _labels(dm["reason"], records.DAMAGE_REASONS),
    })
