"""A live capture session: compile, load, attach, read batches, count losses, detach.

Records are copied out of the ring buffer as raw bytes in bcc's callback (the only per-event
Python work) and decoded a batch at a time with numpy.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import EnvironmentProblem, UsageProblem
from .decode import Names, decode
from .filters import Filters, fill_maps
from .header import event_dtype

STATE_NAME_PREFIX = "TCP_"
PROG_INFO_SIZE = 512   # at least this kernel's struct bpf_prog_info; the kernel says how much it filled
STATE_FIELDS = ("state", "oldstate", "newstate")


@dataclass
class Stats:
    started: float = 0.0            # epoch seconds
    first_event_after: float | None = None  # seconds from start() to the first event
    captured: int = 0
    lost: int = 0                   # failed submissions counted in the kernel
    missed: int | None = 0          # events our programs were skipped for (recursion guard); None: unknown
    attached: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)    # attached as raw tracepoints (cheaper per hit)
    btf: list[str] = field(default_factory=list)    # of those, as BTF tracepoints (direct reads)
    fallbacks: list[str] = field(default_factory=list)  # a form the kernel refused, and why
    missing: list[str] = field(default_factory=list)
    transport: str = ""
    allocator: list[str] = field(default_factory=list)  # allocator settings not applied (live/memory.py)
    direct_packet_reads: bool = False   # BTF tracepoints load packet bytes directly (btfprog.py)

    def as_dict(self, stopped: float | None = None) -> dict:
        tuned = {"allocator_not_tuned": self.allocator} if self.allocator else {}
        return {"captured": self.captured, "lost": self.lost, "missed": self.missed, "transport": self.transport,
                "duration": round((stopped or time.time()) - self.started, 3),
                # a tracepoint two groups use (owner, giveup) is named once
                "attached": list(dict.fromkeys(self.attached)), "raw_probes": list(dict.fromkeys(self.raw)),
                "btf_probes": self.btf, "direct_packet_reads": self.direct_packet_reads,
                "missing_probes": self.missing, "probe_fallbacks": self.fallbacks, **tuned}


def _pages(buffer_mb: float) -> int:
    """Buffer pages: a power of two, at least the requested size (and at least one page)."""
    want = int(buffer_mb * 1024 * 1024) // os.sysconf("SC_PAGE_SIZE")
    pages = 1
    while pages < want:
        pages *= 2
    return pages


def _kernel_at_least(version: tuple[int, int]) -> bool:
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    return (major, minor) >= version


def _direct_packet_reads(facts: dict) -> bool:
    """Whether the BTF tracepoints may read packet headers with plain loads (TW_DIRECT_PACKET)."""
    head = facts["offsets"].get("SKB_HEAD", -1)
    btf_id = facts.get("tracepoint_btf_ids", {}).get("netif_receive_skb")
    if not btf_id or head < 0:
        return False
    from .btfprog import reads_bytes_directly

    return reads_bytes_directly(btf_id, head)


def _supports_ringbuf() -> bool:
    return _kernel_at_least((5, 8))


class _Refused(Exception):
    """The kernel refused a probe's form ("raw" or "btf") at load or attach."""

    def __init__(self, function: str, form: str, why: str):
        super().__init__(why)
        self.function, self.form, self.why = function, form, why


