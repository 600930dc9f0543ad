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
                                           "family", "ts_local"))
    roles = [(COLUMN_INDEX[r], COLUMN_INDEX.get(INNER_PREFIX + r, -1))
             for r in ("truncated", "incomplete", "frag", "ip6_frag", "ip6_frag_id", "ip6_mf", "ip6_ext",
                       "proto", "src")]
    protos = [(p, CONTEXT_NAMES.index(c)) for p, c in PROTO_CONTEXT.items()]
    trailer_from = [CONTEXT_NAMES.index(c) for c in sorted(TRAILER_FROM)]
    mod.configure(types, contexts, (ctx, line, roles, protos, trailer_from))


def _arrays_from_core(nrows: int, results: list) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    out = {}
    for name, res in zip(ALL_COLUMNS, results):
        if res is None:
            continue
        kind = ALL_COLUMNS[name]
        valid = np.frombuffer(res[-1], dtype=np.bool_)
        if kind == Col.STR:
            offsets, data, _ = res
            bitmap = np.packbits(valid, bitorder="little")
            arr = pa.LargeStringArray.from_buffers(nrows, pa.py_buffer(offsets), pa.py_buffer(data),
                                              pa.py_buffer(bitmap.tobytes()))
            out[name] = pd.arrays.ArrowStringArray(arr)
        elif kind == Col.F64:
            vals = np.frombuffer(res[0], dtype=np.float64)
            out[name] = np.where(valid, vals, np.nan)
        elif kind == Col.BOOL:
            vals = np.frombuffer(res[0], dtype=np.uint8).astype(bool)
            out[name] = pd.arrays.BooleanArray(vals, ~valid)
        else:
            dtype = {Col.U8: np.uint8, Col.U16: np.uint16, Col.U32: np.uint32, Col.U64: np.uint64}[kind]
            out[name] = pd.arrays.IntegerArray(np.frombuffer(res[0], dtype=dtype), ~valid)
    return out


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
        if kind == Col.F64:
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            out[name] = pd.array(values, dtype=PANDAS_DTYPE[kind])
    return out


def _null_array(kind: Col, n: int):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if kind == Col.STR:
        return pd.arrays.ArrowStringArray(pa.nulls(n, pa.string()))
    if kind == Col.F64:
        return np.full(n, np.nan)
    if kind == Col.BOOL:
        return pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool))
    dtype = {Col.U8: "uint8", Col.U16: "uint16", Col.U32: "uint32", Col.U64: "uint64"}[kind]
    return pd.arrays.IntegerArray(np.zeros(n, dtype), np.ones(n, bool))


