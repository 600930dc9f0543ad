"""A short-lived cache of one namespace's conntrack entries, fed by netlink events in a background thread.

A reset closes or destroys its entry within microseconds, so asking the kernel afterwards finds
nothing; the cache keeps entries for `ttl` seconds after their DESTROY event. Lookups only read the
cache: they never wait on netlink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import socket
import threading
import time
from collections import Counter
from typing import Any

from .entry import (CtEntry, CtEvent, CtLookup, Tuple5, canonical_addr, empty_columns,
                    fields_from_msg)
from .firewall import ruleset_uses_conntrack
from .netns import enter_netns_fd, open_netns, resolve_netns

# NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY as a bind() group mask (groups 1, 2, 3).
_CT_EVENT_GROUPS = 0b111
_IPCTNL_MSG_CT_DELETE = 2
_NLM_F_CREATE_EXCL = 0x400 | 0x200
_RCVBUF = 8 << 20
# How far an event's timestamp may sit outside an entry's lifetime and still belong to it
# (event and netlink timestamps are taken by different threads).
_SLACK = 1.0
_PRUNE_EVERY = 1.0


class ConntrackCache:
    """Conntrack entries of one network namespace: live ones, and destroyed ones for `ttl` seconds.

    netns: an `ip netns` name, a path, an inode number, or None for this process's namespace.
    listen=False builds an empty cache fed only through apply() (replays, tests).
    """

    def __init__(self, netns: str | int | None = None, ttl: float = 30.0, *, listen: bool = True,
                 ruleset_interval: float = 10.0):
        self.netns = resolve_netns(netns)
        self.ttl = ttl
        self.ruleset_interval = ruleset_interval
        self.counts: Counter[str] = Counter()   # dumped, new, update, destroy, overflows, pruned, ...
        self.failure: str | None = None
        self._lock = threading.Lock()
        self._by_id: dict[int, CtEntry] = {}
        self._index: dict[Tuple5, set[int]] = {}
        self._ruleset_tracked: bool | None = None
        self._ready = threading.Event()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        if not listen:
            self._ready.set()
            return
        self._fd = open_netns(self.netns)
        self._thread = threading.Thread(target=self._run, name=f"conntrack-{self.netns.label}", daemon=True)
        self._thread.start()

    # ---- reading (any thread, never blocks on I/O) -------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the initial dump is in (or the cache failed: see .failure)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def tracked(self) -> bool:
        """Whether conntrack is in use in this namespace: entries seen, or a rule that needs it."""
        return bool(self.counts["entries_seen"]) or bool(self._ruleset_tracked)

    def __len__(self) -> int:
        return len(self._by_id)

    def match(self, family: int, saddr: str, sport: int, daddr: str, dport: int,
              ts: float | None = None) -> tuple[CtEntry, str] | None:
        """The entry for this packet's tuple, in either direction, and "original" or "reply"."""
        fam, src = canonical_addr(family, saddr)
        _, dst = canonical_addr(family, daddr)
        forward: Tuple5 = (fam, src, int(sport), dst, int(dport))
        backward: Tuple5 = (fam, dst, int(dport), src, int(sport))
        with self._lock:
            ids = self._index.get(forward, set()) | self._index.get(backward, set())
            candidates = [self._by_id[i] for i in ids if i in self._by_id]
        if not candidates:
            return None
        entry = _pick(candidates, ts)
        original = entry.orig_tuple == forward or entry.reply_tuple == backward
        return entry, ("original" if original else "reply")

    def lookup(self, family: int, saddr: str, sport: int, daddr: str, dport: int,
               ts: float | None = None) -> CtEntry | None:
        found = self.match(family, saddr, sport, daddr, dport, ts)
        return found[0] if found else None

    def columns(self, family: int, saddr: str, sport: int, daddr: str, dport: int,
                ts: float | None = None) -> dict[str, Any]:
        """The `ct_` columns for one packet: the entry, or why there is none (ct_lookup)."""
        if not self.ready or self.failure:
            return empty_columns(CtLookup.UNAVAILABLE)
        found = self.match(family, saddr, sport, daddr, dport, ts)
        if found:
            return found[0].as_columns(found[1])
        return empty_columns(CtLookup.NO_ENTRY if self.tracked else CtLookup.NOT_TRACKED)

    # ---- writing (the background thread, or a replay) ---------------------------------------

    def apply(self, event: CtEvent, fields: dict[str, Any], seen_ts: float | None = None) -> CtEntry | None:
        """Merge one conntrack message (fields as from fields_from_msg) into the cache."""
        now = time.time() if seen_ts is None else seen_ts
        fields = _canonical_fields(fields)
        ct_id = fields.get("ct_id")
        with self._lock:
            old = self._by_id.get(ct_id) if ct_id is not None else None
            if old is not None and old.destroyed_ts is not None and event in (CtEvent.NEW, CtEvent.DUMP):
                self._forget(old)            # the kernel reused an id
                old = None
            if old is None:
                try:
                    entry = CtEntry(**{"ct_id": ct_id if ct_id is not None else _synthetic_id(fields), **fields},
                                    ct_event=event, ct_seen_ts=now,
                                    first_seen_ts=None if event == CtEvent.DUMP else now)
                except TypeError:            # a message without both tuples: nothing to index it by
                    self.counts["incomplete"] += 1
                    return None
            else:
                entry = dataclasses.replace(old, **fields, ct_event=event, ct_seen_ts=now)
            if event == CtEvent.DESTROY:
                entry = dataclasses.replace(entry, destroyed_ts=now)
            self._by_id[entry.ct_id] = entry
            for key in (entry.orig_tuple, entry.reply_tuple):
                self._index.setdefault(key, set()).add(entry.ct_id)
        self.counts[str(event)] += 1
        self.counts["entries_seen"] += 1
        return entry

    def prune(self, now: float | None = None) -> int:
        """Drop entries destroyed more than ttl seconds ago."""
        cutoff = (time.time() if now is None else now) - self.ttl
        with self._lock:
            old = [e for e in self._by_id.values() if e.destroyed_ts is not None and e.destroyed_ts < cutoff]
            for entry in old:
                self._forget(entry)
        self.counts["pruned"] += len(old)
        return len(old)

    def _forget(self, entry: CtEntry) -> None:
        self._by_id.pop(entry.ct_id, None)
        for key in (entry.orig_tuple, entry.reply_tuple):
            ids = self._index.get(key)
            if ids is not None:
                ids.discard(entry.ct_id)
                if not ids:
                    del self._index[key]

    # ---- the background thread --------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread and release the namespace."""
        self._stop_requested = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:             # the loop closed meanwhile
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "ConntrackCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        try:
            if self._fd is not None:
                enter_netns_fd(self._fd)     # this thread only; the socket is born in that namespace
            asyncio.run(self._serve())
        except BaseException as err:         # reported through .failure and ct_lookup=unavailable
            self.failure = f"{type(err).__name__}: {err}"
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from pyroute2.netlink.nfnetlink.nfctsocket import AsyncNFCTSocket

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            return
        sock = AsyncNFCTSocket(nfgen_family=socket.AF_UNSPEC, rcvbuf=_RCVBUF)
        try:
            await sock.bind(groups=_CT_EVENT_GROUPS)   # subscribe first, then dump: no gap
            await self._dump(sock)
            self._ruleset_tracked = await self._loop.run_in_executor(None, ruleset_uses_conntrack, self._fd)
            self._ready.set()
            tasks = [asyncio.create_task(coro) for coro in (self._read(sock), self._housekeeping(),
                                                            self._stop.wait())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()                # re-raise a reader failure
        finally:
            sock.close()

    async def _dump(self, sock) -> None:
        """Fill the cache from the table; entries we hold as live but the table lacks were destroyed."""
        now = time.time()
        present = set()
        async for msg in await sock.dump():
            fields = fields_from_msg(msg)
            if fields is not None:
                entry = self.apply(CtEvent.DUMP, fields, now)
                if entry is not None:
                    present.add(entry.ct_id)
        with self._lock:
            missed = [e for e in self._by_id.values() if e.destroyed_ts is None and e.ct_id not in present]
        for entry in missed:
            self.apply(CtEvent.DESTROY, {"ct_id": entry.ct_id}, now)
        self.counts["dumps"] += 1

    async def _read(self, sock) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        while True:
            try:
                async for msg in sock.get():
                    self._on_message(msg)
            except (NetlinkError, OSError) as err:
                if getattr(err, "code", getattr(err, "errno", None)) != errno.ENOBUFS:
                    raise
                # the kernel dropped events (socket buffer full): re-read the table to catch up
                self.counts["overflows"] += 1
                await self._dump(sock)

    def _on_message(self, msg) -> None:
        fields = fields_from_msg(msg)
        if fields is None:
            return
        if msg["header"]["type"] & 0xFF == _IPCTNL_MSG_CT_DELETE:
            event = CtEvent.DESTROY
        elif msg["header"]["flags"] & _NLM_F_CREATE_EXCL:
            event = CtEvent.NEW
        else:
            event = CtEvent.UPDATE
        self.apply(event, fields)

    async def _housekeeping(self) -> None:
        last_ruleset = time.monotonic()
        while True:
            await asyncio.sleep(_PRUNE_EVERY)
            self.prune()
            if time.monotonic() - last_ruleset >= self.ruleset_interval:
                last_ruleset = time.monotonic()
                self._ruleset_tracked = await self._loop.run_in_executor(None, ruleset_uses_conntrack, self._fd)


def _pick(candidates: list[CtEntry], ts: float | None) -> CtEntry:
    """The entry alive at ts (the newest such if a tuple was reused), else the latest seen."""
    if ts is not None:
        alive = [e for e in candidates
                 if (e.first_seen_ts is None or e.first_seen_ts <= ts + _SLACK)
                 and (e.destroyed_ts is None or e.destroyed_ts >= ts - _SLACK)]
        if alive:
            return max(alive, key=lambda e: (e.first_seen_ts or float("-inf"), e.ct_seen_ts))
    return max(candidates, key=lambda e: e.ct_seen_ts)


def _canonical_fields(fields: dict[str, Any]) -> dict[str, Any]:
    fields = dict(fields)
    family = fields.get("family")
    for name in ("ct_orig_src", "ct_orig_dst", "ct_reply_src", "ct_reply_dst"):
        if fields.get(name) is not None and family is not None:
            fields[name] = canonical_addr(family, fields[name])[1]
    return {k: v for k, v in fields.items() if k in _ENTRY_FIELDS}


_ENTRY_FIELDS = {f.name for f in dataclasses.fields(CtEntry)}


def _synthetic_id(fields: dict[str, Any]) -> int:
    """An id for a message without CTA_ID (old kernels): a hash of the original tuple."""
    key = tuple(fields.get(n) for n in ("family", "ct_orig_src", "ct_orig_sport", "ct_orig_dst", "ct_orig_dport"))
    return hash(key) & 0xFFFFFFFF
