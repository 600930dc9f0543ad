"""Why a reset happened: a table of evidence patterns -> a stable cause code, explanation and hint.

The table is data: RULES is read top to bottom and the first rule whose conditions all hold wins;
the last rule matches everything (`unknown`). A condition names an evidence key and the set of
values it accepts (None in the set accepts "no evidence"); keys a rule does not name are ignored.

Evidence keys (all optional; frame columns in EVIDENCE_COLUMNS):
  kind        reset-sent | reset-received | state-change | ... (tcpwatch.events.Kind)
  direction   sent | received (derived from kind when absent)
  origin      tcp-stack | netfilter | remote
  reason      enum sk_rst_reason name from tcp_send_reset (NO_SOCKET, TCP_ABORT_ON_CLOSE, ...)
  state       TCP state of the socket (for a state change: the new state), without "TCP_"
  old_state   for a state change: the state it left
  trigger     class of the segment a sent reset answered: syn | synack | fin | ack | rst
              (derived from trigger_flags: "SA", "S.", "FA", or a TCP flags byte)
  ct_state    conntrack TCP state (tcpwatch.conntrack), ct_lookup found | no-entry | not-tracked,
              ct_event the last conntrack event of the entry (new | update | destroy | dump)
  delivered   for a received reset: yes when a socket took it, no when it was seen only on the
              device (dropped before TCP, or no socket); absent when the source cannot tell
  error       socket error at the state change (ETIMEDOUT, ECONNRESET, ... or its number)
  timer       which timer gave up, when the probe can tell: retransmit | keepalive

What the 6.18 kernel reports (measured in lab namespaces, tcp_send_reset / inet_sock_set_state):
  SYN to a closed port            NO_SOCKET, no socket (state 0); the client gets SYN_SENT -> CLOSE
  SYN/ACK to a closed port        NO_SOCKET, no socket
  SYN/ACK to a listening port     TCP_FLAGS, state LISTEN (addresses are the listener's: dest 0.0.0.0:0)
  FIN to a socket already gone    NO_SOCKET, no socket
  close() with unread data        TCP_ABORT_ON_CLOSE, state CLOSE (set just before the RST)
  close() with SO_LINGER {1, 0}   TCP_STATE, state CLOSE (tcp_disconnect); TCP_ABORT_ON_LINGER is
                                  only the TCP_LINGER2 < 0 case in FIN_WAIT2
  keepalive probes unanswered     TCP_KEEPALIVE_TIMEOUT, state ESTABLISHED, then ESTABLISHED -> CLOSE
                                  (error ETIMEDOUT)
  retransmissions unanswered      no RST at all: retransmits, then ESTABLISHED -> CLOSE (ETIMEDOUT);
                                  a SYN that is never answered: SYN_SENT -> CLOSE (ETIMEDOUT)
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, field
from typing import Any, Mapping

from .codes import factorize_rows, strings_from_codes
from .conntrack.entry import is_missing


class Cause(enum.StrEnum):
    PORT_CLOSED = "port-closed"
    ABORT_ON_CLOSE = "abort-on-close"
    LINGER_ZERO = "linger-zero"
    FIREWALL_REJECT = "firewall-reject"
    UNSOLICITED_SYNACK = "unsolicited-synack"
    LATE_AFTER_CLOSE = "late-after-close"
    PEER_ABORT = "peer-abort"
    KEEPALIVE_TIMEOUT = "keepalive-timeout"
    RETRANSMIT_TIMEOUT = "retransmit-timeout"
    DATA_AFTER_CLOSE = "data-after-close"
    MEMORY_PRESSURE = "memory-pressure"
    INVALID_SEGMENT = "invalid-segment"
    NO_CONNECTION = "no-connection"
    UNKNOWN = "unknown"

# What an operator can do about each cause.
HINTS: dict[Cause, str] = {
    Cause.PORT_CLOSED: "check the service is running and listening on that address and port",
    Cause.ABORT_ON_CLOSE: "the application closed the socket without reading all it was sent: "
                          "read to EOF (or shutdown) before close()",
    Cause.LINGER_ZERO: "the application aborts on purpose (SO_LINGER 0, connect(AF_UNSPEC) or ss -K); "
                       "drop that if a graceful close is wanted",
    Cause.FIREWALL_REJECT: "a REJECT --reject-with tcp-reset rule answered; see which rule's counters moved",
    Cause.UNSOLICITED_SYNACK: "someone sent a SYN/ACK this host never asked for: spoofed SYNs using this "
                              "address (backscatter), asymmetric routing, or a NAT that lost its state",
    Cause.LATE_AFTER_CLOSE: "a segment arrived after the connection was closed and forgotten; raise "
                            "nf_conntrack_tcp_timeout_close/time_wait, or look for a peer closing late",
    Cause.PEER_ABORT: "the peer (or a middlebox on the path) aborted the connection: check its logs",
    Cause.KEEPALIVE_TIMEOUT: "the peer stopped answering keepalive probes: peer down, path broken, or a "
                             "NAT/firewall dropped the idle flow",
    Cause.RETRANSMIT_TIMEOUT: "the peer stopped acknowledging data (or never answered the SYN): peer down, "
                              "path broken, or a firewall dropping silently",
    Cause.DATA_AFTER_CLOSE: "the peer kept sending after this side closed its reading end",
    Cause.MEMORY_PRESSURE: "too many orphaned sockets or TCP memory exhausted: see tcp_max_orphans, tcp_mem",
    Cause.INVALID_SEGMENT: "a segment failed the sequence/ACK/PAWS checks: a stale duplicate, a middlebox "
                           "rewriting sequence numbers, or an attack",
    Cause.NO_CONNECTION: "a reset for a connection this host does not have (backscatter of someone else's "
                         "spoofed traffic, or the answer to a packet sent long ago): usually harmless",
    Cause.UNKNOWN: "not enough evidence to tell; look at the raw reason, state and conntrack columns",
}

EVIDENCE_KEYS = ("kind", "direction", "origin", "reason", "state", "old_state", "trigger",
                 "ct_state", "ct_lookup", "ct_event", "delivered", "error", "timer")
# Evidence key -> the frame columns it may be read from, first present wins (live events call
# the socket error `err`).
EVIDENCE_COLUMNS: dict[str, tuple[str, ...]] = {key: (key,) for key in EVIDENCE_KEYS} | {
    "trigger": ("trigger_flags",), "error": ("error", "err")}


def _evidence_column(frame, key: str) -> str | None:
    return next((c for c in EVIDENCE_COLUMNS[key] if c in frame.columns), None)


def any_of(*values: str | None) -> frozenset:
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Rule:
    cause: Cause
    explanation: str
    when: Mapping[str, frozenset] = field(default_factory=dict)

    def matches(self, evidence: Mapping[str, Any]) -> bool:
        return all(evidence.get(key) in allowed for key, allowed in self.when.items())


_CLOSED = any_of(None, "CLOSE", "TIME_WAIT")
_APP_ABORT = any_of("TCP_STATE", "TCP_ABORT_ON_LINGER", "TCP_DISCONNECT_WITH_DATA")
_CHECKS_FAILED = any_of("TCP_INVALID_ACK_SEQUENCE", "TCP_RFC7323_PAWS", "TCP_TOO_OLD_ACK",
                        "TCP_ACK_UNSENT_DATA", "TCP_OLD_ACK", "INVALID_SYN", "TCP_FLAGS")
_GAVE_UP = any_of("ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN")
SENT, RECEIVED = any_of("sent"), any_of("received")

RULES: tuple[Rule, ...] = (
    Rule(Cause.FIREWALL_REJECT, "a netfilter REJECT rule sent this reset, not the TCP stack",
         {"origin": any_of("netfilter")}),
    Rule(Cause.KEEPALIVE_TIMEOUT, "keepalive probes went unanswered; the kernel reset the connection",
         {"reason": any_of("TCP_KEEPALIVE_TIMEOUT")}),
    Rule(Cause.KEEPALIVE_TIMEOUT, "keepalive probes went unanswered; the kernel closed the connection",
         {"kind": any_of("state-change"), "state": any_of("CLOSE"), "error": _GAVE_UP,
          "timer": any_of("keepalive")}),
    Rule(Cause.RETRANSMIT_TIMEOUT, "the SYN was never answered; the kernel gave up connecting (no RST)",
         {"kind": any_of("state-change"), "state": any_of("CLOSE"), "old_state": any_of("SYN_SENT"),
          "error": _GAVE_UP}),
    Rule(Cause.RETRANSMIT_TIMEOUT, "retransmissions went unacknowledged; the kernel gave up (no RST)",
         {"kind": any_of("state-change"), "state": any_of("CLOSE"), "error": _GAVE_UP}),
    Rule(Cause.PORT_CLOSED, "the connection was refused: the peer answered the SYN with a reset",
         {"kind": any_of("state-change"), "state": any_of("CLOSE"), "error": any_of("ECONNREFUSED")}),
    Rule(Cause.PEER_ABORT, "the connection closed because the peer reset it",
         {"kind": any_of("state-change"), "state": any_of("CLOSE"), "error": any_of("ECONNRESET", "EPIPE")}),
    Rule(Cause.ABORT_ON_CLOSE, "this host's application closed the socket with unread data",
         {"direction": SENT, "reason": any_of("TCP_ABORT_ON_CLOSE")}),
    Rule(Cause.LINGER_ZERO, "this host's application aborted the connection (SO_LINGER 0 close or disconnect)",
         {"direction": SENT, "reason": _APP_ABORT}),
    Rule(Cause.DATA_AFTER_CLOSE, "data arrived after this side's application had closed the socket",
         {"direction": SENT, "reason": any_of("TCP_ABORT_ON_DATA")}),
    Rule(Cause.MEMORY_PRESSURE, "the kernel killed an orphaned connection under memory pressure",
         {"direction": SENT, "reason": any_of("TCP_ABORT_ON_MEMORY")}),
    Rule(Cause.UNSOLICITED_SYNACK, "answered a SYN/ACK for a connection this host never opened",
         {"direction": SENT, "trigger": any_of("synack")}),
    Rule(Cause.LATE_AFTER_CLOSE, "a segment hit a connection already in TIME_WAIT",
         {"direction": SENT, "reason": any_of("TCP_TIMEWAIT_SOCKET")}),
    Rule(Cause.LATE_AFTER_CLOSE, "a FIN/ACK or ACK arrived for a connection this host already forgot",
         {"direction": SENT, "reason": any_of("NO_SOCKET", "TCP_FLAGS"), "trigger": any_of("fin", "ack")}),
    Rule(Cause.PORT_CLOSED, "a SYN arrived for a port nothing listens on",
         {"direction": SENT, "reason": any_of("NO_SOCKET"), "trigger": any_of("syn", None)}),
    Rule(Cause.UNSOLICITED_SYNACK, "a listening socket got a segment with ACK set and no handshake: "
                                   "most often a SYN/ACK it never asked for",
         {"direction": SENT, "reason": any_of("TCP_FLAGS"), "state": any_of("LISTEN"), "trigger": any_of(None)}),
    Rule(Cause.INVALID_SEGMENT, "a segment failed TCP's sequence, ACK or timestamp checks",
         {"direction": SENT, "reason": _CHECKS_FAILED}),
    Rule(Cause.PORT_CLOSED, "the peer refused the connection: nothing listens on that port",
         {"direction": RECEIVED, "state": any_of("SYN_SENT")}),
    Rule(Cause.LATE_AFTER_CLOSE, "a reset arrived after this host's conntrack entry was gone",
         {"direction": RECEIVED, "state": _CLOSED, "ct_lookup": any_of("no-entry")}),
    Rule(Cause.LATE_AFTER_CLOSE, "a reset arrived after the connection closed (conntrack CLOSE/TIME_WAIT)",
         {"direction": RECEIVED, "state": _CLOSED, "ct_state": any_of("CLOSE", "TIME_WAIT")}),
    # A received RST no socket took (seen only on the device) on a tuple whose
    # conntrack entry was destroyed: the entry went first, the reset came late.
    Rule(Cause.LATE_AFTER_CLOSE, "a reset arrived after conntrack had destroyed the connection's entry",
         {"direction": RECEIVED, "delivered": any_of("no"), "ct_event": any_of("destroy")}),
    Rule(Cause.NO_CONNECTION, "a reset arrived that no socket on this host took",
         {"direction": RECEIVED, "delivered": any_of("no"), "ct_lookup": any_of(None, "not-tracked", "unavailable",
                                                                                "no-entry")}),
    Rule(Cause.PEER_ABORT, "the peer reset an open connection",
         {"direction": RECEIVED}),
    Rule(Cause.UNKNOWN, "no rule matched this evidence"),
)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    cause: Cause
    explanation: str
    hint: str


def diagnose(evidence: Mapping[str, Any]) -> Diagnosis:
    """The first rule of RULES matching this evidence (raw values are normalized first)."""
    return _diagnose_normalized(normalize(evidence))


def _diagnose_normalized(evidence: Mapping[str, Any]) -> Diagnosis:
    for rule in RULES:
        if rule.matches(evidence):
            return Diagnosis(rule.cause, rule.explanation, HINTS[rule.cause])
    raise AssertionError("RULES must end with a catch-all rule")  # pragma: no cover


# ---- normalization: the many spellings sources use, to the table's vocabulary ----------------

_DIRECTION_OF_KIND = {"reset-sent": "sent", "reset-received": "received"}
_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def trigger_class(flags: Any) -> str | None:
    """syn | synack | rst | fin | ack for a flags string ("SA", "S.", "[F.]") or a flags byte."""
    if is_missing(flags):
        return None
    if isinstance(flags, (int, float)):
        bits = int(flags)
    else:
        text = str(flags).upper().replace(".", "A")
        bits = sum(bit for letter, bit in _FLAG_BITS.items() if letter in text)
    if not bits:
        return None
    if bits & 0x02:
        return "synack" if bits & 0x10 else "syn"
    if bits & 0x04:
        return "rst"
    if bits & 0x01:
        return "fin"
    return "ack" if bits & 0x10 else None


def _name(value: Any, prefix: str = "") -> str | None:
    if is_missing(value):
        return None
    text = str(value).strip().upper()
    text = text[len(prefix):] if prefix and text.startswith(prefix) else text
    return None if text in ("UNKNOWN", "") else text


def _error_name(value: Any) -> str | None:
    if is_missing(value):
        return None
    if isinstance(value, (int, float)) or str(value).lstrip("-").isdigit():
        return errno.errorcode.get(abs(int(value)), str(value))
    return str(value).upper()


def _lower(value: Any) -> str | None:
    return None if is_missing(value) else str(value).strip().lower()


def normalize(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence in the table's vocabulary: upper-case names without TCP_/SK_RST_REASON_ prefixes, ..."""
    kind = _lower(evidence.get("kind"))
    trigger = evidence.get("trigger")
    return {
        "kind": kind,
        "direction": _lower(evidence.get("direction")) or _DIRECTION_OF_KIND.get(kind or ""),
        "origin": _lower(evidence.get("origin")),
        "reason": _name(evidence.get("reason"), "SK_RST_REASON_"),
        "state": _name(evidence.get("state"), "TCP_"),
        "old_state": _name(evidence.get("old_state"), "TCP_"),
        "trigger": _lower(trigger) if _lower(trigger) in _TRIGGERS else trigger_class(
            evidence.get("trigger_flags", trigger)),
        "ct_state": _name(evidence.get("ct_state")),
        "ct_lookup": _lower(evidence.get("ct_lookup")),
        "ct_event": _lower(evidence.get("ct_event")),
        "delivered": _lower(evidence.get("delivered")),
        "error": _error_name(evidence.get("error")),
        "timer": _lower(evidence.get("timer")),
    }


