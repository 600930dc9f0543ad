"""Read the kernel's log buffer from /dev/kmsg (what `dmesg` reads), without blocking."""

from __future__ import annotations

import errno
import os

from ..errors import EnvironmentProblem


def read_kmsg_lines(start_seq: int | None = None) -> bytes:
    """Every record now in the ring buffer (optionally only those with seq >= start_seq), one per line.

    /dev/kmsg returns one record per read(); EAGAIN means the end. Continuation lines (dictionary
    `KEY=value` lines that start with a space) are dropped.
    """
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise EnvironmentProblem(f"cannot open /dev/kmsg: {err.strerror}", "run as root") from None
    out = []
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    break
                if err.errno == errno.EPIPE:   # overwritten while reading: continue with the next
                    continue
                raise
            if not rec:
                break
            first = rec.split(b"\n", 1)[0]
            if start_seq is not None:
                try:
                    if int(first.split(b",", 2)[1]) < start_seq:
                        continue
                except (IndexError, ValueError):
                    continue
            out.append(first)
    finally:
        os.close(fd)
    return b"\n".join(out) + (b"\n" if out else b"")


def next_seq() -> int:
    """The sequence number the next kernel message will get."""
    data = read_kmsg_lines()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        return int(last.split(b",", 2)[1]) + 1
    except (IndexError, ValueError):
        return 0
