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
    about three times faster than pandas' to_json on event batches."""
    if frame.empty:
        return b""
    from .frames import as_polars

    pf = as_polars(frame)
    all_null = [name for name, nulls in zip(pf.columns, pf.null_count().row(0)) if nulls == pf.height]
    chunks = _Chunks()
    (pf.drop(all_null) if all_null else pf).write_ndjson(chunks)
    return b"".join(chunks)


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
