"""Join events with conntrack: one cache per network namespace, `ct_` columns per event row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

from ..errors import TcpwatchError
from .cache import ConntrackCache
from .entry import CT_DTYPES, CtLookup, empty_columns, is_missing
from .netns import own_netns_inode


class ConntrackCaches:
    """A ConntrackCache per namespace inode, opened on first use (auto) or up front (watch)."""

    def __init__(self, ttl: float = 30.0, auto: bool = True, netns: Iterable[str | int | None] = ()):
        self.ttl = ttl
        self.auto = auto
        self.failures: dict[int, str] = {}      # inode -> why no cache could be opened there
        self._caches: dict[int, ConntrackCache] = {}
        self._own = own_netns_inode()
        for ns in netns:
            self.watch(ns)

    def watch(self, netns: str | int | None) -> ConntrackCache:
        """Start watching a namespace now (so its entries are cached before its first event)."""
        cache = ConntrackCache(netns, ttl=self.ttl)
        self._caches.setdefault(cache.netns.inode, cache)
        return self._caches[cache.netns.inode]

    def get(self, inode: int | None) -> ConntrackCache | None:
        """The cache of a namespace (None: this process's), or None if it cannot be watched."""
        inode = self._own if inode is None else int(inode)
        cache = self._caches.get(inode)
        if cache is None and self.auto and inode not in self.failures:
            try:
                cache = self.watch(inode)
            except TcpwatchError as err:        # the namespace is gone: its events get "unavailable"
                self.failures[inode] = err.one_line()
        return cache

    def __iter__(self):
        return iter(self._caches.values())

    def close(self) -> None:
        for cache in self._caches.values():
            cache.close()
        self._caches.clear()

    def __enter__(self) -> "ConntrackCaches":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


CacheSource = ConntrackCaches | ConntrackCache | Mapping[int | None, ConntrackCache]


def _cache_for(caches: CacheSource, inode: Any) -> ConntrackCache | None:
    inode = None if is_missing(inode) else int(inode)
    if isinstance(caches, ConntrackCache):
        return caches
    if isinstance(caches, ConntrackCaches):
        return caches.get(inode)
    return caches.get(inode)


def enrich(frame, caches: CacheSource):
    """A copy of an events frame with the `ct_` columns of CT_DTYPES added (typed, nullable).

    caches: a ConntrackCaches (per-namespace, by the frame's `netns` inode), a mapping inode ->
    ConntrackCache, or one ConntrackCache for every row. Lookups only read caches; never block.
    A namespace whose cache is unavailable, or where conntrack is not in use, gets one answer for
    all its rows without a lookup per row (a reset flood there costs nothing per event)."""
    import numpy as np
    import pandas as pd

    n = len(frame)
    columns = {name: np.full(n, None, dtype=object) for name in CT_DTYPES}
    inodes = frame["netns"].to_numpy(dtype="int64", na_value=-1) if "netns" in frame.columns else np.full(n, -1)
    if n and (inodes == inodes[0]).all():   # the usual batch: one namespace, maybe one answer for all
        whole = _whole_namespace(_cache_for(caches, None if inodes[0] == -1 else int(inodes[0])))
        if whole is not None:
            added = pd.DataFrame({name: _repeated(whole.get(name), n, dtype) for name, dtype in CT_DTYPES.items()},
                                 index=frame.index)
            return pd.concat([frame.drop(columns=[c for c in CT_DTYPES if c in frame.columns]), added], axis=1)
    distinct, which = np.unique(inodes, return_inverse=True)
    for at, inode in enumerate(distinct.tolist()):
        positions = np.flatnonzero(which == at)
        key = None if inode == -1 else int(inode)
        cache = _cache_for(caches, key)
        whole = _whole_namespace(cache)
        if whole is not None:
            for name, value in whole.items():
                columns[name][positions] = value
            continue
        names = ("family", "saddr", "sport", "daddr", "dport", "ts")
        values = [frame[c].to_numpy(dtype=object)[positions] if c in frame.columns else [None] * len(positions)
                  for c in names]
        for pos, (family, saddr, sport, daddr, dport, ts) in zip(positions, zip(*values)):
            if any(is_missing(v) for v in (family, saddr, sport, daddr, dport)):
                row = empty_columns(CtLookup.UNAVAILABLE)
            else:
                row = cache.columns(int(family), saddr, int(sport), daddr, int(dport),
                                    None if is_missing(ts) else float(ts))
            for name in CT_DTYPES:
                columns[name][pos] = row.get(name)
    out = frame.copy()
    for name, dtype in CT_DTYPES.items():
        out[name] = pd.Series(columns[name], index=frame.index).astype(dtype)
    return out


def _repeated(value, n: int, dtype: str):
    """A column of n copies of value (None: null) in dtype, built without a Python object per row."""
    import numpy as np
    import pandas as pd

    from ..codes import strings_from_codes

    if dtype == "string":
        return strings_from_codes([value], np.zeros(n, dtype=np.int8))
    if dtype == "float64":
        return np.full(n, np.nan if value is None else float(value))
    return pd.arrays.IntegerArray(np.full(n, value or 0, dtype=dtype.lower()), np.full(n, value is None))


def _whole_namespace(cache: ConntrackCache | None) -> dict[str, Any] | None:
    """The ct_ columns every row of a namespace gets, or None when each row needs a lookup."""
    if cache is None or not cache.ready or cache.failure:
        return empty_columns(CtLookup.UNAVAILABLE)
    if not cache.tracked and not len(cache):
        return empty_columns(CtLookup.NOT_TRACKED)
    return None
