"""Drive the C core over one file and collect its packed outputs as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import EnvironmentProblem, InputError
from . import records
from .stream import CHUNK, ByteWindow, StreamNotes

Progress = Callable[[int, int], None]


def load_core():
    try:
        from . import _pcapcore
    except ImportError as err:
        raise EnvironmentProblem(f"the pcap C extension is not built ({err})", "run `make setup`") from None
    records.check_layouts(_pcapcore)
    return _pcapcore


@dataclass
class RawResult:
    path: str
    events: np.ndarray
    connections: np.ndarray
    damage: np.ndarray
    stats: dict
    notes: StreamNotes = field(default_factory=StreamNotes)


def _take(parts: list, data: bytes, dtype) -> None:
    if data:
        parts.append(np.frombuffer(data, dtype=dtype))


def _join(parts: list, dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def run(path: str, progress: Progress | None = None, chunk_size: int | None = None) -> RawResult:
    core_module = load_core()
    core = core_module.Core()
    notes = StreamNotes()
    events, conns, damage = [], [], []
    try:
        with ByteWindow(path, notes, chunk_size or CHUNK) as window:
            while window.fill():
                window.consume(core.feed(window.view(), False))
                _take(events, core.take_events(), records.EVENT_DTYPE)
                _take(conns, core.take_connections(), records.CONN_DTYPE)
                if progress:
                    progress(notes.raw_read, notes.raw_size)
            core.feed(window.view(), True)
        core.finish()
    except core_module.FormatError as err:
        raise InputError(f"{path}: {err}", "give a pcap or pcapng capture (optionally .gz)") from None
    _take(events, core.take_events(), records.EVENT_DTYPE)
    _take(conns, core.take_connections(), records.CONN_DTYPE)
    _take(damage, core.take_damage(), records.DAMAGE_DTYPE)
    stats = core.stats()
    if stats["packets"] == 0 and stats["format"] == "unknown":
        raise InputError(f"{path}: file is empty", "give a pcap or pcapng capture")
    return RawResult(path, _join(events, records.EVENT_DTYPE), _join(conns, records.CONN_DTYPE),
                     _join(damage, records.DAMAGE_DTYPE), stats, notes)
