"""Terminal output: one line per event, then a summary. Plain text, about 100 columns for IPv4."""

from __future__ import annotations

import time
from typing import IO

DIRECTION = {"reset-sent": "SENT", "reset-received": "RECV", "retransmit": "RETX", "state-change": "STATE",
             "packet": "PKT"}
HEADER = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<47} {'STATE':<11} {'REASON':<18} NETNS/PID"
HEADER_DIAGNOSED = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<47} {'STATE':<11} {'REASON':<18} CAUSE"


# Every column the lines may show; absent ones print as "-".
_SHOWN = ("kind", "saddr", "sport", "daddr", "dport", "state", "reason", "netns", "pid", "comm", "cause",
          "explanation", "origin", "trigger_flags", "ct_state", "ct_lookup", "ct_event", "rule")


def _text(name: str):
    import polars as pl

    return pl.col(name).cast(pl.Utf8).fill_null("-")


def _endpoint(addr: str, port: str):
    import polars as pl

    return (pl.when(pl.col(addr).str.contains(":", literal=True))
            .then(pl.format("[{}]:{}", _text(addr), _text(port)))
            .otherwise(pl.format("{}:{}", _text(addr), _text(port))))


def _clock(first_ts: float):
    """HH:MM:SS.ffffff in local time (the offset of the batch's first event), formatted by
    polars' own time formatting in one step."""
    import polars as pl

    local = (pl.col("ts") + time.localtime(first_ts).tm_gmtoff) * 1e6
    return local.round().cast(pl.Int64).cast(pl.Datetime("us")).dt.strftime("%H:%M:%S%.6f")


def _polars(frame):
    """The shown columns as a polars frame of text, built column-wise (no Python loop per event:
    a flood of resets prints at the speed the kernel reports it)."""
    import polars as pl

    from .frames import as_polars

    present = [c for c in _SHOWN if c in frame.columns]
    df = as_polars(frame, ["ts", *present])
    return df.with_columns([pl.lit(None, dtype=pl.Utf8).alias(c) for c in _SHOWN if c not in present])


def _first_line(last):
    import polars as pl

    direction = pl.col("kind").replace_strict(DIRECTION, default=pl.col("kind"), return_dtype=pl.Utf8)
    flow = pl.format("{} -> {}", _endpoint("saddr", "sport"), _endpoint("daddr", "dport"))
    return pl.concat_str([direction.fill_null("-").str.pad_end(5), flow.str.pad_end(47),
                          _text("state").str.pad_end(11), _text("reason").str.pad_end(18), last], separator=" ")


def event_lines(frame) -> list[str]:
    """One line per event (two for a diagnosed one: what happened, then why)."""
    return _lines(frame).to_list() if not frame.empty else []


def event_text(frame) -> str:
    """The lines of a batch as one text, each ending in a newline. Joined by polars: a Python
    string per line, then joined, cost a third as much again as making the lines."""
    return _lines(frame).str.join("\n").item() + "\n" if not frame.empty else ""


def _lines(frame):
    """Each event's text, as a polars Series."""
    return _polars(frame).select(_line(frame).alias("line"))["line"]


def _line(frame):
    """The polars expression of each event's text."""
    if "cause" in frame.columns:
        return _diagnosed(float(frame["ts"].iloc[0]))
    import polars as pl

    owner = pl.when(pl.col("pid").is_not_null()).then(pl.format(" {}/{}", _text("pid"), _text("comm"))) \
        .otherwise(pl.lit(""))
    return pl.concat_str([_clock(float(frame["ts"].iloc[0])),
                          _first_line(pl.concat_str([_text("netns"), owner]))], separator=" ")


def _diagnosed(first_ts: float):
    """Two lines per reset: what happened, then why, with the evidence behind the verdict."""
    import polars as pl

    found = pl.when(pl.col("ct_event") == "destroy").then(pl.format("{} (destroyed)", _text("ct_state"))) \
        .otherwise(_text("ct_state"))
    conntrack = pl.when(pl.col("ct_lookup").is_null()).then(None) \
        .otherwise(pl.format("conntrack {}", pl.when(pl.col("ct_lookup") == "found").then(found)
                             .otherwise(pl.col("ct_lookup"))))
    evidence = pl.concat_str([
        pl.format("by {}", _text("origin")), pl.format("netns {}", _text("netns")),
        pl.when(pl.col("pid").is_not_null()).then(pl.format("pid {}/{}", _text("pid"), _text("comm"))),
        pl.when(pl.col("trigger_flags").is_not_null()).then(pl.format("answering [{}]", pl.col("trigger_flags"))),
        conntrack,
        pl.when(pl.col("rule").is_not_null()).then(pl.format("rule {}", pl.col("rule"))),
    ], separator=", ", ignore_nulls=True)
    first = pl.concat_str([_clock(first_ts), _first_line(_text("cause"))], separator=" ")
    second = pl.format("{} {} ({})", pl.lit(" " * 21), _text("explanation"), evidence)
    return pl.concat_str([first, second], separator="\n")


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
