"""Python API of live capture: tcpwatch.capture() and tcpwatch.stream()."""

from __future__ import annotations

from typing import Iterator

from ..events import Event, Kind, Source
from .capture import Capture
from .filters import Filters


def _capture(port=(), host=(), netns=(), direction=None, buffer_mb=4, transport="auto",
             netdev=True) -> Capture:
    as_seq = lambda v: (v,) if isinstance(v, (int, str)) else tuple(v or ())  # noqa: E731
    filters = Filters.parse(as_seq(port), as_seq(host), as_seq(netns), direction)
    return Capture(filters, buffer_mb=buffer_mb, transport=transport, origins=True,
                   groups=("resets", "netdev", "giveup") if netdev else ("resets", "giveup"))


def _final_batches(cap: Capture, duration: float | None, conntrack: bool) -> Iterator:
    from .pipeline import Enrichment, enriched

    stage = Enrichment(conntrack=conntrack, watch_netns=cap.filters.netns)
    stage.before_start(cap)
    yield from enriched(cap.batches(duration, idle_ticks=True), stage)


def capture(duration: float, conntrack: bool = True, **options):
    """Capture for `duration` seconds; return a DataFrame with the schema's columns and dtypes,
    plus origin, conntrack (ct_*) and diagnosis (cause, explanation) columns.

    Options: port=, host=, netns= (each one value or a list), direction='sent'|'received',
    buffer_mb=, transport=, netdev=True, conntrack=True. Losses are in `frame.attrs['lost']`.
    """
    import pandas as pd

    from ..events import conform
    from .origin import ORIGIN_DTYPES

    with _capture(**options) as cap:
        frames = list(_final_batches(cap, duration, conntrack))
    frame = conform(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), ORIGIN_DTYPES)
    frame.attrs.update(cap.stats.as_dict())
    return frame


def stream_batches(duration: float | None = None, conntrack: bool = True, **options) -> Iterator:
    """Final DataFrame batches as they arrive (about four a second while events flow)."""
    with _capture(**options) as cap:
        yield from _final_batches(cap, duration, conntrack)


def stream(duration: float | None = None, **filters) -> Iterator[Event]:
    """Events one by one, for long runs; stop by breaking out of the loop."""
    fields = set(Event.__slots__) - {"extra"}
    for frame in stream_batches(duration, **filters):
        for row in frame.astype(object).where(frame.notna(), None).to_dict("records"):
            extra = {k: row.pop(k) for k in list(row) if k not in fields}
            yield Event(**{**row, "source": Source(row["source"]), "kind": Kind(row["kind"]), "extra": extra})
