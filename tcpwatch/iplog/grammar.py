"""Pure-Python reference parser for the LOG message (everything after the envelope).

Walks the tokens with the tables in fields.py. It is the specification the C tokenizer
(_iplogcore.c) is tested against, and the fallback when the extension is not built.
"""

from __future__ import annotations

import re
import socket

from .fields import (COLUMN_INDEX, CONTEXTS, INNER_PREFIX, MAX_VALUE, PROTO_CONTEXT, REQUIRED,
                     ALL_COLUMNS, Conv, Key)

MARKER = re.compile(r"IN=[^ ]* OUT=[^ ]*(?: |$)")
_DEC = re.compile(r"[0-9]+")
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_OPT = re.compile(r"\(((?:[0-9a-fA-F]{2})+)\)")
_INCOMPLETE_N = re.compile(r"\[([0-9]+)")
_EXT_TOKEN = re.compile(r"OPT|\(|\)|AH|ESP|Unknown|Ext|Hdr|INCOMPLETE|TRUNCATED|FRAG:[0-9]*"
                        r"|ID:[0-9a-fA-F]*|SPI=0x[0-9a-fA-F]+|\[[0-9]+|bytes\]|\)|[0-9a-fA-F]+")
TRAILER_FROM = frozenset({"tcp", "udp", "sctp", "icmp", "icmp6", "spi", "other", "arp"})


def endpoint(address: str) -> str:
    """The schema's saddr/daddr text: IPv4 as logged, IPv6 (logged in full) in RFC 5952 short form:
    lowercase hex without leading zeros, the first longest run of two or more zero groups as '::'
    (never dotted IPv4, whatever the Python version's ipaddress prints)."""
    if ":" not in address:
        return address
    words = [int.from_bytes(pair, "big") for pair in
             zip(*[iter(socket.inet_pton(socket.AF_INET6, address))] * 2)]
    best, best_len, i = -1, 1, 0
    while i < 8:
        j = i
        while j < 8 and words[j] == 0:
            j += 1
        if j - i > best_len:
            best, best_len = i, j - i
        i = max(j, i + 1)
    if best < 0:
        return ":".join(f"{w:x}" for w in words)
    head = ":".join(f"{w:x}" for w in words[:best])
    tail = ":".join(f"{w:x}" for w in words[best + best_len:])
    return f"{head}::{tail}"


class LineError(ValueError):
    """A LOG line that does not follow the grammar; the reason names the token."""


def split_prefix(message: str) -> tuple[str, str] | None:
    """(prefix, fields) when the message is a LOG line, else None."""
    m = MARKER.search(message)
    if m is None:
        return None
    return message[: m.start()], message[m.start():]


def _width_max(column: str) -> int:
    return MAX_VALUE[ALL_COLUMNS[column]]


def _uint(text: str, column: str, base: int = 10) -> int:
    if base == 16:
        m = _HEX.fullmatch(text)
        digits = m.group(1) if m else None
    else:
        digits = text if _DEC.fullmatch(text) else None
    if digits is None:
        raise LineError(f"{column}: not a number: {text!r}")
    if len(digits) > 20 or int(digits, base) > _width_max(column):
        raise LineError(f"{column}: out of range: {text!r}")
    return int(digits, base)


def _address(text: str, family: int, column: str) -> str:
    try:
        socket.inet_pton(socket.AF_INET if family == 4 else socket.AF_INET6, text)
    except (OSError, ValueError):
        raise LineError(f"{column}: not an IPv{family} address: {text!r}") from None
    return text


