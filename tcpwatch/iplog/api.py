"""Read iptables/nftables/ulogd LOG lines into the event schema.

`read_iptables_log(path)` -> DataFrame (one row per LOG line). Lines that are not LOG lines are
ignored (and counted); LOG lines that do not parse are counted and listed with their line
numbers in the parse report (`frame.attrs["iplog"]`, or `parse_iptables_log` which returns it),
never half-parsed. The C tokenizer does the work when built; the pure-Python grammar is the
reference and the fallback.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import sys
import time
from typing import IO, Iterable, Iterator

from ..errors import InputError, UsageProblem
from .fields import (ALL_COLUMNS, COLUMN_INDEX, CONTEXT_NAMES, CONTEXTS, INNER_PREFIX, PANDAS_DTYPE,
                     PROTO_CONTEXT, REQUIRED, Col, Conv, tcp_flags_text)

CHUNK_BYTES = 256 << 20
SOURCE = "iptables-log"
RST_BIT = 0x04


@dataclasses.dataclass
class LineProblem:
    file: str
    lineno: int
    reason: str
    text: str


@dataclasses.dataclass
class ParseReport:
    lines: int = 0          # every line read
    log_lines: int = 0      # LOG lines parsed into rows
    other_lines: int = 0    # not LOG lines: ignored
    errors: list[LineProblem] = dataclasses.field(default_factory=list)
    uptime_only: int = 0    # rows whose envelope had only a since-boot stamp (ts left null)
    engine: str = ""

    def as_dict(self) -> dict:
        return {"lines": self.lines, "log_lines": self.log_lines, "other_lines": self.other_lines,
                "bad_log_lines": len(self.errors), "uptime_only": self.uptime_only, "engine": self.engine,
                "bad_lines": [dataclasses.asdict(e) for e in self.errors[:100]]}


# ---------------------------------------------------------------- engines

_CORE = None


def core():
    """The configured C tokenizer, or None when it is not built."""
    global _CORE
    if _CORE is None:
        try:
            from . import _iplogcore
        except ImportError:
            return None
        _configure_core(_iplogcore)
        _CORE = _iplogcore
    return _CORE


def _configure_core(mod) -> None:
    from .grammar import TRAILER_FROM

    types = [int(t) for t in ALL_COLUMNS.values()]
    contexts = []
    for name in CONTEXT_NAMES:
        keys = CONTEXTS[name]
        table = [(k.token, int(k.token.endswith(("=", ":")) or k.token == "["),
                  COLUMN_INDEX.get(k.column, -1), COLUMN_INDEX.get(INNER_PREFIX + k.column, -1),
                  int(k.conv), k.arg) for k in keys]
        tokens = [k.token for k in keys]
        required = [tokens.index(t) for t in REQUIRED.get(name, ())]
        ext_rank = max((i for i, k in enumerate(keys) if k.conv == Conv.EXT), default=-1)
        contexts.append((table, required, ext_rank))
    ctx = tuple(CONTEXT_NAMES.index(c) for c in ("hdr", "ip4", "ip6", "arp", "trailer", "other"))
    line = tuple(COLUMN_INDEX[c] for c in ("lineno", "ts", "uptime", "host", "envelope", "level", "prefix",
                                           "family", "ts_local", "saddr", "daddr", "dst"))
    roles = [(COLUMN_INDEX[r], COLUMN_INDEX.get(INNER_PREFIX + r, -1))
             for r in ("truncated", "incomplete", "frag", "ip6_frag", "ip6_frag_id", "ip6_mf", "ip6_ext",
                       "proto", "src")]
    protos = [(p, CONTEXT_NAMES.index(c)) for p, c in PROTO_CONTEXT.items()]
    trailer_from = [CONTEXT_NAMES.index(c) for c in sorted(TRAILER_FROM)]
    mod.configure(types, contexts, (ctx, line, roles, protos, trailer_from))


def _arrays_from_core(nrows: int, results: list) -> dict:
    """Wrap the tokenizer's column memory as pandas arrays as it is (no copy, no new pages)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    out = {}
    for name, res in zip(ALL_COLUMNS, results):
        if res is None:
            continue
        kind = ALL_COLUMNS[name]
        if kind == Col.STR:   # one Arrow chunk per part the buffer was cut into
            chunks = [pa.LargeStringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data),
                                                       pa.py_buffer(bitmap))
                      for rows, offsets, data, bitmap in res]
            out[name] = pd.arrays.ArrowStringArray(pa.chunked_array(chunks, pa.large_string()))
        elif kind == Col.CAT:
            out[name] = _categories_from_parts(*res)
        elif kind == Col.F64:   # NaN where missing
            out[name] = np.frombuffer(res[0], dtype=np.float64)
        else:
            mask = np.frombuffer(res[1], dtype=np.bool_)
            if kind == Col.BOOL:
                out[name] = pd.arrays.BooleanArray(np.frombuffer(res[0], dtype=np.bool_), mask)
            else:
                out[name] = pd.arrays.IntegerArray(np.frombuffer(res[0], dtype=_NUMPY_INT[kind]), mask)
    return out