def _merge_parts(parts: list[tuple[dict, int]]) -> dict:
    """Join the column arrays of consecutive parts (columns a part lacks are null there)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if len(parts) == 1:
        return parts[0][0]
    names = [n for n in ALL_COLUMNS if any(n in arrays for arrays, _ in parts)]
    out = {}
    for name in names:
        kind = ALL_COLUMNS[name]
        pieces = [arrays.get(name) if name in arrays else _null_array(kind, rows) for arrays, rows in parts]
        if kind == Col.STR:
            chunks = [c for p in pieces for c in pa.chunked_array(pa.array(p)).chunks]
            chunks = [c if c.type == pa.large_string() else c.cast(pa.large_string()) for c in chunks]
            out[name] = pd.arrays.ArrowStringArray(pa.chunked_array(chunks, pa.large_string()))
        elif kind == Col.F64:
            out[name] = np.concatenate(pieces)
        elif kind == Col.BOOL:
            out[name] = pd.arrays.BooleanArray(np.concatenate([p._data for p in pieces]),
                                               np.concatenate([p._mask for p in pieces]))
        else:   # masked integers: join values and masks directly (no Series, no per-piece copies)
            out[name] = pd.arrays.IntegerArray(np.concatenate([p._data for p in pieces]),
                                               np.concatenate([p._mask for p in pieces]))
    return out


def _split_lines(data: bytes, parts: int) -> list[tuple[int, int]]:
    """Byte ranges of about equal size that start and end on line boundaries."""
    bounds, start = [], 0
    for k in range(1, parts):
        cut = _find_newline(data, len(data) * k // parts)
        if cut < 0 or cut + 1 <= start:
            continue
        bounds.append((start, cut + 1))
        start = cut + 1
    bounds.append((start, len(data)))
    return bounds


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


def parse_buffer(data: bytes, first_lineno: int, ref_year: int, ref_month: int, engine: str = "auto"):
    """Parse a buffer of whole lines -> (column arrays, nrows, [(lineno, offset, reason)], lines, other).

    The C tokenizer releases the GIL, so a large buffer is cut at line boundaries and parsed on
    every core at once; the parts' columns are then joined in order.
    """
    mod = core() if engine in ("auto", "c") else None
    if engine == "c" and mod is None:
        from ..errors import EnvironmentProblem
        raise EnvironmentProblem("the C iptables-log tokenizer is not built", "run `make setup`")
    if mod is None:
        return _parse_buffer_python(data, first_lineno, ref_year, ref_month)
    view = memoryview(data)
    ranges = _split_lines(data, max(1, min(os.cpu_count() or 1, len(data) >> 20)))

    def run(k):   # line numbers restart at 0 in each part; shifted below
        start, end = ranges[k]
        return mod.parse(view[start:end], 0, ref_year, ref_month)

    if len(ranges) == 1:
        results = [run(0)]
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(len(ranges)) as pool:
            results = list(pool.map(run, range(len(ranges))))
    parts, errors, lines, other = [], [], 0, 0
    for (start, _end), (nrows, cols, errs, n_lines, n_other) in zip(ranges, results):
        arrays = _arrays_from_core(nrows, cols)
        if "lineno" in arrays:
            arrays["lineno"] = arrays["lineno"] + (first_lineno + lines)
        parts.append((arrays, nrows))
        errors.extend((first_lineno + lines + ln, start + off, why) for ln, off, why in errs)
        lines += n_lines
        other += n_other
    return _merge_parts(parts), sum(n for _, n in parts), errors, lines, other


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

def _local_to_utc(ts, local_mask) -> None:
    """Local wall-clock seconds (computed as if UTC) -> true UTC, in place, per distinct hour."""
    import numpy as np

    if time.timezone == 0 and not time.daylight:
        return
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

    ts = np.array(col("ts"), dtype=np.float64)
    if "ts_local" in arrays:
        _local_to_utc(ts, np.asarray(arrays["ts_local"].fillna(False), dtype=bool))
    uptime = np.asarray(col("uptime"), dtype=np.float64)
    need = np.isnan(ts) & ~np.isnan(uptime)
    if boot is not None:
        ts = np.where(need, boot + uptime, ts)
    else:
        report.uptime_only += int(need.sum())
    bits = col("tcp_flag_bits")
    rst = (bits.to_numpy(dtype="uint16", na_value=0) & RST_BIT) != 0
    kind = _labels(["packet", "reset-sent"], rst.astype(np.int8))
    in_dev, out_dev = col("in"), col("out")
    has_in = np.asarray(in_dev.fillna("") != "", dtype=bool)
    has_out = np.asarray(out_dev.fillna("") != "", dtype=bool)
    chain = _labels([None, "OUTPUT", "INPUT", "FORWARD"], has_in.astype(np.int8) * 2 + has_out)
    spt, dpt = col("spt"), col("dpt")
    columns = {
        "ts": ts,
        "source": _labels([SOURCE], np.zeros(nrows, np.int8)),
        "kind": kind,
        "family": col("family"),
        "saddr": _compressed(col("src")), "sport": spt, "daddr": _compressed(col("dst")), "dport": dpt,
    }
    extra = {"prefix": col("prefix"), "chain": chain, "host": col("host"),
             "tcp_flags": _flags_text(bits), "file": file_col, "lineno": col("lineno"),
             "envelope": col("envelope"), "uptime": uptime, "level": col("level")}
    skip = {"ts", "ts_local", "uptime", "lineno", "host", "envelope", "level", "prefix", "family"}
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
    dtypes = {name: (PANDAS_DTYPE[ALL_COLUMNS[name]] if name in ALL_COLUMNS else "string")
              for name in extra if name not in DTYPES}
    dtypes["uptime"] = "float64"
    return conform(frame, dtypes)


_COL_OF_DTYPE = {v: k for k, v in PANDAS_DTYPE.items()}
_COL_OF_DTYPE["Int64"] = Col.U64
_COL_OF_DTYPE["UInt64"] = Col.U64


def _labels(labels: list, codes):
    """A string array from small integer codes (no Python object per row)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    table = pa.array(labels, pa.string())
    return pd.arrays.ArrowStringArray(table.take(pa.array(np.asarray(codes, dtype=np.int32))))


def _compressed(addresses):
    """saddr/daddr in the usual short form (the kernel prints IPv6 in full), per distinct value."""
    import ipaddress

    import pandas as pd

    codes, uniques = pd.factorize(addresses)
    if not any(":" in a for a in uniques):
        return addresses
    short = [ipaddress.ip_address(a).compressed if ":" in a else a for a in uniques]
    return _labels([None] + short, codes + 1)


def _flags_text(bits):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    table = pa.array([tcp_flags_text(b) for b in range(512)], pa.string())
    codes = pa.array(bits.to_numpy(dtype="int32", na_value=0) & 0x1FF, mask=np.asarray(bits.isna()))
    return pd.arrays.ArrowStringArray(table.take(codes))


def _concat(frames: list):
    import pandas as pd

    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0]
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
    frame = _concat(frames) if frames else _finish({}, 0, _file_column("", 0), boot, report, all_columns)
    frame.attrs["iplog"] = report.as_dict()
    return frame, report


def _file_column(path: str, n: int):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    return pd.array(pa.array([path], pa.string()).take(np.zeros(n, dtype=np.int64)), dtype="string")


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
        block = _clean_utf8(block)
        arrays, nrows, errors, lines, other = parse_buffer(block, lineno, ref_year, ref_month, engine)
        report.lines += lines
        report.log_lines += nrows
        report.other_lines += other
        src_lines = bytes(original).split(b"\n") if errors else []
        for err_lineno, _offset, reason in errors:
            text = src_lines[err_lineno - lineno].decode("utf-8", "replace")[:300]
            report.errors.append(LineProblem(path, err_lineno, reason, text))
        if json_mode and "envelope" in arrays:
            import pandas as pd
            arrays["envelope"] = pd.array(["journal-json"] * nrows, dtype="string")
        yield _finish(arrays, nrows, _file_column(path, nrows), boot, report, all_columns)
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
