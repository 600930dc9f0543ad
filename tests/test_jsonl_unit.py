"""JSON Lines of a batch (tcpwatch/sinks.py): written once per template and filled per event,
byte for byte what polars writes row by row."""

import json

import pandas as pd
import pytest

from tcpwatch import sinks
from tcpwatch.events import conform
from tcpwatch.frames import as_polars


def _flood(n: int, **columns) -> pd.DataFrame:
    """n events alike but for their time, ports and socket, as under a flood."""
    frame = pd.DataFrame({
        "ts": [1_795_316_126.25 + i * 1.3e-6 for i in range(n)], "source": "bpf", "kind": "reset-received",
        "family": 4, "saddr": "127.0.0.1", "sport": 9, "daddr": "127.0.0.1", "dport": [30000 + i for i in range(n)],
        "state": "SYN_SENT", "netns": 4026532246, "pid": 3063, "comm": "gen_refused",
        "sk": [18446612691406178816 - 4096 * i for i in range(n)], "cause": "port-closed",
        "explanation": "the peer refused the connection: nothing listens on that port"})
    for name, values in columns.items():
        frame[name] = values
    return conform(frame)


def _columns(frame):
    """The frame as the JSON writers get it."""
    return sinks.without_null_columns(as_polars(frame))


def _row_by_row(frame) -> bytes:
    return sinks._polars_jsonl(_columns(frame))


def test_a_flood_is_written_from_templates_as_polars_writes_it(monkeypatch):
    frame = _flood(400, comm=["gen_refused\u2028\x85", 'say "hi"\\ é'] * 200, pid=[3063, None] * 200,
                   cookie=[None] * 399 + [7])
    calls = []
    real = sinks._templated
    monkeypatch.setattr(sinks, "_templated", lambda pf: calls.append(real(pf)) or calls[-1])
    data = sinks.frame_to_jsonl_bytes(frame)
    assert calls[0] is not None                     # two templates for 400 rows: templated
    assert data == _row_by_row(frame)
    lines = [json.loads(line) for line in data.splitlines()]
    assert len(lines) == 400 and lines[1]["comm"] == 'say "hi"\\ é' and lines[1]["pid"] is None
    assert lines[0]["cookie"] is None and lines[-1]["cookie"] == 7 and lines[3]["dport"] == 30003
    assert [line["ts"] for line in lines] == frame["ts"].tolist()


def test_a_mark_inside_a_string_is_not_a_place_for_a_number():
    frame = _flood(50, comm=f'"ts":{sinks._MARK}')
    assert sinks.frame_to_jsonl_bytes(frame) == _row_by_row(frame)


@pytest.mark.parametrize("distinct", [True, False])
def test_many_templates_are_left_to_polars_row_by_row(distinct):
    frame = _flood(40, comm=[f"worker-{i}" for i in range(40)] if distinct else "one")
    assert (sinks._templated(_columns(frame)) is None) == distinct
    assert sinks.frame_to_jsonl_bytes(frame) == _row_by_row(frame)


def test_a_template_polars_writes_otherwise_falls_back_to_row_by_row(monkeypatch):
    """Were a later polars to write a mark otherwise, the batch is written row by row, whole."""
    frame = _flood(30)
    expected = _row_by_row(frame)
    real = sinks._polars_jsonl
    monkeypatch.setattr(sinks, "_polars_jsonl", lambda pf: real(pf).replace(str(sinks._MARK).encode(), b"-1.0"))
    assert sinks._templated(_columns(frame)) is None
    assert sinks.frame_to_jsonl_bytes(frame) == expected