_NUMPY_INT = {Col.U8: "uint8", Col.U16: "uint16", Col.U32: "uint32", Col.U64: "uint64"}


def _categories_from_parts(codes_buffer, parts: list):
    """Each part coded its values in the order it met them: recode every part's rows (in place)
    to the sorted union of the parts' values."""
    import numpy as np

    codes = np.frombuffer(codes_buffer, dtype=np.int32)
    values = []
    for _rows, count, offsets, data in parts:
        ends = np.frombuffer(offsets, dtype=np.int64) if count else np.zeros(1, np.int64)
        text = bytes(memoryview(data))
        values.append([text[ends[i]:ends[i + 1]].decode("utf-8") for i in range(count)])
    categories = sorted(set().union(*values))
    rank = {v: i for i, v in enumerate(categories)}
    start = 0
    for (rows, _count, _o, _d), part_values in zip(parts, values):
        recode = np.array([rank[v] for v in part_values] + [-1], dtype=np.int32)   # code -1 stays -1
        if rows and not np.array_equal(recode[:-1], np.arange(len(part_values))):
            np.take(recode, codes[start:start + rows], out=codes[start:start + rows])
        start += rows
    return _categorical(codes, categories)


def _categorical(codes, categories: list):
    """pandas Categorical from codes (-1 = missing) and its sorted categories, trusted as given."""
    import pandas as pd

    dtype = pd.CategoricalDtype(pd.Index(categories, dtype="str"))
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _arrays_from_rows(rows: list[dict]) -> dict:
    import numpy as np
    import pandas as pd

    present = set()
    for row in rows:
        present.update(row)
    out = {}
    for name, kind in ALL_COLUMNS.items():
        if name not in present:
            continue
        values = [row.get(name) for row in rows]
        if kind == Col.CAT:
            categories = sorted({v for v in values if v is not None})
            rank = {v: i for i, v in enumerate(categories)}
            out[name] = _categorical(np.array([-1 if v is None else rank[v] for v in values], np.int32), categories)
        elif kind == Col.F64:
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            out[name] = pd.array(values, dtype=PANDAS_DTYPE[kind])
    return out


def _null_array(kind: Col, n: int):
    import numpy as np
    import pandas as pd

    if kind == Col.STR:
        return _repeated(None, n)
    if kind == Col.CAT:
        return _categorical(np.full(n, -1, np.int8), [])
    if kind == Col.F64:
        return np.full(n, np.nan)
    if kind == Col.BOOL:
        return pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool))
    return pd.arrays.IntegerArray(np.zeros(n, _NUMPY_INT[kind]), np.ones(n, bool))


REPEAT_CHUNK = 1 << 16


