"""Write LOG lines the way the kernel does (nf_log_syslog.c formats), from parser-shaped rows.

Used by the property tests (parse(render(row)) == row), the benchmark's input generator and the
rules helper's examples. Only the forms the kernel writes are produced (no ulogd dialect).
"""

from __future__ import annotations

import time

from .fields import tcp_flags_text


def render_fields(row: dict, inner: bool = False) -> str:
    p = "inner_" if inner else ""
    g = lambda name: row.get(p + name)  # noqa: E731
    out = []
    if not inner:
        out.append(f"IN={row.get('in', '')} OUT={row.get('out', '')} ")
        for name in ("physin", "physout"):
            if row.get(name) is not None:
                out.append(f"{name.upper()}={row[name]} ")
        if row.get("macsrc") is not None:
            out.append(f"MACSRC={row['macsrc']} MACDST={row['macdst']} ")
            if row.get("vid") is not None:
                out.append(f"VPROTO={row['vproto']:04x} VID={row['vid']} ")
            out.append(f"MACPROTO={row['macproto']:04x} ")
        elif row.get("mac") is not None:
            out.append(f"MAC={row['mac']}" + (f" TUNNEL={row['tunnel']}" if row.get("tunnel") else "") + " ")
    if g("src") is None:
        if row.get("truncated"):
            out.append("TRUNCATED")
        return "".join(out)
    out.append(f"SRC={g('src')} DST={g('dst')} ")
    if ":" in g("src"):
        out.append(f"LEN={g('len')} TC={g('tc')} HOPLIMIT={g('hoplimit')} FLOWLBL={g('flowlbl')} ")
        if g("ip6_ext"):
            out.append(g("ip6_ext") + " ")
    else:
        out.append(f"LEN={g('len')} TOS=0x{g('tos'):02X} PREC=0x{g('prec'):02X} TTL={g('ttl')} ID={g('id')} ")
        out.extend(f"{f.upper()} " for f in ("ce", "df", "mf") if g(f))
        if g("frag"):
            out.append(f"FRAG:{g('frag')} ")
        if g("ip_opt"):
            out.append(f"OPT ({g('ip_opt')}) ")
    proto = g("proto")
    out.append(f"PROTO={proto} ")
    fragment = bool(g("frag") or g("ip6_frag"))
    if proto == "TCP" and not fragment:
        if g("incomplete") is not None:
            out.append(f"INCOMPLETE [{g('incomplete')} bytes] ")
        else:
            out.append(f"SPT={g('spt')} DPT={g('dpt')} ")
            if g("seq") is not None:
                out.append(f"SEQ={g('seq')} ACK={g('ack')} ")
            out.append(f"WINDOW={g('window')} RES=0x{g('res'):02x} ")
            flags = tcp_flags_text(g("tcp_flag_bits") or 0)
            out.append(flags + " " if flags else "")
            out.append(f"URGP={g('urgp')} ")
            if g("tcp_opt"):
                out.append(f"OPT ({g('tcp_opt')}) ")
    elif proto in ("UDP", "UDPLITE") and not fragment:
        if g("incomplete") is not None:
            out.append(f"INCOMPLETE [{g('incomplete')} bytes] ")
        else:
            out.append(f"SPT={g('spt')} DPT={g('dpt')} LEN={g('udp_len')} ")
    elif proto in ("ICMP", "ICMPv6") and not fragment:
        out.append(f"TYPE={g('icmp_type')} CODE={g('icmp_code')} ")
        if g("icmp_id") is not None:
            out.append(f"ID={g('icmp_id')} SEQ={g('icmp_seq')} ")
        if g("icmp_parameter") is not None:
            out.append(f"PARAMETER={g('icmp_parameter')} ")
        if g("icmp_pointer") is not None:
            out.append(f"POINTER={g('icmp_pointer'):08x} ")
        if g("icmp_gateway") is not None:
            out.append(f"GATEWAY={g('icmp_gateway')} ")
        if not inner and row.get("inner_src") is not None:
            out.append("[" + render_fields(row, inner=True) + "] ")
        if g("mtu") is not None:
            out.append(f"MTU={g('mtu')} ")
    if not inner:
        if row.get("uid") is not None:
            out.append(f"UID={row['uid']} GID={row['gid']} ")
        if row.get("mark") is not None:
            out.append(f"MARK=0x{row['mark']:x} ")
    return "".join(out)


def render_envelope(message: str, envelope: str, ts: float = 0.0, host: str = "host", uptime: float = 0.0,
                    level: int = 4) -> str:
    """Put a kernel message in one of the envelopes (ts is UTC seconds)."""
    t = time.gmtime(int(ts))
    micros = int(round((ts - int(ts)) * 1e6)) % 1_000_000
    if envelope == "kmsg":
        return f"{level},1,{int(round(uptime * 1e6))},-;{message}"
    if envelope == "rfc5424":
        return f"<{level}>1 {time.strftime('%Y-%m-%dT%H:%M:%S', t)}.{micros:06d}Z {host} kernel - - - {message}"
    if envelope == "rfc3339":
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', t)}.{micros:06d}+00:00 {host} kernel: {message}"
    if envelope == "syslog":
        return f"{time.strftime('%b', t)} {t.tm_mday:2d} {time.strftime('%H:%M:%S', t)} {host} kernel: {message}"
    if envelope == "dmesg-T":
        return f"[{time.strftime('%a %b', t)} {t.tm_mday:2d} {time.strftime('%H:%M:%S %Y', t)}] {message}"
    if envelope == "dmesg":
        return f"[{uptime:12.6f}] {message}"
    return message
