"""Terminal output: one line per event, then a summary. Plain text, about 100 columns for IPv4."""

from __future__ import annotations

import time
from typing import IO

DIRECTION = {"reset-sent": "SENT", "reset-received": "RECV", "retransmit": "RETX", "state-change": "STATE",
             "packet": "PKT"}
HEADER = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<47} {'STATE':<11} {'REASON':<18} NETNS/PID"
HEADER_DIAGNOSED = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<47} {'STATE':<11} {'REASON':<18} CAUSE"


def _endpoint(addr, port) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _clock(ts: list[float]) -> list[str]:
    """HH:MM:SS.ffffff in local time, without a datetime object per row."""
    if not ts:
        return []
    offset = time.localtime(ts[0]).tm_gmtoff
    out = []
    for t in ts:
        micros = int(round((t + offset) * 1e6)) % 86_400_000_000
        secs, us = divmod(micros, 1_000_000)
        out.append(f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{us:06d}")
    return out


def _column(frame, name) -> list:
    """Column values as plain Python objects, missing values as '-'."""
    if name not in frame.columns:
        return ["-"] * len(frame)
    series = frame[name]
    return series.astype(object).where(series.notna(), "-").tolist()


def event_lines(frame) -> list[str]:
    if "cause" in frame.columns:
        return diagnosed_lines(frame)
    clock = _clock(frame["ts"].tolist())
    cols = [_column(frame, n) for n in ("kind", "saddr", "sport", "daddr", "dport", "state", "reason",
                                        "netns", "pid", "comm")]
    lines = []
    for t, kind, saddr, sport, daddr, dport, state, reason, netns, pid, comm in zip(clock, *cols):
        flow = f"{_endpoint(saddr, sport)} -> {_endpoint(daddr, dport)}"
        owner = f" {pid}/{comm}" if pid != "-" else ""
        lines.append(f"{t} {DIRECTION.get(kind, kind):<5} {flow:<47} {state:<11} {reason:<18} {netns}{owner}")
    return lines


def diagnosed_lines(frame) -> list[str]:
    """Two lines per reset: what happened, then why, with the evidence behind the verdict."""
    clock = _clock(frame["ts"].tolist())
    cols = [_column(frame, n) for n in ("kind", "saddr", "sport", "daddr", "dport", "state", "reason", "cause",
                                        "explanation", "origin", "netns", "pid", "comm", "ct_state", "ct_lookup",
                                        "trigger_flags", "rule", "ct_event")]
    lines = []
    for (t, kind, saddr, sport, daddr, dport, state, reason, cause, explanation, origin, netns, pid, comm,
         ct_state, ct_lookup, trigger, rule, ct_event) in zip(clock, *cols):
        flow = f"{_endpoint(saddr, sport)} -> {_endpoint(daddr, dport)}"
        lines.append(f"{t} {DIRECTION.get(kind, kind):<5} {flow:<47} {state:<11} {reason:<18} {cause}")
        evidence = [f"by {origin}", f"netns {netns}"]
        if pid != "-":
            evidence.append(f"pid {pid}/{comm}")
        if trigger != "-":
            evidence.append(f"answering [{trigger}]")
        if ct_lookup != "-":
            found = f"{ct_state}{' (destroyed)' if ct_event == 'destroy' else ''}"
            evidence.append(f"conntrack {found if ct_lookup == 'found' else ct_lookup}")
        if rule != "-":
            evidence.append(f"rule {rule}")
        lines.append(f"{'':<21} {explanation} ({', '.join(evidence)})")
    return lines


def print_summary(summary: dict, out: IO[str]) -> None:
    out.write("\n-- summary " + "-" * 60 + "\n")
    scalars = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    out.write("  " + "  ".join(f"{k}={v}" for k, v in scalars.items()) + "\n")
    for key, value in summary.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
            out.write(f"  {key}: {shown}\n")
        elif isinstance(value, list):
            out.write(f"  {key}: {', '.join(map(str, value)) or '-'}\n")
