"""Zeek's conn_state, from the endpoint states and history the C core tracked.

Mirrors `conn_state()` in Zeek's scripts/base/protocols/conn/main.zeek (rules, not code).
"""

from __future__ import annotations

import re

import numpy as np

from .records import ENDPOINT_STATES

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(len(ENDPOINT_STATES))
RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R.*")

CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")


def conn_state(orig: int, resp: int, orig_size: int, resp_size: int, history: str) -> str:
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (orig == RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            return "RSTOS0" if RSTOS0_HISTORY.fullmatch(history) else "OTH"
        return "RSTO"
    if resp == CLOSED and orig == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"


def conn_states(orig, resp, orig_size, resp_size, histories) -> np.ndarray:
    """Vectorised over a connection table: each distinct input combination is computed once."""
    keys = list(zip(orig.tolist(), resp.tolist(), (orig_size == 0).tolist(), (resp_size == 0).tolist(), histories))
    cache: dict = {}
    out = []
    for key in keys:
        state = cache.get(key)
        if state is None:
            o, r, oz, rz, h = key
            state = cache[key] = conn_state(o, r, 0 if oz else 1, 0 if rz else 1, h)
        out.append(state)
    return np.array(out, dtype=object)
