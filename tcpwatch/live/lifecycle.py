"""Connections: which events belong to one, who closed first, how it ended, its retransmits.

The tracker sees every batch in time order and gives each event a connection id (`conn`):
one per socket life, kept across all its events. Sockets are known by (netns, kernel socket
address); a new life starts when a socket connects or listens again, or when its addresses
change. Events without a socket (a reset answering a packet for a closed port) join the
connection with the same endpoints in that namespace. A SYN/ACK retransmit names the request
socket; the child socket it becomes joins it by endpoints.

The id is the socket cookie when the kernel gave one with the connection's first event, else a
stable id derived from the namespace, socket address and endpoints (cookies are generated
lazily by the kernel: most sockets have none until late in their life).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

ETIMEDOUT, ECONNRESET, ECONNREFUSED, EPIPE = 110, 104, 111, 32
STARTS = {("CLOSE", "SYN_SENT"), ("CLOSE", "LISTEN"), ("LISTEN", "SYN_RECV")}
# Closing states from which the kernel hands an orderly-closed connection to a timewait socket:
# the full socket moves to CLOSE there, and no tracepoint reports TIME_WAIT itself.
TIMEWAIT_FROM = {"FIN_WAIT1", "FIN_WAIT2", "CLOSING"}
LOCAL_IS_DESTINATION = {"reset-received", "wire-in"}

Endpoint = tuple[str, int]


@dataclass
class Connection:
    conn: int
    netns: int | None
    local: Endpoint
    remote: Endpoint
    first_ts: float
    last_ts: float
    role: str | None = None            # client (connected), server (accepted), listener
    cookie: int | None = None
    pid: int | None = None
    comm: str | None = None
    established_ts: float | None = None
    closed_ts: float | None = None
    path: list[str] = field(default_factory=list)
    active_close: bool | None = None   # True: this side sent FIN first; False: the peer did
    err: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    retransmits: list[float] = field(default_factory=list)
    retransmit_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.closed_ts is not None

    @property
    def complete(self) -> bool:
        return self.local[1] != 0 and self.remote[1] != 0

    def first_close(self) -> str | None:
        """client or server (or local/peer when the role is unknown)."""
        if self.active_close is None:
            return None
        if self.role not in ("client", "server"):
            return "local" if self.active_close else "peer"
        other = {"client": "server", "server": "client"}[self.role]
        return self.role if self.active_close else other

    def ended(self) -> str:
        if self.resets_received or self.err in (ECONNRESET, ECONNREFUSED, EPIPE):
            return "rst-received"
        if self.err == ETIMEDOUT:
            return "timeout"
        if self.resets_sent:
            return "rst-sent"
        if not self.closed:
            return "open"
        if self.active_close is not None:
            return "fin"
        return "abandoned" if self.established_ts is None else "closed"

    def gaps(self) -> list[float]:
        times = self.retransmits
        return [round(b - a, 6) for a, b in zip(times, times[1:])]

    def as_dict(self) -> dict:
        end = self.closed_ts if self.closed else self.last_ts
        return {
            "conn": self.conn, "netns": self.netns, "role": self.role,
            "local": _text(self.local), "remote": _text(self.remote), "pid": self.pid, "comm": self.comm,
            "first_ts": self.first_ts, "last_ts": self.last_ts, "duration": round(end - self.first_ts, 6),
            "states": " > ".join(self.path), "first_close": self.first_close(), "ended": self.ended(),
            "err": self.err or None, "resets_sent": self.resets_sent, "resets_received": self.resets_received,
            "retransmits": len(self.retransmits), "retransmit_kinds": dict(self.retransmit_kinds),
            "retransmit_gaps": self.gaps(),
            "retransmit_first": self.retransmits[0] if self.retransmits else None,
            "retransmit_last": self.retransmits[-1] if self.retransmits else None,
        }


def _text(ep: Endpoint) -> str:
    addr, port = ep
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def derived_id(netns, sk, local: Endpoint, remote: Endpoint, generation: int) -> int:
    text = f"{netns}|{sk}|{local}|{remote}|{generation}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


class Tracker:
    """A stage: feed() adds `conn` to every row and keeps the Connection records."""

    def __init__(self, max_connections: int = 100_000):
        self.connections: dict[int, Connection] = {}
        self._by_sock: dict[tuple, Connection] = {}
        self._by_tuple: dict[tuple, Connection] = {}
        self._generation: dict[tuple, int] = {}
        self.max_connections = max_connections
        self.forgotten = 0      # closed connections dropped to bound memory (reported in the summary)

    # -- identity -------------------------------------------------------------------------
    @staticmethod
    def _tuple_key(netns, local: Endpoint, remote: Endpoint) -> tuple:
        return (netns, *sorted([local, remote]))

    def _new(self, row, netns, sk, local, remote, ts) -> Connection:
        generation = self._generation.get((netns, sk), 0)
        self._generation[(netns, sk)] = generation + 1
        conn_id = row["cookie"] or derived_id(netns, sk, local, remote, generation)
        while conn_id in self.connections:
            conn_id = (conn_id + 1) & (2**63 - 1)
        conn = Connection(conn_id, netns, local, remote, ts, ts, cookie=row["cookie"])
        self.connections[conn_id] = conn
        return conn

    def _index(self, conn: Connection, sk) -> None:
        if sk is not None:
            self._by_sock[(conn.netns, sk)] = conn
        if conn.complete:
            self._by_tuple[self._tuple_key(conn.netns, conn.local, conn.remote)] = conn

    def _find(self, row, netns, sk, local, remote) -> Connection | None:
        kind, old, new = row["kind"], row["old_state"], row["state"]
        complete = local[1] != 0 and remote[1] != 0
        by_tuple = self._by_tuple.get(self._tuple_key(netns, local, remote)) if complete else None
        if kind == "state-change" and (old, new) in STARTS:
            # a new life; a child socket takes over what its request socket began (SYN/ACK retransmits)
            if (old, new) == ("LISTEN", "SYN_RECV") and by_tuple is not None and not by_tuple.closed:
                return by_tuple
            return None
        conn = self._by_sock.get((netns, sk)) if sk is not None else None
        if conn is not None and conn.complete and complete and (conn.local, conn.remote) != (local, remote):
            return None     # the socket address was reused by another connection
        return conn or by_tuple

    # -- the stage ------------------------------------------------------------------------
    def feed(self, frame):
        import pandas as pd

        if frame is None or frame.empty:
            return frame
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        frame = frame.copy()
        frame["conn"] = pd.array([self._track(r) for r in rows], dtype="UInt64")
        if len(self.connections) > self.max_connections:
            self._forget_oldest_closed()
        return frame

    def _forget_oldest_closed(self) -> None:
        closed = sorted((c for c in self.connections.values() if c.closed), key=lambda c: c.last_ts)
        for conn in closed[: len(self.connections) - self.max_connections // 2]:
            del self.connections[conn.conn]
            self.forgotten += 1
        live = set(map(id, self.connections.values()))
        for index in (self._by_sock, self._by_tuple):
            for key in [k for k, c in index.items() if id(c) not in live]:
                del index[key]

    def flush(self):
        return None

    def close(self) -> None:
        pass

    def _track(self, row) -> int:
        netns, sk, ts, kind = row["netns"], row["sk"], row["ts"], row["kind"]
        src, dst = (row["saddr"], row["sport"] or 0), (row["daddr"], row["dport"] or 0)
        local, remote = (dst, src) if kind in LOCAL_IS_DESTINATION else (src, dst)
        conn = self._find(row, netns, sk, local, remote)
        if conn is None:
            conn = self._new(row, netns, sk, local, remote, ts)
        elif not conn.complete and local[1] and remote[1]:
            conn.local, conn.remote = local, remote      # connect() learns its port after SYN_SENT
        self._index(conn, sk)
        self._update(conn, row, ts)
        return conn.conn

    def _update(self, conn: Connection, row, ts: float) -> None:
        kind = row["kind"]
        conn.last_ts = max(conn.last_ts, ts)
        if row["pid"] is not None:
            conn.pid, conn.comm = row["pid"], row["comm"]
        if row["cookie"] and conn.cookie is None:
            conn.cookie = row["cookie"]
        if kind == "retransmit":
            conn.retransmits.append(ts)
            rk = row.get("retransmit") or "unknown"
            conn.retransmit_kinds[rk] = conn.retransmit_kinds.get(rk, 0) + 1
        elif kind == "reset-sent":
            conn.resets_sent += 1
        elif kind == "reset-received":
            conn.resets_received += 1
        elif kind == "state-change":
            self._state(conn, row["old_state"], row["state"], row["err"] or 0, ts)

    @staticmethod
    def _state(conn: Connection, old: str, new: str, err: int, ts: float) -> None:
        if not conn.path:
            conn.path.append(old)
        if new == "SYN_SENT":
            conn.role = "client"
        elif new == "SYN_RECV":
            conn.role = "server"
        elif new == "LISTEN":
            conn.role = "listener"
        elif new == "ESTABLISHED":
            conn.established_ts = ts
        elif old == "ESTABLISHED" and new == "FIN_WAIT1" and conn.active_close is None:
            conn.active_close = True
        elif old == "ESTABLISHED" and new == "CLOSE_WAIT" and conn.active_close is None:
            conn.active_close = False
        if new == "CLOSE":
            conn.closed_ts = ts
            conn.err = err
            if old in TIMEWAIT_FROM and not err:
                new = "TIME_WAIT"
        conn.path.append(new)

    # -- summaries ------------------------------------------------------------------------
    def summaries(self, include_listeners: bool = False) -> list[dict]:
        return [c.as_dict() for c in sorted(self.connections.values(), key=lambda c: c.first_ts)
                if include_listeners or c.role != "listener"]

    def retransmit_flows(self) -> list[dict]:
        """Per connection with retransmits: how many, first and last, and the gaps between them."""
        keep = ("conn", "netns", "local", "remote", "pid", "comm", "retransmits", "retransmit_kinds",
                "retransmit_gaps", "retransmit_first", "retransmit_last", "ended")
        return [{k: v for k, v in c.items() if k in keep} for c in self.summaries() if c["retransmits"]]


__all__ = ["Connection", "Tracker", "derived_id"]
