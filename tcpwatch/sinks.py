"""Where events go: JSON Lines, CSV, Parquet files (chosen by extension), written in batches.

Every sink takes DataFrame batches that already follow the event schema (events.conform).
A batch is flushed to the OS as soon as it is written, so a crash or kill loses at most the
batch being assembled (the live capture hands over a batch about every second).
"""

from __future__ import annotations

import json
import os
from typing import IO

from .errors import UsageProblem

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def format_for(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageProblem(f"cannot tell the output format of {path!r}", "name it .jsonl, .csv or .parquet")
    return FORMATS[ext]


def frame_to_jsonl_bytes(frame) -> bytes:
    """JSON Lines (UTF-8) for a batch: integers as integers, floats round-trip; a key absent from
    a line means null, as in Zeek's and Suricata's JSON logs.

    A column null in every row of the batch is left out of its lines (conntrack fields where
    nothing is tracked, retransmit fields on resets): at 100k events a second the encoding and
    the writing are the largest costs of a capture, and those keys were about 40% of the bytes.
    events.conform() gives a frame read back every column again. polars encodes in Rust,
    about three times faster than pandas' to_json on event batches; a batch of few kinds of
    event is encoded once per kind (_templated)."""
    if frame.empty:
        return b""
    from .frames import as_polars

    pf = without_null_columns(as_polars(frame))
    return _templated(pf) or _polars_jsonl(pf)


def without_null_columns(pf):
    """The polars frame without the columns null in every row."""
    all_null = [name for name, nulls in zip(pf.columns, pf.null_count().row(0)) if nulls == pf.height]
    return pf.drop(all_null) if all_null else pf


def _polars_jsonl(pf) -> bytes:
    chunks = _Chunks()
    pf.write_ndjson(chunks)
    return b"".join(chunks)


# Numbers that differ from event to event under a flood: written per event (as polars writes
# them: its text of a float is its JSON's), every other column once per template.
PER_EVENT = ("ts", "sport", "dport", "sk", "cookie", "seq")
_MARK = -7_318_504_962_145_907_261     # stands for a per-event value in a template's line
TEMPLATED_AT_MOST = 0.25    # templates per row; more, and polars writes each row on its own


def _templated(pf) -> bytes | None:
    """The batch's lines from its templates (tcpwatch/templating.py): each template's line is
    written by polars with a mark for each per-event number, cut at the marks, and the numbers
    are put back in per event. None when the batch has too many templates to gain."""
    import polars as pl

    from .templating import joined_bytes, templates

    numbers = [c for c in pf.columns if c in PER_EVENT and pf.schema[c].is_numeric()]
    keys = [c for c in pf.columns if c not in numbers]
    if not numbers or not keys:
        return None
    codes, first = templates(pf, keys)
    if len(first) > TEMPLATED_AT_MOST * pf.height:
        return None
    marked = pf[first].with_columns(pl.lit(_MARK, dtype=pl.Int64).alias(c) for c in numbers)
    pieces: list[list[str]] = [[] for _ in range(len(numbers) + 1)]
    # cut at "\n" only: polars leaves U+2028 and U+0085 in strings as they are, and
    # str.splitlines() would cut there too
    lines = _polars_jsonl(marked).decode().split("\n")[:-1]
    if len(lines) != len(first):
        return None
    for line in lines:
        start = 0
        for i, column in enumerate(numbers):
            mark = f'"{column}":{_MARK}'    # a string value holding it would show its quotes escaped
            at = line.find(mark, start)
            if at < 0:      # written otherwise (another polars version?): row by row, then
                return None
            pieces[i].append(line[start:at + len(column) + 3])
            start = at + len(mark)
        pieces[-1].append(line[start:] + "\n")
    parts = pl.DataFrame({f"p{i}": p for i, p in enumerate(pieces)})[codes]
    values = pf.select(pl.col(c).cast(pl.Utf8).fill_null("null").alias(f"v{i}") for i, c in enumerate(numbers))
    columns = [parts[f"p{i // 2}"] if i % 2 == 0 else values[f"v{i // 2}"] for i in range(2 * len(numbers) + 1)]
    return joined_bytes(pl.select(pl.concat_str(columns)).to_series())


class _Chunks(list):
    """A file that keeps what polars writes as its chunks, joined once at the end: a BytesIO
    grows by copying as it goes (measured: 11% of the encoding of a flood's batch)."""

    def write(self, data: bytes) -> int:
        self.append(data)
        return len(data)

    def flush(self) -> None:
        pass


def frame_to_jsonl(frame) -> str:
    return frame_to_jsonl_bytes(frame).decode()


class Sink:
    """A batch is written in two steps: encode (no side effects, so it may be run again) and
    put (writes what encode made). write() does both."""

    def encode(self, frame):
        raise NotImplementedError

    def put(self, encoded) -> None:
        raise NotImplementedError

    def write(self, frame) -> None:
        self.put(self.encode(frame))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class JsonlSink(Sink):
    def __init__(self, stream: IO[str], summary_line: bool = True):
        self.stream = stream
        self.summary_line = summary_line
        # The encoded bytes go straight to the stream's binary layer when it has one: decoding
        # them to str for a text stream to encode again cost more than the encoding itself.
        self._binary = getattr(stream, "buffer", None)

    def encode(self, frame) -> bytes:
        return frame_to_jsonl_bytes(frame)

    def put(self, data: bytes) -> None:
        if not data:
            return
        if self._binary is not None:
            self.stream.flush()     # text written before (a header) stays before
            self._binary.write(data)
            self._binary.flush()
        else:
            self.stream.write(data.decode())
            self.stream.flush()

    def write_summary(self, summary: dict) -> None:
        if self.summary_line:
            self.stream.write(json.dumps({"summary": summary}, default=str) + "\n")
            self.stream.flush()


class CsvSink(Sink):
    def __init__(self, path: str):
        self.stream = open(path, "w", newline="")
        self.header = True

    def encode(self, frame) -> str:
        if frame.empty and not self.header:
            return ""
        return frame.to_csv(header=self.header, index=False)

    def put(self, text: str) -> None:
        if not text:
            return
        self.stream.write(text)
        self.header = False
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


class ParquetSink(Sink):
    """One row group per batch. The footer is written on close (clean exit, Ctrl-C, SIGTERM)."""

    def __init__(self, path: str):
        self.path = path
        self.writer = None
        self.schema = None

    def encode(self, frame):
        import pyarrow as pa

        return pa.Table.from_pandas(frame, preserve_index=False)

    def put(self, table) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            # Categorical columns get 32-bit codes: pandas picks the narrowest width per batch,
            # and a later batch with more distinct values must still fit the file's schema.
            self.schema = pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type.value_type))
                                     if pa.types.is_dictionary(f.type) else f for f in table.schema],
                                    metadata=table.schema.metadata)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        table = table.cast(self.schema)
        if table.num_rows:
            self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class FileJsonlSink(JsonlSink):
    def __init__(self, path: str):
        super().__init__(open(path, "w"), summary_line=False)

    def close(self) -> None:
        self.stream.close()


def open_file_sink(path: str) -> Sink:
    kind = format_for(path)
    try:
        if kind == "jsonl":
            return FileJsonlSink(path)
        if kind == "csv":
            return CsvSink(path)
        return ParquetSink(path)
    except OSError as err:
        raise UsageProblem(f"cannot write {path}: {err.strerror}", "choose a writable path") from None


def read_back(path: str):
    """Read a file any sink wrote into a schema DataFrame (for tests and round trips)."""
    import pandas as pd

    from .events import conform

    kind = format_for(path)
    if kind == "jsonl":
        rows = [json.loads(line) for line in open(path) if line.strip()]
        rows = [r for r in rows if "summary" not in r]
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    elif kind == "csv":
        frame = pd.read_csv(path, dtype={"saddr": "string", "daddr": "string"}, keep_default_na=True)
    else:
        frame = pd.read_parquet(path)
    return conform(frame)
