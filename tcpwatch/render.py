"""Terminal output: one line per event, then a summary. Plain text, about 100 columns for IPv4."""

from __future__ import annotations

import random
import time
from typing import IO

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
    """What a line shows besides its microseconds and ports, for one template row: its time to
    the second, what comes before the source port (direction, source address), between the
    ports (destination address), and after the flow's padding (state, reason, `last`); and how
    long the flow is without its ports."""
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


_SEED = random.getrandbits(63)   # secret: see _templates


def _templates(df, keys: list[str], pieces: list):
    """Each event's template number, and the templates: under a flood thousands of events differ
    only in their time and ports, so everything else is formatted once per distinct combination
    of `keys` (a few dozen rows), not once per event. Rows are grouped by a 64-bit hash of their
    keys, seeded at random per process: nobody can choose an input (a process name) whose hash
    collides with another group's, which would print that group's text."""
    codes = df.select(keys).hash_rows(_SEED).rank("dense") - 1
    first = codes.is_first_distinct().arg_true()
    templates = df[first].with_columns(codes.gather(first).alias("code")).sort("code").select(pieces)
    return codes, templates


def event_lines(frame) -> list[str]:
    """One line per event (two for a diagnosed one: what happened, then why)."""
    return _lines(frame).to_list() if not frame.empty else []


def event_text(frame) -> str:
    """The lines of a batch as one text, each ending in a newline. Joined by polars: a Python
    string per line, then joined, cost a third as much again as making the lines."""
    return _lines(frame).str.join("\n").item() + "\n" if not frame.empty else ""


def _lines(frame):
    """Each event's text, as a polars Series: HH:MM:SS.ffffff local time, then its template's
    pieces around the microseconds and the ports, the flow padded to FLOW_WIDTH."""
    import polars as pl

    local_us = _local_us(float(frame["ts"].iloc[0]))
    df = _polars(frame).with_columns(local_us.floordiv(1_000_000).alias("second"))
    diagnosed = "cause" in frame.columns
    keys = [c for c in _SHOWN if c not in ("sport", "dport")] + ["second"]
    codes, templates = _templates(df, keys, _flow_pieces(_diagnosed_last() if diagnosed else _owner_last()))
    sport, dport = _text("sport"), _text("dport")
    pad = (FLOW_WIDTH - pl.col("fixed") - pl.col("sport").str.len_bytes() - pl.col("dport").str.len_bytes()).clip(0)
    micro = local_us.mod(1_000_000).cast(pl.Utf8).str.pad_start(6, "0")
    return df.select(micro.alias("micro"), sport.alias("sport"), dport.alias("dport")) \
        .hstack(templates[codes].get_columns()) \
        .select(pl.concat_str([pl.col("clock"), pl.col("micro"), pl.col("head"), pl.col("sport"), pl.col("middle"),
                               pl.col("dport"), pl.lit(" " * FLOW_WIDTH).str.slice(0, pad), pl.col("tail")])
                .alias("line"))["line"]


def _owner_last():
    """The end of a plain line: the namespace, and the owner when known."""
    import polars as pl

    owner = pl.when(pl.col("pid").is_not_null()).then(pl.format(" {}/{}", _text("pid"), _text("comm"))) \
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
        pl.when(pl.col("pid").is_not_null()).then(pl.format("pid {}/{}", _text("pid"), _text("comm"))),
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
