"""The diagnosis table: every cause reachable from the evidence the kernel really gives, precedence,
normalization of the spellings sources use, and the frame version agreeing with the scalar one."""

from __future__ import annotations

import pandas as pd
import pytest

from tcpwatch.diagnosis import (HINTS, RULES, Cause, diagnose, diagnose_frame, normalize,
                                trigger_class)

# Evidence as measured on kernel 6.18 in lab namespaces (see the module docstring), and the cause.
CASES = [
    ("port-closed: SYN to a closed port", {"kind": "reset-sent", "origin": "tcp-stack", "reason": "NO_SOCKET",
                                           "state": "UNKNOWN", "trigger_flags": "S"}, Cause.PORT_CLOSED),
    ("port-closed: client side, refused", {"kind": "reset-received", "origin": "remote",
                                           "state": "TCP_SYN_SENT"}, Cause.PORT_CLOSED),
    ("port-closed: state change ECONNREFUSED", {"kind": "state-change", "state": "CLOSE",
                                                "old_state": "SYN_SENT", "error": 111}, Cause.PORT_CLOSED),
    ("abort-on-close", {"kind": "reset-sent", "reason": "TCP_ABORT_ON_CLOSE", "state": "TCP_CLOSE"},
     Cause.ABORT_ON_CLOSE),
    ("linger-zero: SO_LINGER 0 gives TCP_STATE", {"kind": "reset-sent", "reason": "TCP_STATE",
                                                  "state": "TCP_CLOSE"}, Cause.LINGER_ZERO),
    ("linger-zero: TCP_LINGER2 < 0", {"kind": "reset-sent", "reason": "TCP_ABORT_ON_LINGER"}, Cause.LINGER_ZERO),
    ("firewall-reject sent", {"kind": "reset-sent", "origin": "netfilter"}, Cause.FIREWALL_REJECT),
    ("unsolicited-synack to a closed port", {"kind": "reset-sent", "reason": "NO_SOCKET",
                                             "trigger_flags": "SA", "ct_lookup": "no-entry"},
     Cause.UNSOLICITED_SYNACK),
    ("unsolicited-synack to a listener", {"kind": "reset-sent", "reason": "TCP_FLAGS", "state": "TCP_LISTEN"},
     Cause.UNSOLICITED_SYNACK),
    ("late-after-close: FIN to a forgotten connection", {"kind": "reset-sent", "reason": "NO_SOCKET",
                                                         "trigger_flags": "FA"}, Cause.LATE_AFTER_CLOSE),
    ("late-after-close: TIME_WAIT socket", {"kind": "reset-sent", "reason": "TCP_TIMEWAIT_SOCKET"},
     Cause.LATE_AFTER_CLOSE),
    ("late-after-close: RST after conntrack forgot", {"kind": "reset-received", "origin": "remote",
                                                      "state": None, "ct_lookup": "no-entry"},
     Cause.LATE_AFTER_CLOSE),
    ("late-after-close: RST with conntrack CLOSE", {"kind": "reset-received", "state": None,
                                                    "ct_lookup": "found", "ct_state": "CLOSE"},
     Cause.LATE_AFTER_CLOSE),
    ("late-after-close: RST no socket took, entry destroyed", {"kind": "reset-received", "origin": "remote",
                                                              "delivered": "no", "ct_lookup": "found",
                                                              "ct_state": "ESTABLISHED", "ct_event": "destroy"},
     Cause.LATE_AFTER_CLOSE),
    ("no-connection: RST no socket took, untracked", {"kind": "reset-received", "origin": "remote", "delivered": "no",
                                                      "ct_lookup": "not-tracked"}, Cause.NO_CONNECTION),
    ("peer-abort: delivered, state unknown", {"kind": "reset-received", "delivered": "yes"}, Cause.PEER_ABORT),
    ("peer-abort", {"kind": "reset-received", "origin": "remote", "state": "ESTABLISHED",
                    "ct_state": "ESTABLISHED"}, Cause.PEER_ABORT),
    ("keepalive-timeout: the RST", {"kind": "reset-sent", "reason": "TCP_KEEPALIVE_TIMEOUT",
                                    "state": "TCP_ESTABLISHED"}, Cause.KEEPALIVE_TIMEOUT),
    ("keepalive-timeout: the close, timer known", {"kind": "state-change", "state": "TCP_CLOSE",
                                                   "error": "ETIMEDOUT", "timer": "keepalive"},
     Cause.KEEPALIVE_TIMEOUT),
    ("retransmit-timeout: established", {"kind": "state-change", "state": "TCP_CLOSE",
                                         "old_state": "TCP_ESTABLISHED", "error": 110}, Cause.RETRANSMIT_TIMEOUT),
    ("retransmit-timeout: SYN never answered", {"kind": "state-change", "state": "CLOSE",
                                                "old_state": "SYN_SENT", "error": "ETIMEDOUT"},
     Cause.RETRANSMIT_TIMEOUT),
    ("data-after-close", {"kind": "reset-sent", "reason": "TCP_ABORT_ON_DATA"}, Cause.DATA_AFTER_CLOSE),
    ("memory-pressure", {"kind": "reset-sent", "reason": "TCP_ABORT_ON_MEMORY"}, Cause.MEMORY_PRESSURE),
    ("invalid-segment", {"kind": "reset-sent", "reason": "TCP_INVALID_ACK_SEQUENCE", "state": "SYN_RECV"},
     Cause.INVALID_SEGMENT),
    ("unknown: nothing", {}, Cause.UNKNOWN),
    ("unknown: normal close", {"kind": "state-change", "state": "CLOSE", "old_state": "LAST_ACK"}, Cause.UNKNOWN),
]