def _repeated(text: str | None, n: int):
    """A string array holding one value (or null) n times: one Arrow chunk of up to REPEAT_CHUNK
    rows, shared by every chunk, instead of n copies of the text in fresh memory."""
    import pandas as pd
    import pyarrow as pa

    block = pa.array([text] * min(n, REPEAT_CHUNK), pa.large_string())
    chunks = [block] * (n // REPEAT_CHUNK) + ([block.slice(0, n % REPEAT_CHUNK)] if n % REPEAT_CHUNK else [])
    return pd.arrays.ArrowStringArray(pa.chunked_array(chunks or [block], pa.large_string()))


def _find_newline(data, pos: int) -> int:
    """data.find(b"\n", pos) that also works on a memoryview (of a mapped file)."""
    if not isinstance(data, memoryview):
        return data.find(b"\n", pos)
    while pos < len(data):
        hit = bytes(data[pos:pos + 65536]).find(b"\n")
        if hit >= 0:
            return pos + hit
        pos += 65536
    return -1


def parse_buffer(data: bytes, first_lineno: int, ref_year: int, ref_month: int, engine: str = "auto",
                 parts: int | None = None):
    """Parse a buffer of whole lines -> (column arrays, nrows, [(lineno, offset, reason)], lines, other).

    The C tokenizer cuts a large buffer at line boundaries into `parts` (default: one per core and
    MiB) parsed at once, each straight into its row range of one set of column buffers.
    """
    mod = core() if engine in ("auto", "c") else None
    if engine == "c" and mod is None:
        from ..errors import EnvironmentProblem
        raise EnvironmentProblem("the C iptables-log tokenizer is not built", "run `make setup`")
    if mod is None:
        return _parse_buffer_python(_clean_utf8(data), first_lineno, ref_year, ref_month)
    parts = parts or max(1, min(os.cpu_count() or 1, len(data) >> 20))
    nrows, cols, errors, lines, other, non_ascii = mod.parse(data, first_lineno, ref_year, ref_month, parts)
    if non_ascii and not _is_utf8(data):   # rare: parse again with invalid bytes made U+FFFD
        nrows, cols, errors, lines, other, _ = mod.parse(_clean_utf8(data), first_lineno, ref_year, ref_month, parts)
    return _arrays_from_core(nrows, cols), nrows, errors, lines, other


def _parse_buffer_python(data: bytes, first_lineno: int, ref_year: int, ref_month: int):
    from .grammar import LineError, parse_line

    rows, errors, other = [], [], 0
    parts = str(data, "utf-8").split("\n")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    offset = 0
    for i, line in enumerate(parts):
        lineno = first_lineno + i
        try:
            row = parse_line(line[:-1] if line.endswith("\r") else line, ref_year, ref_month)
        except LineError as err:
            errors.append((lineno, offset, str(err)))
            row = False
        if row is None:
            other += 1
        elif row is not False:
            row["lineno"] = lineno
            rows.append(row)
        offset += len(line.encode()) + 1
    return _arrays_from_rows(rows), len(rows), errors, len(parts), other


# ---------------------------------------------------------------- inputs

def _is_utf8(data) -> bool:
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _clean_utf8(data):
    """The columns are Arrow strings: make invalid UTF-8 visible (U+FFFD) instead of failing."""
    if isinstance(data, memoryview):
        import numpy as np

        if not len(data) or np.frombuffer(data, np.uint8).max() < 0x80:
            return data
        data = bytes(data)
    return data if data.isascii() else data.decode("utf-8", "replace").encode("utf-8")


def _journal_json_to_lines(data: bytes) -> bytes:
    """journalctl -o json lines -> rfc3339 lines, one for one (line numbers stay the same)."""
    out = []
    for raw in data.split(b"\n"):
        try:
            rec = json.loads(raw) if raw.strip() else None
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or "MESSAGE" not in rec:
            out.append(b"")
            continue
        msg = rec["MESSAGE"]
        if isinstance(msg, list):   # journald stores non-UTF-8 messages as byte arrays
            msg = bytes(v & 0xFF for v in msg if isinstance(v, int)).decode("utf-8", "replace")
        msg = str(msg).replace("\n", " ")
        host = str(rec.get("_HOSTNAME") or "-").replace(" ", "_") or "-"
        stamp = "-"
        usec = rec.get("__REALTIME_TIMESTAMP")
        if usec is not None and str(usec).isdigit():
            secs, micros = divmod(int(usec), 1_000_000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{micros:06d}Z"
        pri = rec.get("PRIORITY")
        pri = f"<{int(pri)}>" if str(pri).isdigit() else "<6>"
        out.append(f"{pri}1 {stamp} {host} kernel - - - {msg}".encode("utf-8", "replace"))
    return b"\n".join(out)


def _ref_date(mtime: float | None, year: int | None) -> tuple[int, int]:
    """Year inference for `Mon DD` stamps: the file's year, minus one for months after its mtime."""
    t = time.localtime(mtime if mtime is not None else time.time())
    return (year if year is not None else t.tm_year), (12 if year is not None else t.tm_mon)


def _open(path: str) -> tuple[IO[bytes], float | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        mtime = os.stat(path).st_mtime
        fh = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}", "check the path and permissions") from None
    return fh, mtime


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    """Whole-line chunks of about CHUNK_BYTES."""
    mapped = _mapped(fh)
    if mapped is not None:
        yield from _mapped_chunks(mapped)
        return
    rest = b""
    while True:
        block = fh.read(CHUNK_BYTES)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n")
        if cut < 0:
            rest = block
            continue
        yield block[: cut + 1]
        rest = block[cut + 1:]


def _mapped(fh):
    """A plain file mapped read-only: parsed in place from the page cache, not copied into fresh
    memory first (on this machine fresh memory is what costs most)."""
    import mmap

    try:
        if not isinstance(fh, io.BufferedReader) or not os.path.isfile(fh.name):
            return None
        if os.fstat(fh.fileno()).st_size == 0:
            return None
        return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def _mapped_chunks(view: memoryview) -> Iterator[memoryview]:
    start = 0
    while start < len(view):
        end = min(len(view), start + CHUNK_BYTES)
        if end < len(view):
            cut = bytes(view[max(start, end - (1 << 20)):end]).rfind(b"\n")
            cut = (max(start, end - (1 << 20)) + cut) if cut >= 0 else _find_newline(view, end)
            end = len(view) if cut < 0 else cut + 1
        yield view[start:end]
        start = end


def is_journal_json(first: bytes) -> bool:
    return first.lstrip()[:1] == b"{"


# ---------------------------------------------------------------- frame

def _local_is_utc() -> bool:
    return time.timezone == 0 and not time.daylight


def _local_to_utc(ts, local_mask) -> None:
    """Local wall-clock seconds (computed as if UTC) -> true UTC, in place, per distinct hour."""
    import numpy as np

    idx = np.flatnonzero(local_mask & ~np.isnan(ts))
    if not len(idx):
        return
    hours = np.floor(ts[idx] / 3600).astype(np.int64)
    offsets = {}
    for h in np.unique(hours):
        naive = time.gmtime(int(h) * 3600)
        offsets[h] = time.mktime(naive[:8] + (-1,)) - int(h) * 3600
    ts[idx] += np.array([offsets[h] for h in hours])


def boot_time() -> float:
    """Wall-clock time of boot as printk stamps count it (CLOCK_MONOTONIC, close to local_clock)."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


def _finish(arrays: dict, nrows: int, file_col, boot: float | None, report: ParseReport, all_columns: bool):
    import numpy as np
    import pandas as pd

    from ..events import DTYPES, conform

    def col(name):
        return arrays[name] if name in arrays else _null_array(ALL_COLUMNS[name], nrows)

    ts = col("ts")   # a float64 array of our own (NaN where missing): adjusted in place
    if "ts_local" in arrays and not _local_is_utc():
        local = arrays["ts_local"]
        _local_to_utc(ts, np.asarray(local._data & ~local._mask, dtype=bool))
    uptime = col("uptime")
    need = np.isnan(ts) & ~np.isnan(uptime) if "uptime" in arrays else np.zeros(nrows, bool)
    if boot is not None:
        np.copyto(ts, uptime + boot, where=need)
    else:
        report.uptime_only += int(need.sum())
    bits = col("tcp_flag_bits")
    rst = (bits.to_numpy(dtype="uint16", na_value=0) & RST_BIT) != 0
    kind = _labels(["packet", "reset-sent"], rst.astype(np.int8))
    in_dev, out_dev = col("in"), col("out")
    seen = _nonempty(in_dev) * 2 + _nonempty(out_dev)   # 1 OUTPUT, 2 INPUT, 3 FORWARD
    chain = _categorical(np.array([-1, 2, 1, 0], np.int8)[seen], ["FORWARD", "INPUT", "OUTPUT"])
    spt, dpt = col("spt"), col("dpt")
    columns = {
        "ts": ts,
        "source": _repeated(SOURCE, nrows),
        "kind": kind,
        "family": col("family"),
        "saddr": col("saddr"), "sport": spt, "daddr": col("daddr"), "dport": dpt,
    }
    extra = {"prefix": col("prefix"), "chain": chain, "host": col("host"),
             "tcp_flags": _flags_text(bits), "file": file_col, "lineno": col("lineno"),
             "envelope": col("envelope"), "uptime": uptime, "level": col("level")}
    skip = {"ts", "ts_local", "uptime", "lineno", "host", "envelope", "level", "prefix", "family", "saddr", "daddr"}
    for name in ALL_COLUMNS:
        if name in skip or name in extra:
            continue
        if all_columns or name in arrays:
            extra[name] = col(name)
    for name, dtype in DTYPES.items():   # schema columns this source never fills: typed nulls, fast
        if name not in columns:
            columns[name] = _null_array(_COL_OF_DTYPE[dtype], nrows)
    columns.update(extra)
    # One constructor call over the finished arrays: no per-column insert copies.
    frame = pd.DataFrame(columns, copy=False)
    dtypes = {name: (PANDAS_DTYPE[ALL_COLUMNS[name]] if name in ALL_COLUMNS else DERIVED_DTYPES[name])
              for name in extra if name not in DTYPES}
    return conform(frame, dtypes)


# Columns _finish derives (not filled by the parser); the rest have fields.PANDAS_DTYPE.
DERIVED_DTYPES = {"chain": "category", "tcp_flags": "category", "file": "string"}


_COL_OF_DTYPE = {v: k for k, v in PANDAS_DTYPE.items()}
_COL_OF_DTYPE["Int64"] = Col.U64
_COL_OF_DTYPE["UInt64"] = Col.U64


def _labels(labels: list, codes):
    """A string array from small integer codes (no Python object per row)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    table = pa.array(labels, pa.large_string())
    return pd.arrays.ArrowStringArray(table.take(pa.array(np.asarray(codes, dtype=np.int32))))


def _nonempty(cat):
    """Per row: the categorical holds a value other than ''."""
    import numpy as np

    keep = np.array([v != "" for v in cat.categories] + [False])
    return keep[cat.codes].astype(np.int8)


def _flags_text(bits):
    """tcp_flags ('ACK RST') as a Categorical of the flag combinations that occur."""
    import numpy as np

    values = bits.to_numpy(dtype="int32", na_value=-1)
    present = values >= 0
    used = np.flatnonzero(np.bincount(values[present] & 0x1FF, minlength=512))
    names = {int(b): tcp_flags_text(int(b)) for b in used}
    categories = sorted(set(names.values()))
    lut = np.full(513, -1, np.int16)   # index 512: missing
    for b, name in names.items():
        lut[b] = categories.index(name)
    return _categorical(lut[np.where(present, values & 0x1FF, 512)], categories)


def _concat(frames: list):
    """Frames of several chunks or files; categorical columns get the union of their categories."""
    import numpy as np
    import pandas as pd

    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    names = {n for f in frames for n, dtype in f.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)}
    for name in names:   # one dtype for every frame, else pandas falls back to object
        categories = sorted(set().union(*(f[name].cat.categories for f in frames if name in f.columns)))
        frames = [f.assign(**{name: (f[name].cat.set_categories(categories) if name in f.columns else
                                     _categorical(np.full(len(f), -1, np.int8), categories))})
                  for f in frames]
    return pd.concat(frames, ignore_index=True)


def parse_iptables_log(paths: str | os.PathLike | Iterable[str | os.PathLike], *, engine: str = "auto",
                       year: int | None = None, boot: float | None = None, all_columns: bool = False,
                       kmsg_boot: bool = True):
    """Parse LOG lines from files ('-' for stdin, .gz too) -> (DataFrame, ParseReport).

    `boot`: wall-clock boot time used to turn since-boot stamps into ts (given automatically for
    /dev/kmsg and for `dmesg` captures only when the caller says so). `year`: the year of classic
    syslog stamps (default: inferred from each file's modification time).
    """
    if engine not in ("auto", "c", "python"):
        raise UsageProblem(f"unknown engine {engine!r}", "use auto, c or python")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    report = ParseReport(engine="c" if engine != "python" and core() is not None else "python")
    frames = []
    for path in map(str, paths):
        if path == "/dev/kmsg":
            from .kmsg import read_kmsg_lines
            blocks, mtime, path_boot = [read_kmsg_lines()], None, boot_time() if kmsg_boot else boot
        else:
            fh, mtime = _open(path)
            blocks, path_boot = _chunks(fh), boot
        frames.extend(_parse_blocks(blocks, path, mtime, year, engine, path_boot, report, all_columns))
    frame = _concat(frames) if frames else _finish({}, 0, _repeated("", 0), boot, report, all_columns)
    frame.attrs["iplog"] = report.as_dict()
    return frame, report


def _parse_blocks(blocks: Iterable[bytes], path: str, mtime, year, engine, boot, report: ParseReport,
                  all_columns: bool, lineno: int = 1) -> Iterator:
    ref_year, ref_month = _ref_date(mtime, year)
    json_mode = None
    for block in blocks:
        if json_mode is None:
            json_mode = is_journal_json(bytes(block[:4096]))
        if json_mode and isinstance(block, memoryview):
            block = bytes(block)
        original = block
        if json_mode:
            block = _journal_json_to_lines(block)
        arrays, nrows, errors, lines, other = parse_buffer(block, lineno, ref_year, ref_month, engine)
        report.lines += lines
        report.log_lines += nrows
        report.other_lines += other
        src_lines = bytes(original).split(b"\n") if errors else []
        for err_lineno, _offset, reason in errors:
            text = src_lines[err_lineno - lineno].decode("utf-8", "replace")[:300]
            report.errors.append(LineProblem(path, err_lineno, reason, text))
        if json_mode and "envelope" in arrays:
            import numpy as np
            arrays["envelope"] = _categorical(np.zeros(nrows, np.int8), ["journal-json"])
        yield _finish(arrays, nrows, _repeated(path, nrows), boot, report, all_columns)
        lineno += lines


def read_iptables_log(path, **options):
    """DataFrame of LOG lines in the event schema; the parse report is in frame.attrs['iplog']."""
    frame, _report = parse_iptables_log(path, **options)
    return frame


def follow(paths: list[str], *, engine: str = "auto", poll: float = 0.5, boot: float | None = None,
           stop=None) -> Iterator[tuple[object, ParseReport]]:
    """Yield (frame, report) for lines appended to the files (tail -F: survives logrotate)."""
    state = {p: {"fh": None, "ino": None, "pos": 0, "rest": b"", "lineno": 1} for p in paths}
    report = ParseReport(engine="c" if core() is not None and engine != "python" else "python")
    while stop is None or not stop():
        got = False
        for path, st in state.items():
            data = _read_new(path, st)
            if not data:
                continue
            data = st["rest"] + data
            cut = data.rfind(b"\n")
            st["rest"] = data[cut + 1:]
            if cut < 0:
                continue
            got = True
            block = data[: cut + 1]
            for frame in _parse_blocks([block], path, None, None, engine, boot, report, True, st["lineno"]):
                yield frame, report
            st["lineno"] += block.count(b"\n")
        if not got:
            time.sleep(poll)


def _read_new(path: str, st: dict) -> bytes:
    try:
        info = os.stat(path)
    except OSError:
        return b""
    if st["fh"] is None or info.st_ino != st["ino"] or info.st_size < st["pos"]:
        if st["fh"] is not None:
            rest = st["fh"].read()   # the rotated file's last lines
            st["fh"].close()
        else:
            rest = b""
        st["fh"] = open(path, "rb")
        st["ino"] = info.st_ino
        if not st.get("started"):
            st["fh"].seek(0, os.SEEK_END)   # like tail -F: start at the end on the first open
            st["started"] = True
        st["pos"] = st["fh"].tell()
        if rest:
            return rest
    data = st["fh"].read()
    st["pos"] = st["fh"].tell()
    return data