class _State:
    __slots__ = ("row", "toks", "i", "ctx", "rank", "inner", "saved", "seen", "terminal")

    def __init__(self, toks: list[str]):
        self.row: dict = {}
        self.toks = toks
        self.i = 0
        self.ctx = "hdr"
        self.rank = -1
        self.inner = False
        self.saved: tuple[str, int, set[str]] | None = None
        self.seen: set[str] = set()
        self.terminal = [False, False]   # ext header chain ended the line (outer, inner)

    def col(self, name: str) -> str:
        return INNER_PREFIX + name if self.inner else name

    def put(self, name: str, value) -> None:
        self.row[self.col(name)] = value

    def get(self, name: str):
        return self.row.get(self.col(name))

    def next_tok(self) -> str | None:
        return self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None

    def exempt(self) -> bool:
        return bool(self.get("incomplete") is not None or self.get("truncated") or self.get("frag")
                    or self.get("ip6_frag") or self.terminal[self.inner])

    def enter(self, ctx: str) -> None:
        self.check_required()
        self.ctx, self.rank, self.seen = ctx, -1, set()

    def check_required(self) -> None:
        need = REQUIRED.get(self.ctx, ())
        if self.ctx == "hdr" and self.inner:
            return
        if self.ctx != "hdr" and self.exempt():
            return
        missing = [k for k in need if k not in self.seen]
        if missing:
            where = "quoted packet " if self.inner else ""
            raise LineError(f"{where}{self.ctx}: missing {' '.join(missing)}")


def _matches(key: Key, tok: str) -> bool:
    t = key.token
    if t.endswith(("=", ":")) or t == "[":
        return tok.startswith(t)
    return tok == t


def _find(ctx: str, after: int, tok: str) -> tuple[int, Key] | None:
    keys = CONTEXTS[ctx]
    for rank in range(after + 1, len(keys)):
        if _matches(keys[rank], tok):
            return rank, keys[rank]
    return None


def parse_fields(text: str) -> dict:
    """Parse `IN=... OUT=... ...` into {column: value}; raise LineError on any deviation."""
    st = _State([t for t in text.split(" ") if t])
    while st.i < len(st.toks):
        tok = st.toks[st.i]
        found = _find(st.ctx, st.rank, tok)
        if found is None and tok == "]" and st.inner:
            st.check_required()
            st.inner = False
            st.ctx, st.rank, st.seen = st.saved
            st.i += 1
            continue
        if found is None and not st.inner and st.ctx in TRAILER_FROM and _find("trailer", -1, tok):
            st.enter("trailer")
            found = _find("trailer", -1, tok)
        if found is None:
            earlier = any(_matches(k, tok) for k in CONTEXTS[st.ctx])
            what = "out of order or repeated" if earlier else "unexpected"
            raise LineError(f"{what} {tok!r} in {'quoted ' if st.inner else ''}{st.ctx}")
        rank, key = found
        st.rank = rank
        st.seen.add(key.token)
        _apply(st, key, tok)
        st.i += 1
    if st.inner:
        raise LineError("quoted packet not closed with ']'")
    st.check_required()
    return st.row


def _value(key: Key, tok: str) -> str:
    return tok[len(key.token):]


def _apply(st: _State, key: Key, tok: str) -> None:
    conv = key.conv
    column = key.column
    if conv == Conv.STR:
        st.put(column, _value(key, tok))
    elif conv == Conv.UINT:
        st.put(column, _uint(_value(key, tok), column))
    elif conv == Conv.HEX:
        st.put(column, _uint(_value(key, tok), column, 16))
    elif conv == Conv.HEX4:
        v = _value(key, tok)
        if not _HEX4.fullmatch(v):
            raise LineError(f"{column}: not four hex digits: {v!r}")
        st.put(column, int(v, 16))
    elif conv == Conv.MAC:
        v = _value(key, tok)
        if not _MAC.fullmatch(v):
            raise LineError(f"{column}: not a MAC address: {v!r}")
        st.put(column, v)
    elif conv in (Conv.IPV4, Conv.IPV6):
        st.put(column, _address(_value(key, tok), 4 if conv == Conv.IPV4 else 6, column))
        if column == "dst" and not st.inner:
            st.row["daddr"] = endpoint(st.row["dst"])
    elif conv == Conv.FLAG:
        st.put(column, True)
    elif conv == Conv.TRUNCATED:
        st.put("truncated", True)
    elif conv == Conv.TCPFLAG:
        st.put(column, (st.get(column) or 0) | key.arg)
    elif conv == Conv.SRC:
        v = _value(key, tok)
        family = 6 if ":" in v else 4
        st.put("src", _address(v, family, "src"))
        if not st.inner:
            st.row["family"] = family
            st.row["saddr"] = endpoint(v)
        st.enter("ip6" if family == 6 else "ip4")
    elif conv == Conv.PROTO:
        v = _value(key, tok)
        nxt = PROTO_CONTEXT.get(v)
        if nxt is None:
            if not _DEC.fullmatch(v) or len(v) > 3 or int(v) > 255:
                raise LineError(f"proto: unknown protocol {v!r}")
            nxt = "other"
        st.put("proto", v)
        st.enter(nxt)
    elif conv == Conv.ARP:
        st.put("proto", "ARP")
        st.enter("arp")
    elif conv == Conv.OPTHEX:
        nxt = st.next_tok()
        if nxt == "(TRUNCATED)":
            st.put("truncated", True)
        else:
            m = _OPT.fullmatch(nxt or "")
            if m is None:
                raise LineError(f"{column}: expected (HEX) after OPT, got {nxt!r}")
            st.put(column, m.group(1))
        st.i += 1
    elif conv == Conv.INCOMPLETE:
        _incomplete(st)
    elif conv == Conv.INNER:
        if tok == "[TRUNCATED]":
            st.row[INNER_PREFIX + "truncated"] = True   # nothing of the quoted packet was readable
            return
        if not tok.startswith("[SRC="):
            raise LineError(f"quoted packet must start with SRC=, got {tok!r}")
        st.check_required()
        st.saved = (st.ctx, st.rank, st.seen)
        st.inner = True
        st.ctx, st.rank, st.seen = "hdr", -1, set()
        _apply(st, CONTEXTS["hdr"][-1], tok[1:])
    elif conv == Conv.EXT:
        _ext_headers(st)
    else:  # pragma: no cover - table and code out of sync
        raise AssertionError(conv)


