"""Terminal output: one line per event, then a summary. Plain text, about 100 columns for IPv4."""

from __future__ import annotations

import re
import time
from typing import IO

from .templating import joined_bytes, templates

FLOW_WIDTH = 47     # the SENDER -> RECEIVER column
DIRECTION = {"reset-sent": "SENT", "reset-received": "RECV", "retransmit": "RETX", "state-change": "STATE",
             "packet": "PKT"}
HEADER = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<{FLOW_WIDTH}} {'STATE':<11} {'REASON':<18} NETNS/PID"
HEADER_DIAGNOSED = f"{'TIME':<15} {'DIR':<5} {'SENDER -> RECEIVER':<{FLOW_WIDTH}} {'STATE':<11} {'REASON':<18} CAUSE"


# Every column the lines may show; absent ones print as "-".
_SHOWN = ("kind", "saddr", "sport", "daddr", "dport", "state", "reason", "netns", "pid", "comm", "cause",
          "explanation", "origin", "trigger_flags", "ct_state", "ct_lookup", "ct_event", "rule")


def _text(name: str):
    import polars as pl

    return pl.col(name).cast(pl.Utf8).fill_null("-")


# Any process may name itself, control characters included: a newline would forge a line, an
# escape sequence would drive the operator's terminal. Those show as "?".
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown_comm(comm: str) -> str:
    return _CONTROL.sub("?", comm)


def _comm():
    """A process name as shown (shown_comm); per template, so it costs nothing under a flood."""
    return _text("comm").str.replace_all(_CONTROL.pattern, "?")


def _local_us(first_ts: float):
    """Each event's local time in microseconds (at the UTC offset of the batch's first event)."""
    import polars as pl

    return ((pl.col("ts") + time.localtime(first_ts).tm_gmtoff) * 1e6).round().cast(pl.Int64)


def _polars(frame):
    """The shown columns as a polars frame of text, built column-wise (no Python loop per event:
    a flood of resets prints at the speed the kernel reports it)."""
    import polars as pl

    from .frames import as_polars

    present = [c for c in _SHOWN if c in frame.columns]
    df = as_polars(frame, ["ts", *present])
    return df.with_columns([pl.lit(None, dtype=pl.Utf8).alias(c) for c in _SHOWN if c not in present])


def _flow_pieces(last):
    """What a line shows besides its microseconds and ports, for each template
    (tcpwatch/templating.py): its time to the second, what comes before the source port
    (direction, source address), between the ports (destination address), and after the flow's
    padding (state, reason, `last`); and how long the flow is without its ports."""
    import polars as pl

    def shown(addr: str):
        return pl.when(pl.col(addr).str.contains(":", literal=True)).then(pl.format("[{}]", _text(addr))) \
            .otherwise(_text(addr))

    direction = pl.col("kind").replace_strict(DIRECTION, default=pl.col("kind"), return_dtype=pl.Utf8)
    second = (pl.col("second") * 1_000_000).cast(pl.Datetime("us")).dt.strftime("%H:%M:%S.")
    return [second.alias("clock"),
            pl.concat_str([pl.lit(" "), direction.fill_null("-").str.pad_end(5), pl.lit(" "), shown("saddr"),
                           pl.lit(":")]).alias("head"),
            pl.concat_str([pl.lit(" -> "), shown("daddr"), pl.lit(":")]).alias("middle"),
            (shown("saddr").str.len_chars() + shown("daddr").str.len_chars() + 6).cast(pl.Int32).alias("fixed"),
            pl.concat_str([pl.lit(" "), _text("state").str.pad_end(11), pl.lit(" "), _text("reason").str.pad_end(18),
                           pl.lit(" "), last]).alias("tail")]


def event_lines(frame) -> list[str]:
    """One line per event (two for a diagnosed one: what happened, then why)."""
    return _lines(frame).to_list() if not frame.empty else []


def event_text(frame) -> str:
    """The lines of a batch as one text, each ending in a newline."""
    return joined_bytes(_lines(frame, end="\n")).decode() if not frame.empty else ""


def _lines(frame, end: str = ""):
    """Each event's text, as a polars Series: HH:MM:SS.ffffff local time, then its template's
    pieces around the microseconds and the ports, the flow padded to FLOW_WIDTH; then `end`."""
    import polars as pl

    local_us = _local_us(float(frame["ts"].iloc[0]))
    df = _polars(frame).with_columns(local_us.floordiv(1_000_000).alias("second"))
    diagnosed = "cause" in frame.columns
    keys = [c for c in _SHOWN if c not in ("sport", "dport")] + ["second"]
    codes, first = templates(df, keys)
    pieces = df[first].select(_flow_pieces(_diagnosed_last() if diagnosed else _owner_last()))
    sport, dport = _text("sport"), _text("dport")
    pad = (FLOW_WIDTH - pl.col("fixed") - pl.col("sport").str.len_bytes() - pl.col("dport").str.len_bytes()).clip(0)
    micro = local_us.mod(1_000_000).cast(pl.Utf8).str.pad_start(6, "0")
    return df.select(micro.alias("micro"), sport.alias("sport"), dport.alias("dport")) \
        .hstack(pieces[codes].get_columns()) \
        .select(pl.concat_str([pl.col("clock"), pl.col("micro"), pl.col("head"), pl.col("sport"), pl.col("middle"),
                               pl.col("dport"), pl.lit(" " * FLOW_WIDTH).str.slice(0, pad), pl.col("tail"),
                               pl.lit(end)])
                .alias("line"))["line"]


def _owner_last():
    """The end of a plain line: the namespace, and the owner when known."""
    import polars as pl

    owner = pl.when(pl.col("pid").is_not_null()).then(pl.format(" {}/{}", _text("pid"), _comm())) \
        .otherwise(pl.lit(""))
    return pl.concat_str([_text("netns"), owner])


def _diagnosed_last():
    """The end of a diagnosed reset's first line, its cause, then its second line: why, with the
    evidence behind the verdict."""
    import polars as pl

    found = pl.when(pl.col("ct_event") == "destroy").then(pl.format("{} (destroyed)", _text("ct_state"))) \
        .otherwise(_text("ct_state"))
    conntrack = pl.when(pl.col("ct_lookup").is_null()).then(None) \
        .otherwise(pl.format("conntrack {}", pl.when(pl.col("ct_lookup") == "found").then(found)
                             .otherwise(pl.col("ct_lookup"))))
    evidence = pl.concat_str([
        pl.format("by {}", _text("origin")), pl.format("netns {}", _text("netns")),
        pl.when(pl.col("pid").is_not_null()).then(pl.format("pid {}/{}", _text("pid"), _comm())),
        pl.when(pl.col("trigger_flags").is_not_null()).then(pl.format("answering [{}]", pl.col("trigger_flags"))),
        conntrack,
        pl.when(pl.col("rule").is_not_null()).then(pl.format("rule {}", pl.col("rule"))),
    ], separator=", ", ignore_nulls=True)
    second = pl.format("{} {} ({})", pl.lit(" " * 21), _text("explanation"), evidence)
    return pl.concat_str([_text("cause"), second], separator="\n")


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
