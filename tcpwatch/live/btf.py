"""A minimal reader of the kernel's BTF (/sys/kernel/btf/vmlinux).

tcpwatch never trusts struct layouts from header files (bcc compiles against whatever headers
exist, which may belong to another kernel). Every kernel struct offset the BPF code uses comes
from here, and enum values (e.g. TCP_ESTABLISHED) resolve names in tracepoint format files.
Types are indexed in one pass; members are decoded only for the structs asked about.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from ..errors import EnvironmentProblem

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F

# kind -> bytes that follow the 12-byte common header: fixed part, and per-vlen part.
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
TRAILER = {
    INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
    FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0), ENUM64: (0, 12),
}
MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bit_size: int  # 0 unless a bitfield


class BTF:
    def __init__(self, data: bytes):
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", data, 0)
        if magic != MAGIC:
            raise EnvironmentProblem("kernel BTF has an unexpected format", "use a kernel built with CONFIG_DEBUG_INFO_BTF")
        self._data = data
        self._types_at = hdr_len + type_off
        self._strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        # Type ids start at 1; entry i-1 is (kind, kind_flag, vlen, name_off, size_or_type, data_pos).
        self._types: list[tuple[int, int, int, int, int, int]] = []
        self._by_name: dict[tuple[int, str], int] = {}
        self._index(type_len)

    def _index(self, type_len: int) -> None:
        data, pos, end = self._data, self._types_at, self._types_at + type_len
        unpack = struct.Struct("<III").unpack_from
        types = self._types
        named_kinds = (STRUCT, UNION, ENUM, ENUM64, TYPEDEF)
        while pos < end:
            name_off, info, size_or_type = unpack(data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            types.append((kind, info >> 31, vlen, name_off, size_or_type, pos + 12))
            fixed, per = TRAILER.get(kind, (0, 0))
            pos += 12 + fixed + per * vlen
            if kind in named_kinds and name_off:
                self._by_name.setdefault((kind, self._str(name_off)), len(types))

    def _str(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode()

    def find(self, kind: int, name: str) -> int:
        try:
            return self._by_name[(kind, name)]
        except KeyError:
            raise KeyError(f"BTF has no {name!r}") from None

    def members(self, type_id: int) -> list[Member]:
        kind, kflag, vlen, _name, _size, pos = self._types[type_id - 1]
        if kind not in (STRUCT, UNION):
            raise KeyError(f"BTF type {type_id} is not a struct or union")
        out = []
        for i in range(vlen):
            name_off, mtype, offset = struct.unpack_from("<III", self._data, pos + 12 * i)
            bit_offset, bit_size = (offset & 0xFFFFFF, offset >> 24) if kflag else (offset, 0)
            out.append(Member(self._str(name_off) if name_off else "", mtype, bit_offset, bit_size))
        return out

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers."""
        while type_id and self._types[type_id - 1][0] in MODIFIERS:
            type_id = self._types[type_id - 1][4]
        return type_id

    def size_of(self, type_id: int) -> int:
        type_id = self.resolve(type_id)
        kind, _kf, _vlen, _name, size, pos = self._types[type_id - 1]
        if kind == PTR:
            return 8
        if kind == ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", self._data, pos)
            return self.size_of(elem) * nelems
        return size

    def _member_path(self, type_id: int, name: str) -> tuple[int, int] | None:
        """(bit offset, member type) of `name` in a struct, looking through anonymous members."""
        for member in self.members(self.resolve(type_id)):
            if member.name == name:
                return member.bit_offset, member.type_id
            if not member.name:
                inner = self.resolve(member.type_id)
                if self._types[inner - 1][0] in (STRUCT, UNION):
                    found = self._member_path(inner, name)
                    if found:
                        return member.bit_offset + found[0], found[1]
        return None

    def offsetof(self, struct_name: str, path: str) -> int:
        """Byte offset of a dotted member path, e.g. offsetof('sock', '__sk_common.skc_net')."""
        type_id = self.find(STRUCT, struct_name)
        bits = 0
        for part in path.split("."):
            found = self._member_path(type_id, part)
            if found is None:
                raise KeyError(f"struct {struct_name} has no member {path!r}")
            bits += found[0]
            type_id = found[1]
        if bits % 8:
            raise KeyError(f"{struct_name}.{path} is a bitfield")
        return bits // 8

    def member_size(self, struct_name: str, path: str) -> int:
        type_id = self.find(STRUCT, struct_name)
        for part in path.split("."):
            found = self._member_path(type_id, part)
            if found is None:
                raise KeyError(f"struct {struct_name} has no member {path!r}")
            type_id = found[1]
        return self.size_of(type_id)

    def type_text(self, type_id: int) -> str:
        """A short, qualifier-free spelling of a type: 'struct sock *', 'int', 'enum sk_rst_reason'."""
        type_id = self.resolve(type_id)
        if not type_id:
            return "void"
        kind, _kf, _vlen, name_off, target, _pos = self._types[type_id - 1]
        if kind == PTR:
            return self.type_text(target) + " *"
        if kind == INT:
            return "int"
        prefix = {STRUCT: "struct ", UNION: "union ", ENUM: "enum ", ENUM64: "enum ", FWD: "struct "}.get(kind, "")
        return prefix + (self._str(name_off) if name_off else "?")

    def tracepoint_btf_id(self, name: str) -> int | None:
        """The id of the kernel's btf_trace_<name> typedef (what a BTF tracepoint program attaches
        by), or None when absent."""
        try:
            return self.find(TYPEDEF, f"btf_trace_{name}")
        except KeyError:
            return None

    def tracepoint_args(self, name: str) -> tuple[str, ...] | None:
        """The argument types of tracepoint `name` as its raw form receives them (TP_PROTO, from
        the kernel's btf_trace_<name> typedef, without the leading void *); None when absent."""
        typedef = self.tracepoint_btf_id(name)
        if typedef is None:
            return None
        type_id = self.resolve(typedef)
        kind, _kf, _vlen, _name, proto, _pos = self._types[type_id - 1]
        proto = self.resolve(proto) if kind == PTR else 0
        if not proto or self._types[proto - 1][0] != FUNC_PROTO:
            return None
        _kind, _kf, vlen, _name, _ret, pos = self._types[proto - 1]
        params = [struct.unpack_from("<II", self._data, pos + 8 * i)[1] for i in range(vlen)]
        return tuple(self.type_text(t) for t in params[1:])

    def enum_values(self, enum_name: str | None = None) -> dict[str, int]:
        """Name -> value for one enum, or for every enum when enum_name is None."""
        ids = [self.find(ENUM, enum_name)] if enum_name else [
            i + 1 for i, t in enumerate(self._types) if t[0] in (ENUM, ENUM64)]
        out: dict[str, int] = {}
        for type_id in ids:
            kind, kflag, vlen, _name, _size, pos = self._types[type_id - 1]
            for i in range(vlen):
                if kind == ENUM:
                    name_off, value = struct.unpack_from("<Ii" if kflag else "<II", self._data, pos + 8 * i)
                else:
                    name_off, lo, hi = struct.unpack_from("<III", self._data, pos + 12 * i)
                    value = (hi << 32) | lo
                out.setdefault(self._str(name_off), value)
        return out


@functools.lru_cache(maxsize=1)
def kernel_btf(path: str = VMLINUX) -> BTF:
    try:
        with open(path, "rb") as f:
            return BTF(f.read())
    except FileNotFoundError:
        raise EnvironmentProblem(f"no kernel BTF at {path}", "use a kernel built with CONFIG_DEBUG_INFO_BTF=y") from None