@pytest.mark.parametrize("evidence,cause", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_cause_from_its_evidence(evidence, cause):
    assert diagnose(evidence).cause == cause


def test_every_cause_is_reachable_and_has_a_hint():
    reached = {cause for _, _, cause in CASES}
    assert reached == set(Cause)
    assert set(HINTS) == set(Cause)
    assert all(rule.explanation for rule in RULES)


def test_the_last_rule_is_the_catch_all():
    assert RULES[-1].cause == Cause.UNKNOWN and not RULES[-1].when
    assert all(rule.when for rule in RULES[:-1])


@pytest.mark.parametrize("evidence,cause", [
    # netfilter origin wins over any kernel reason or state
    ({"kind": "reset-sent", "origin": "netfilter", "reason": "NO_SOCKET", "trigger_flags": "S"},
     Cause.FIREWALL_REJECT),
    ({"kind": "reset-received", "origin": "netfilter", "state": "SYN_SENT"}, Cause.FIREWALL_REJECT),
    # the reason names the cause before the trigger does
    ({"kind": "reset-sent", "reason": "TCP_ABORT_ON_CLOSE", "trigger_flags": "SA"}, Cause.ABORT_ON_CLOSE),
    # a SYN/ACK trigger beats the generic NO_SOCKET -> port-closed rule
    ({"kind": "reset-sent", "reason": "NO_SOCKET", "trigger_flags": "S."}, Cause.UNSOLICITED_SYNACK),
    # TCP_FLAGS with an ACK trigger is a late segment, not a SYN/ACK, even on a listener
    ({"kind": "reset-sent", "reason": "TCP_FLAGS", "state": "LISTEN", "trigger_flags": "A"}, Cause.LATE_AFTER_CLOSE),
    # a received reset on a live socket is peer-abort even if conntrack already closed the entry
    ({"kind": "reset-received", "state": "ESTABLISHED", "ct_state": "CLOSE"}, Cause.PEER_ABORT),
    # keepalive timer known beats the generic retransmit-timeout
    ({"kind": "state-change", "state": "CLOSE", "error": 110, "timer": "keepalive"}, Cause.KEEPALIVE_TIMEOUT),
    ({"kind": "state-change", "state": "CLOSE", "error": 110, "timer": "retransmit"}, Cause.RETRANSMIT_TIMEOUT),
])
def test_precedence(evidence, cause):
    assert diagnose(evidence).cause == cause


def test_reordering_rules_changes_the_outcome():
    """First match wins: the netfilter rule placed after the NO_SOCKET rule would lose."""
    evidence = normalize({"kind": "reset-sent", "origin": "netfilter", "reason": "NO_SOCKET"})
    matching = [rule.cause for rule in RULES if rule.matches(evidence)]
    assert matching[0] == Cause.FIREWALL_REJECT
    assert Cause.PORT_CLOSED in matching[1:]


@pytest.mark.parametrize("flags,klass", [
    ("S", "syn"), ("SA", "synack"), ("S.", "synack"), ("[S.]", "synack"), ("FA", "fin"), ("F.", "fin"),
    (".", "ack"), ("PA", "ack"), ("R", "rst"), ("RA", "rst"), (0x12, "synack"), (0x02, "syn"), (0x11, "fin"),
    (None, None), ("", None), (0, None),
])
def test_trigger_class(flags, klass):
    assert trigger_class(flags) == klass


def test_normalize_spellings():
    ev = normalize({"kind": "Reset-Sent", "reason": "SK_RST_REASON_NO_SOCKET", "state": "TCP_SYN_RECV",
                    "error": 110, "ct_state": "time_wait", "trigger": "synack"})
    assert ev["direction"] == "sent" and ev["reason"] == "NO_SOCKET" and ev["state"] == "SYN_RECV"
    assert ev["error"] == "ETIMEDOUT" and ev["ct_state"] == "TIME_WAIT" and ev["trigger"] == "synack"
    assert normalize({"state": "UNKNOWN", "reason": pd.NA})["state"] is None


def test_diagnose_frame_agrees_with_diagnose_and_keeps_rows():
    rows = [evidence for _, evidence, _ in CASES]
    frame = pd.DataFrame.from_records(rows)
    if "trigger_flags" in frame:
        frame["trigger_flags"] = frame["trigger_flags"].astype("string")
    big = pd.concat([frame] * 50, ignore_index=True).sample(frac=1, random_state=7)
    out = diagnose_frame(big)
    assert len(out) == len(big) and list(out.index) == list(big.index)
    assert str(out["cause"].dtype) == "string" and str(out["explanation"].dtype) == "string"
    for index, row in out.iterrows():
        original = {k: v for k, v in big.loc[index].items() if not (v is None or v is pd.NA or v != v)}
        verdict = diagnose(original)
        assert row["cause"] == str(verdict.cause) and row["explanation"] == verdict.explanation


def test_diagnose_frame_without_evidence_columns():
    out = diagnose_frame(pd.DataFrame({"ts": [1.0, 2.0], "kind": ["reset-received", "reset-sent"]}))
    assert out["cause"].tolist() == ["peer-abort", "unknown"]
    empty = diagnose_frame(pd.DataFrame({"ts": pd.Series([], dtype="float64")}))
    assert list(empty.columns) == ["ts", "cause", "explanation"] and len(empty) == 0
