"""A capture file's (decompressed) bytes as a sliding window over one reusable buffer.

The core parses what it can of the window; the unparsed tail (part of a record) moves to the
front and the rest of the buffer is refilled from the file. No bytes object per chunk and no
concatenation: on an uncompressed capture the bytes are copied once, by the kernel, into the
buffer. Memory stays bounded (the buffer grows only to hold one record larger than it).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

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
        handle = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", "give a capture file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", "run with sudo or fix the file mode") from None
    except OSError as err:
        raise InputError(f"{path}: cannot open: {err.strerror}") from None
    return handle


class Gunzip:
    """gzip members one after another; a truncated or corrupt stream ends the data (noted)."""

    def __init__(self, raw, notes: StreamNotes, chunk_size: int):
        self.raw, self.notes, self.chunk_size = raw, notes, chunk_size
        self.inflater = zlib.decompressobj(wbits=47)
        self.tail = b""        # compressed bytes read but not yet inflated
        self.done = False

    def read(self, limit: int) -> bytes:
        """Up to `limit` decompressed bytes; b"" at the end of the data."""
        notes = self.notes
        while not self.done:
            if not self.tail:
                self.tail = self.raw.read(self.chunk_size)
                notes.raw_read += len(self.tail)
                if not self.tail:
                    if not self.inflater.eof and notes.gzip_problem is None:
                        notes.gzip_problem = "compressed stream ends early (truncated .gz)"
                    self.done = True
                    break
            try:
                out = self.inflater.decompress(self.tail, limit)
            except zlib.error as err:
                notes.gzip_problem = f"corrupt compressed data at byte {notes.raw_read}: {err}"
                self.done = True
                break
            self.tail = self.inflater.unconsumed_tail
            if self.inflater.eof:
                rest = self.inflater.unused_data + self.tail
                self.inflater = zlib.decompressobj(wbits=47)
                self.tail = rest
                if rest and not rest.startswith(GZIP_MAGIC):
                    notes.gzip_problem = "trailing garbage after the compressed stream"
                    self.done = True
            if out:
                return out
        return b""


class ByteWindow:
    """`view()` is the bytes not yet parsed; `consume(n)` drops n of them; `fill()` reads more."""

    def __init__(self, path: str, notes: StreamNotes, chunk_size: int = CHUNK):
        self.notes = notes
        self.raw = _open(path)
        try:
            notes.raw_size = os.fstat(self.raw.fileno()).st_size
        except OSError:
            notes.raw_size = 0
        head = self.raw.read(2)
        self.raw.seek(0)
        notes.compressed = head == GZIP_MAGIC
        self.gunzip = Gunzip(self.raw, notes, chunk_size) if notes.compressed else None
        self.buf = memoryview(bytearray(max(chunk_size, 64)))
        self.have = 0

    def __enter__(self) -> "ByteWindow":
        return self

    def __exit__(self, *exc) -> None:
        self.buf.release()
        self.raw.close()

    def view(self) -> memoryview:
        return self.buf[: self.have]

    def consume(self, used: int) -> None:
        left = self.have - used
        if left and used:
            self.buf[:left] = self.buf[used: self.have]   # memoryview assignment is a memmove
        self.have = left

    def fill(self) -> bool:
        """Read more after the unparsed tail; False at the end of the data."""
        if self.have == len(self.buf):  # one record larger than the whole buffer
            bigger = memoryview(bytearray(2 * len(self.buf)))
            bigger[: self.have] = self.buf
            self.buf.release()
            self.buf = bigger
        if self.gunzip is None:
            got = self.raw.readinto(self.buf[self.have:])
            self.notes.raw_read += got
        else:
            out = self.gunzip.read(len(self.buf) - self.have)
            got = len(out)
            self.buf[self.have: self.have + got] = out
        self.have += got
        return got > 0
