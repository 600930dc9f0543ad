"""Terminal output: one line per event, then a summary. Plain text, about 100 columns for IPv4."""

from __future__ import annotations

import datetime as dt
from typing import IO

DIRECTION = {"reset-sent": "SENT", "reset-received": "RECV", "retransmit": "RETX", "state-change": "STATE",
             "packet": "PKT"}
HEADER = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<47} {'STATE':<11} {'REASON':<18} NETNS/PID"


def _endpoint(addr, port) -> str:
    return f"[{addr}]:{port}" if addr is not None and ":" in str(addr) else f"{addr}:{port}"


def _blank(value) -> str:
    import pandas as pd

    return "-" if pd.isna(value) else str(value)


def event_lines(frame) -> list[str]:
    lines = []
    for row in frame.itertuples(index=False):
        t = dt.datetime.fromtimestamp(row.ts).strftime("%H:%M:%S.%f")
        flow = f"{_endpoint(row.saddr, row.sport)} -> {_endpoint(row.daddr, row.dport)}"
        owner = f" {row.pid}/{row.comm}" if _blank(row.pid) != "-" else ""
        lines.append(f"{t} {DIRECTION.get(row.kind, row.kind):<5} {flow:<47} {_blank(row.state):<11} "
                     f"{_blank(row.reason):<18} {_blank(row.netns)}{owner}")
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