def _incomplete(st: _State) -> None:
    a = st.next_tok()
    b = st.toks[st.i + 2] if st.i + 2 < len(st.toks) else None
    m = _INCOMPLETE_N.fullmatch(a or "")
    if m and b == "bytes]":
        st.put("incomplete", _uint(m.group(1), "incomplete"))
        st.i += 2
    elif a is None or (a == "]" and st.inner):
        st.put("truncated", True)   # ulogd writes a bare INCOMPLETE and stops
    else:
        raise LineError(f"INCOMPLETE must be followed by [N bytes], got {a!r}")


def _ext_headers(st: _State) -> None:
    """IPv6 extension headers: keep the text, decode the fragment header."""
    start = st.i
    while st.i < len(st.toks) and not st.toks[st.i].startswith("PROTO="):
        tok = st.toks[st.i]
        if not _EXT_TOKEN.fullmatch(tok):
            raise LineError(f"ip6: unexpected {tok!r} in extension headers")
        nxt = st.next_tok()
        if tok.startswith("FRAG:"):
            digits = tok[5:] or (nxt if nxt and _DEC.fullmatch(nxt) else "")
            st.put("ip6_frag", _uint(digits, "ip6_frag"))
            st.i += 0 if tok[5:] else 1
        elif tok.startswith("ID:"):
            digits = tok[3:] or (nxt or "")
            st.put("ip6_frag_id", _uint(digits, "ip6_frag_id", 16))
            st.i += 0 if tok[3:] else 1
        elif tok == "INCOMPLETE" and not (nxt or "").startswith("["):
            st.put("ip6_mf", True)
        elif tok in ("ESP", "Unknown", "TRUNCATED"):
            st.terminal[st.inner] = True
        st.i += 1
    st.put("ip6_ext", " ".join(st.toks[start:st.i]))
    st.i -= 1
    st.rank = max(r for r, k in enumerate(CONTEXTS["ip6"]) if k.conv == Conv.EXT)


assert set(COLUMN_INDEX) >= {"tcp_flag_bits", "inner_tcp_flag_bits"}


def parse_line(line: str, ref_year: int, ref_month: int) -> dict | None:
    """One whole line -> row dict, None when it is not a LOG line; LineError when it is a bad one."""
    from .envelopes import parse_envelope

    try:
        env, message = parse_envelope(line, ref_year, ref_month)
    except LineError:
        if MARKER.search(line):
            raise
        return None
    split = split_prefix(message)
    if split is None:
        return None
    prefix, text = split
    if env["envelope"] == "bare" and "kernel: " in prefix:
        raise LineError("unrecognised line envelope before 'kernel: '")
    row = parse_fields(text)
    row.update(env)
    row["prefix"] = prefix
    return row
