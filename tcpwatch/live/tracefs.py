"""Tracepoint formats read from the running kernel's tracefs.

The BPF program's view of each tracepoint's arguments is generated from these files, so one
tcpwatch runs on kernels whose tracepoints differ (tcp_send_reset changed completely in 6.10).
Symbolic names (reset reasons, TCP states) come from the `__print_symbolic` lists in the same
file; where a list names enum constants rather than numbers, BTF gives their values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import EnvironmentProblem

TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def roots() -> tuple[str, ...]:
    """Where to look for tracefs; TCPWATCH_TRACEFS names another (tests, unusual mounts)."""
    override = os.environ.get("TCPWATCH_TRACEFS")
    return (override,) if override else TRACEFS_ROOTS

_FIELD = re.compile(
    r"field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>\d+);")
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->(?P<field>\w+)\s*,(?P<body>(?:\s*\{[^{}]*\}\s*,?)+)\)")
_PAIR = re.compile(r"\{\s*(?P<key>[^,{}]+?)\s*,\s*\"(?P<name>[^\"]*)\"\s*\}")


@dataclass(frozen=True)
class Field:
    name: str
    ctype: str          # declared type, e.g. "__u8", "const void *", "enum sk_rst_reason"
    offset: int
    size: int
    signed: bool
    array_len: int | None = None  # for "__u8 saddr[28]"

    @property
    def elem_size(self) -> int:
        return self.size // self.array_len if self.array_len else self.size


@dataclass
class Format:
    category: str
    name: str
    id: int
    fields: dict[str, Field]
    # field name -> [(key text as written, printed name)], keys resolved later (numbers or enum names)
    symbolic: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return max(f.offset + f.size for f in self.fields.values())

    def has(self, *names: str) -> bool:
        return all(n in self.fields for n in names)

    def names_for(self, field_name: str, enum_values: dict[str, int] | None = None) -> dict[int, str]:
        """Value -> printed name for a symbolic field; enum constants resolved through enum_values."""
        out: dict[int, str] = {}
        for key, name in self.symbolic.get(field_name, []):
            value = _int_or_none(key)
            if value is None and enum_values is not None:
                value = enum_values.get(key)
            if value is not None:
                out.setdefault(value, name)
        return out


def _int_or_none(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def parse_format(text: str, category: str = "", name: str = "") -> Format:
    header = dict(re.findall(r"^(name|ID):\s*(\S+)", text, re.M))
    fields: dict[str, Field] = {}
    for m in _FIELD.finditer(text):
        decl = m["decl"].strip()
        arr = re.match(r"(?P<type>.*?)\s*(?P<name>\w+)\s*\[(?P<len>\d*)\]$", decl)
        if arr:
            ctype, fname = arr["type"], arr["name"]
            array_len = int(arr["len"]) if arr["len"] else None
        else:
            dm = re.match(r"(?P<type>.*?)\s*(?P<name>\w+)$", decl)
            ctype, fname, array_len = dm["type"], dm["name"], None
        if fname.startswith("common_"):
            continue  # the common header cannot be read by BPF tracepoint programs
        fields[fname] = Field(fname, ctype.strip(), int(m["offset"]), int(m["size"]), m["signed"] == "1", array_len)
    symbolic: dict[str, list[tuple[str, str]]] = {}
    fmt_line = text.split("print fmt:", 1)[1] if "print fmt:" in text else ""
    for sm in _SYMBOLIC.finditer(fmt_line):
        symbolic.setdefault(sm["field"], [(p["key"], p["name"]) for p in _PAIR.finditer(sm["body"])])
    return Format(category or "", header.get("name", name), int(header.get("ID", "0")), fields, symbolic)


def tracefs_root() -> str:
    for root in roots():
        if os.path.isdir(os.path.join(root, "events")):
            return root
    raise EnvironmentProblem("tracefs is not mounted", "mount -t tracefs nodev /sys/kernel/tracing")


def read_format(category: str, name: str, root: str | None = None) -> Format | None:
    """The format of category:name on this kernel, or None when the kernel lacks it."""
    path = os.path.join(root or tracefs_root(), "events", category, name, "format")
    try:
        with open(path) as f:
            return parse_format(f.read(), category, name)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise EnvironmentProblem(f"cannot read {path}", "run as root (sudo)") from None