_TRIGGERS = {"syn", "synack", "fin", "ack", "rst"}


def diagnose_frame(frame):
    """A copy of the frame with `cause` and `explanation` columns.

    Rows are grouped by their evidence first, so the table runs once per distinct combination
    (a flood of identical resets costs one diagnosis), and the verdicts are spread back by group."""
    import numpy as np
    import pandas as pd

    out = frame.copy()
    if not len(frame):
        out["cause"] = pd.Series([], dtype="string", index=frame.index)
        out["explanation"] = pd.Series([], dtype="string", index=frame.index)
        return out
    # one integer per row naming its evidence combination; the table runs once per combination
    source = {key: _evidence_column(frame, key) for key in EVIDENCE_KEYS}
    present = [column for column in source.values() if column is not None]
    if present:
        codes, first = factorize_rows([frame[c] for c in present])
    else:
        codes, first = np.zeros(len(frame), dtype=np.int64), np.array([0])
    combos = [{key: _plain(frame[column].iloc[row]) if column is not None else None
               for key, column in source.items()} for row in first]
    cause_of = np.empty(len(combos), dtype=object)
    explanation_of = np.empty(len(combos), dtype=object)
    for i, raw in enumerate(combos):
        raw["trigger_flags"] = raw.pop("trigger")
        verdict = diagnose(raw)
        cause_of[i], explanation_of[i] = str(verdict.cause), verdict.explanation
    # spread by Arrow from the few distinct verdicts (no Python string per row)
    out["cause"] = pd.Series(strings_from_codes(list(cause_of), codes), index=frame.index)
    out["explanation"] = pd.Series(strings_from_codes(list(explanation_of), codes), index=frame.index)
    return out


def _plain(value: Any) -> Any:
    """A frame cell as the Python value the table compares with (missing values as None)."""
    if is_missing(value):
        return None
    return value.item() if hasattr(value, "item") else value