class Capture:
    """Use as a context manager; iterate `batches()` for schema DataFrames."""

    def __init__(self, filters: Filters | None = None, buffer_mb: int = 4, transport: str = "auto",
                 flush_interval: float = 0.25, groups: tuple[str, ...] = ("resets",), count: bool = False,
                 count_flows: int = 65536, origins: bool = False):
        self.filters = filters or Filters()
        self.groups = tuple(groups)
        # origins: one event per reset, labelled with the layer that made it (tcpwatch/live/origin.py);
        # else every record as the kernel gave it (device copies as kinds wire-out/wire-in)
        self._pairing = None
        if origins:
            from .origin import OriginPairing

            self._pairing = OriginPairing(wire="netdev" in self.groups)
        self.count = count              # --count: per-flow counters in the kernel, no records
        self.count_flows = count_flows
        self.buffer_mb = buffer_mb
        if transport not in ("auto", "ringbuf", "perf"):
            raise UsageProblem(f"transport {transport!r}: use auto, ringbuf or perf")
        self.transport = transport
        self.flush_interval = flush_interval
        self.stats = Stats()
        self._bpf = None
        self._ring = None
        self._attached_functions: set[str] = set()
        self._btf_programs: list = []   # tcpwatch/live/btfprog.py's, which bcc does not know of
        self._facts: dict = {"offsets": {}}
        self._raw: list[bytes] = []     # records read, not yet handed over (under _lock)
        self._lock = threading.Lock()
        self._read_stamp: int | None = None     # when the last read began (monotonic ns)
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._event_size = event_dtype().itemsize
        self._stopped = False   # set by stop(); a plain flag, see there
        self._mono_to_epoch = 0.0
        # when the read that ended the last batch handed over began (monotonic ns): every
        # record committed by then is in that batch or an earlier one, which pairing relies on
        self._taken_at: int | None = None
        self._last_batch_rows = 0
        self._names: Names | None = None
        self._held_rsts = None  # RSTs the kernel holds for their socket (device probes)

    # -- set-up -------------------------------------------------------------------------
    def start(self) -> "Capture":
        from .doctor import require_live

        t0 = time.monotonic()
        require_live()
        from .memory import keep_freed_memory

        self.stats.allocator = keep_freed_memory()
        from .kernel_facts import kernel_facts
        from .program import Options, build_source, netns_constants
        from .tracefs import read_format

        from .probes import PROBES, btf_functions, context_from_lock, expand, raw_functions, select

        wanted = select(self.groups, self.filters.direction)
        # Every tracepoint of the wanted groups gets a struct, attached or not: a group's code
        # may test TP_<name>_PRESENT for a sibling probe.
        formats = {p.name: read_format(p.category, p.name) for p in PROBES if p.group in expand(self.groups)}
        present = [p for p in wanted if formats[p.name] is not None]
        self.stats.missing = [p.tracepoint for p in wanted if formats[p.name] is None]
        for group in self.groups:
            if not any(p.group == group for p in present):
                missing = next(p.tracepoint for p in wanted if p.group == group)
                raise EnvironmentProblem(f"tracepoint {missing} is missing on this kernel",
                                         f"tcpwatch doctor lists the probes this kernel has for {group!r}")
        facts = self._facts = kernel_facts()
        from_lock = context_from_lock(facts)
        if from_lock:
            present = [p for p in present if p.group != "core"]
        elif any(p.group == "core" for p in wanted if formats[p.name] is None):
            raise EnvironmentProblem("tracepoints irq:softirq_entry/exit are missing on this kernel",
                                     "use a kernel with CONFIG_TRACEPOINTS (every distribution kernel)")
        hold = "netdev" in self.groups and not self.count and _kernel_at_least((5, 12))
        use_ringbuf = self.transport == "ringbuf" or (self.transport == "auto" and _supports_ringbuf())
        self.stats.transport = "ringbuf" if use_ringbuf else "perf"
        if self._pairing is not None:
            self._pairing.ordered = use_ringbuf     # a perf buffer is read CPU by CPU
        self._names = self._symbol_names(formats, facts["enums"])
        direct_packet = _direct_packet_reads(facts)
        refused: dict[str, set[str]] = {"raw": set(), "btf": set()}
        while True:
            # Only the form each probe runs in is compiled (a plain variant costs compile time
            # at every start); a form the kernel refuses means one more build with the next one
            # down for that probe: BTF tracepoint, raw tracepoint, tracepoint.
            raw = raw_functions(present, facts, refused["raw"])
            btf = btf_functions(present, facts, raw, refused["btf"])
            options = Options(use_ringbuf=use_ringbuf, ringbuf_pages=_pages(self.buffer_mb),
                              filter_netns=bool(self.filters.netns), filter_ports=bool(self.filters.ports),
                              filter_hosts=bool(self.filters.hosts),
                              extra_defines={"TW_COUNT_FLOWS": self.count_flows}, raw_functions=tuple(sorted(raw)),
                              btf_functions=tuple(sorted(btf)), context_from_lock=from_lock,
                              netns_constants=netns_constants(self.filters.netns), hold_wire_in=hold,
                              direct_packet=direct_packet)
            self._compile(build_source(formats, facts["offsets"], options, expand(self.groups, self.count)))
            try:
                self._attach_all(present, raw, btf)
                break
            except _Refused as err:
                refused[err.form].add(err.function)
                self.stats.fallbacks.append(f"{err.form} form refused: {err.why}")
                self._unload()
                self.stats.attached, self.stats.raw, self.stats.btf = [], [], []
                self._attached_functions.clear()
        self.stats.direct_packet_reads = direct_packet and bool(self.stats.btf)   # only they read so
        if hold:
            from .held import HeldRsts
            from .origin import LATENCY, WINDOW

            self._held_rsts = HeldRsts(self._bpf[b"tw_held_in"], int((WINDOW + LATENCY) * 1e9))
        table = self._bpf[b"events"]
        if use_ringbuf:
            from .ringbuf import RingReader

            self._ring = RingReader(table.map_fd, options.ringbuf_pages * os.sysconf("SC_PAGE_SIZE"))
        else:
            # Read on the same timer as the ring, never woken per event (bcc's default): a
            # wakeup for each sample interrupted the traced CPU each time. Measured in a flood,
            # the traced connect rate went from 0.42 of untraced to 0.88 (the ring: 0.90).
            table.open_perf_buffer(self._on_event, page_cnt=_pages(self.buffer_mb),
                                   lost_cb=lambda _count: None,     # counted in the kernel instead
                                   wakeup_events=self.PERF_WAKEUP_EVENTS)
        self._reader = threading.Thread(target=self._read_loop, name="tcpwatch-reader", daemon=True)
        self._reader.start()
        self._mono_to_epoch = time.time() - time.monotonic()
        self.stats.started = time.time() - (time.monotonic() - t0)
        self._t0 = t0
        return self

    def _compile(self, source: str) -> None:
        from bcc import BPF

        from .program import BPF_DIR

        try:
            self._bpf = BPF(text=source.encode(), cflags=[f"-I{BPF_DIR}", "-Wno-macro-redefined"])
        except Exception as err:
            raise EnvironmentProblem(f"the BPF program did not compile or load: {str(err).splitlines()[0]}",
                                     "run `tcpwatch doctor`") from None
        fill_maps(self._bpf, self.filters)

    def _attach_all(self, present, raw: set[str], btf: set[str]) -> None:
        for probe in present:
            self.stats.attached.append(probe.tracepoint)
            if probe.raw_host and probe.function in raw:
                # its raw code runs inside its host's raw program (attached before it)
                self.stats.raw.append(probe.tracepoint)
                continue
            function = self._attach(probe, probe.function in raw, probe.function in btf)
            if probe.group != "core":
                # softirq-depth probes are skipped in pairs when a softirq runs inside one of our
                # programs (depth stays balanced); only skipped event probes are missed events
                self._attached_functions.add(function)

    def _attach(self, probe, raw: bool, btf: bool) -> str:
        """Attach the probe's raw variant when this kernel runs it (as a BTF tracepoint when
        btf), else the tracepoint; returns the function attached. A refused form raises _Refused
        (the next form down was not compiled: the caller builds again)."""
        function = f"{probe.function}_raw"
        if btf:
            from .btfprog import BtfRefused, load

            try:
                self._btf_programs.append(load(self._bpf, function, self._facts["tracepoint_btf_ids"][probe.name]))
            except BtfRefused as err:
                raise _Refused(probe.function, "btf", str(err)) from None
            self.stats.raw.append(probe.tracepoint)
            self.stats.btf.append(probe.tracepoint)
            return function
        if raw:
            try:
                self._bpf.attach_raw_tracepoint(tp=probe.name.encode(), fn_name=function.encode())
            except Exception as err:    # refused at load or attach
                first_line = (str(err).splitlines() or [repr(err)])[0]
                raise _Refused(probe.function, "raw", f"{function}: {first_line}") from None
            self.stats.raw.append(probe.tracepoint)
            return function
        self._bpf.attach_tracepoint(tp=probe.tracepoint.encode(), fn_name=probe.function.encode())
        return probe.function

    @staticmethod
    def _symbol_names(formats, enums: dict[str, int]) -> Names:
        states: dict[int, str] = {}
        reasons: dict[int, str] = {}
        for fmt in formats.values():
            if fmt is None:
                continue
            for field_name in STATE_FIELDS:
                for value, name in fmt.names_for(field_name, enums).items():
                    states.setdefault(value, name.removeprefix(STATE_NAME_PREFIX))
            reasons.update(fmt.names_for("reason", enums))
        if not states:  # the format file has no state list: take the kernel's enum
            states = {v: k.removeprefix(STATE_NAME_PREFIX) for k, v in enums.items()
                      if k.startswith(STATE_NAME_PREFIX) and k[4:] in TCP_STATE_NAMES}
        return Names(states=states, reasons=reasons)

    # -- running ------------------------------------------------------------------------
    def _on_event(self, _cpu, data, size) -> None:
        # perf buffer only (the ring buffer is read in batches by RingReader). Perf pads each
        # sample to 8 bytes after its 4-byte size: keep exactly one struct.
        self._raw.append(ctypes.string_at(data, min(size, self._event_size)))

    def stop(self) -> None:
        """End batches() within one poll interval. Safe in a signal handler: it takes no lock.
        (It was threading.Event.set, whose lock the interrupted main thread could be holding
        inside Event.wait: Ctrl-C then hung the capture for good; seen in the bench.)"""
        self._stopped = True

    # The ring is read on a timer, never record by record: each read that empties it makes the
    # kernel's next submission raise a wakeup (an interrupt on the traced CPU), and a reader
    # spinning on a flood paid that, and its own CPU, per few events. It is read by its own
    # thread every READ_INTERVAL, not between the pipeline's batches: then a small ring (the
    # default 4 MiB) never fills while a batch is being worked on, and a small ring is cheaper
    # for the traced CPU, whose records land in cache lines still warm from the last lap
    # (measured, kernel side alone: ratio 0.87 with 32 MiB, 0.88 with 8, 0.90-0.91 with 4).
    READ_INTERVAL = 0.02
    PERF_WAKEUP_EVENTS = 1 << 30    # samples before the kernel would wake a reader: never, in effect

    def _read_loop(self) -> None:
        while not self._closing.wait(self.READ_INTERVAL):
            self._read()

    def _read(self) -> None:
        with self._lock:
            if self._bpf is None:
                return
            stamp = time.monotonic_ns()     # before the read: what was committed by then is in it
            if self._ring is not None:
                self._ring.read(self._raw)
            else:
                self._bpf.perf_buffer_consume()     # each CPU's buffer, through _on_event
            self._read_stamp = stamp

    def _poll(self, timeout_ms: int) -> None:
        if timeout_ms:
            time.sleep(timeout_ms / 1000)   # a signal runs its handler at once, then sleeps on
        self._read()

    def take_records(self) -> bytearray:
        """The records read so far (raw structs back to back, writable), handed over once."""
        with self._lock:
            raw, self._raw = bytearray().join(self._raw), []
            self._taken_at = self._read_stamp
        return raw

    def table(self, name: str):
        """A map of the loaded program (e.g. tw_flows in --count mode)."""
        return self._bpf[name.encode()]

    def read_lost(self) -> int:
        """Records the kernel could not hand over, and (in stats.missed) events it never ran our
        programs for; both are reported, never silent."""
        from .progstats import recursion_misses

        self.stats.lost = int(self._bpf[b"tw_lost"].sum(0).value)
        fds = [fn.fd for name, fn in self._bpf.funcs.items() if name.decode() in self._attached_functions]
        fds += [prog.fd for prog in self._btf_programs if prog.function in self._attached_functions]
        self.stats.missed = recursion_misses(fds, self._facts["offsets"].get("PROG_INFO_RECURSION_MISSES", -1),
                                             PROG_INFO_SIZE)
        return self.stats.lost

    def batches(self, duration: float | None = None, idle_ticks: bool = False) -> Iterator:
        """Yield schema DataFrames until duration elapses or stop() is called; with idle_ticks,
        also None every flush interval without events.

        With origins, records waiting for their partner are released when they become final:
        the next batch comes then rather than at the next flush interval."""
        deadline = None if duration is None else time.monotonic() + duration
        last_flush = time.monotonic()
        while True:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if self._stopped or (remaining is not None and remaining <= 0):
                break
            wait = max(0.0, last_flush + self.flush_interval - now)
            # Until the first events are out they go as soon as they are read, not at the next
            # flush: a person starting a capture sees the first reset a fifth of a second sooner.
            first = self.stats.first_event_after is None
            if first:
                wait = min(wait, self.READ_INTERVAL)
            due = self._due(last_flush)
            if due is not None:
                wait = min(wait, max(0.0, due - now))
            if remaining is not None:
                wait = min(wait, remaining)
            self._poll(max(1, int(wait * 1000)))
            now = time.monotonic()
            first_read = first and bool(self._raw)
            if first_read:
                self.stats.first_event_after = now - self._t0
            if now - last_flush >= self.flush_interval or (due is not None and now >= due) or first_read:
                frame = self._decode(self.take_records())
                if frame is not None:
                    yield frame
                elif idle_ticks:
                    yield None
                last_flush = now
        # Drain what the kernel already handed over or holds, then what waits for a partner.
        self._poll(0)
        frame = self._decode(self.take_records(), final=True)
        if frame is not None:
            yield frame
        if self._pairing is not None:
            frame = self._decoded(self._pairing.flush())
            if frame is not None:
                yield frame
        self.read_lost()

    # A release of held records comes at least this long after the last batch (a held record
    # that is due but waits for its partner to be due too must not turn the loop into a spin),
    # and only while batches are small: under load every held record is due soon after it is
    # read, and waking for each would multiply the batches and their fixed costs (measured:
    # +40% CPU in a flood) for a gain in display latency nobody can see at that rate.
    MIN_WAKE_GAP = 0.02
    WAKE_MAX_ROWS = 2000

    def _due(self, last_flush: float) -> float | None:
        """When held records become final (monotonic s), or None."""
        if self._pairing is None or self._last_batch_rows > self.WAKE_MAX_ROWS:
            return None
        at = self._pairing.next_release()
        if at is None:
            return None
        return max(at / 1e9, last_flush + self.MIN_WAKE_GAP)

    def _decode(self, raw: bytearray, final: bool = False):
        """The batch of records read, with the RSTs the kernel held too long (all of them when
        final), through the origin pairing (with origins); or None."""
        import numpy as np

        records = np.frombuffer(raw, dtype=event_dtype())
        now = self._taken_at or time.monotonic_ns()    # when the read that ended this batch began
        if self._held_rsts is not None:
            from .origin import concat_records

            records = concat_records(self._held_rsts.drop_copies(records), self._held_rsts.take(now, final))
        self.stats.captured += len(records)
        self._last_batch_rows = len(records)
        if self._pairing is None:
            return decode(records, self._names, self._mono_to_epoch) if len(records) else None
        return self._decoded(self._pairing.feed(records, now))

    def _decoded(self, paired):
        if paired is None:
            return None
        return decode(paired.records, self._names, self._mono_to_epoch, paired.columns)

    def close(self) -> None:
        if self._bpf is not None:
            try:
                self.read_lost()
            finally:
                self._closing.set()
                if self._reader is not None:
                    self._reader.join()
                    self._reader = None
                if self._ring is not None:
                    self._ring.close()
                    self._ring = None
                self._unload()

    def _unload(self) -> None:
        """Detach and unload every program: ours first (they use bcc's maps), then bcc's."""
        for prog in self._btf_programs:
            prog.close()
        self._btf_programs = []
        self._bpf.cleanup()
        self._bpf = None

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


TCP_STATE_NAMES = {"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
                   "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

__all__ = ["Capture", "Stats"]
