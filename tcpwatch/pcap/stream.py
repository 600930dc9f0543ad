"""Stream a capture file as byte chunks, gunzipping on the fly; memory stays bounded."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Iterator

from ..errors import InputError

CHUNK = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class StreamNotes:
    compressed: bool = False
    raw_size: int = 0
    raw_read: int = 0
    gzip_problem: str | None = None  # a truncated or corrupt compressed stream (data before it is kept)


def _open(path: str):
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", "give a capture file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", "run with sudo or fix the file mode") from None
    except OSError as err:
        raise InputError(f"{path}: cannot open: {err.strerror}") from None
    return handle


def byte_chunks(path: str, notes: StreamNotes, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield the capture's (decompressed) bytes in chunks of about chunk_size."""
    with _open(path) as raw:
        try:
            notes.raw_size = os.fstat(raw.fileno()).st_size
        except OSError:
            notes.raw_size = 0
        head = raw.read(2)
        raw.seek(0)
        notes.compressed = head == GZIP_MAGIC
        if not notes.compressed:
            while True:
                chunk = raw.read(chunk_size)
                if not chunk:
                    return
                notes.raw_read += len(chunk)
                yield chunk
        # gzip, possibly several members; a truncated stream yields what it had
        inflater = zlib.decompressobj(wbits=47)
        while True:
            chunk = raw.read(chunk_size)
            notes.raw_read += len(chunk)
            if not chunk:
                if not inflater.eof and notes.gzip_problem is None:
                    notes.gzip_problem = "compressed stream ends early (truncated .gz)"
                return
            while chunk:
                try:
                    out = inflater.decompress(chunk, chunk_size)
                except zlib.error as err:
                    notes.gzip_problem = f"corrupt compressed data at byte {notes.raw_read}: {err}"
                    return
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
                if inflater.eof:
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=47)
                    chunk = rest + chunk if rest else chunk
                    if chunk and not chunk.startswith(GZIP_MAGIC):
                        notes.gzip_problem = "trailing garbage after the compressed stream"
                        return
