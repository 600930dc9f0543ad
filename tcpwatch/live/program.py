"""Builds the BPF program's source for this kernel: tracepoint structs from tracefs,
struct offsets from BTF, constants for the filters and transport. No user text reaches C."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .btf import BTF
from .header import HEADER, event_dtype
from .tracefs import Format

BPF_DIR = os.path.dirname(HEADER)
PROGRAM = os.path.join(BPF_DIR, "tcpwatch.bpf.c")

# OFF_<name> -> (struct, member path): every kernel struct member the BPF code reads.
KERNEL_OFFSETS = {
    "SK_NET": ("sock", "__sk_common.skc_net"),
    "SK_STATE": ("sock", "__sk_common.skc_state"),
    "SK_COOKIE": ("sock", "__sk_common.skc_cookie"),
    "NET_INUM": ("net", "ns.inum"),
    "SKB_DEV": ("sk_buff", "dev"),
    "DEV_NET": ("net_device", "nd_net"),
    "DEV_IFINDEX": ("net_device", "ifindex"),
    "SKB_HEAD": ("sk_buff", "head"),
    "SKB_DATA": ("sk_buff", "data"),
    "SKB_NETWORK_HEADER": ("sk_buff", "network_header"),
    "SKB_PROTOCOL": ("sk_buff", "protocol"),
    # read by userspace (tcpwatch/live/progstats.py), not by the BPF program
    "PROG_INFO_RECURSION_MISSES": ("bpf_prog_info", "recursion_misses"),
    # retransmits: struct tcp_skb_cb lives in sk_buff.cb; a SYN/ACK's ISN in the request sock
    "SKB_CB": ("sk_buff", "cb"),
    "TCB_SEQ": ("tcp_skb_cb", "seq"),
    "TCB_FLAGS": ("tcp_skb_cb", "tcp_flags"),
    "REQ_ISN": ("tcp_request_sock", "snt_isn"),
    # lifecycle and owners: the socket's error, protocol; accept()'s fd -> socket
    "SK_ERR": ("sock", "sk_err"),
    "SK_PROTOCOL": ("sock", "sk_protocol"),
    "SK_NUM": ("sock", "__sk_common.skc_num"),
    # whether a task is acting on the socket (bpf/tcpwatch.bpf.c: tw_task_acts_on)
    "SK_LOCK_OWNED": ("sock", "sk_lock.owned"),
    # a socket's two ends, for the probes that take them from the socket (raw variants)
    "SKC_DADDR": ("sock", "__sk_common.skc_daddr"),
    "SKC_RCV_SADDR": ("sock", "__sk_common.skc_rcv_saddr"),
    "SKC_DPORT": ("sock", "__sk_common.skc_dport"),
    "SKC_FAMILY": ("sock", "__sk_common.skc_family"),
    "SKC_V6_DADDR": ("sock", "__sk_common.skc_v6_daddr"),
    "SKC_V6_RCV_SADDR": ("sock", "__sk_common.skc_v6_rcv_saddr"),
    # the local port as the tracepoints give it: skc_num is 0 once a closing socket gave it back
    "INET_SPORT": ("inet_sock", "inet_sport"),
    # the on-CPU task, read directly by BTF tracepoint programs (the helpers elsewhere)
    "TASK_TGID": ("task_struct", "tgid"),
    "TASK_COMM": ("task_struct", "comm"),
    "TASK_CRED": ("task_struct", "cred"),
    "CRED_UID": ("cred", "uid"),
    "TASK_FILES": ("task_struct", "files"),
    "FILES_FDT": ("files_struct", "fdt"),
    "FDT_FD": ("fdtable", "fd"),
    "FILE_PRIVATE": ("file", "private_data"),
    "SOCKET_SK": ("socket", "sk"),
}

_SCALAR = {(1, False): "__u8", (1, True): "__s8", (2, False): "__u16", (2, True): "__s16",
           (4, False): "__u32", (4, True): "__s32", (8, False): "__u64", (8, True): "__s64"}

# Fields the program may refer to, per tracepoint; those a kernel lacks get 0/NULL accessors.
KNOWN_FIELDS = ("skbaddr", "skaddr", "state", "reason", "family", "sport", "dport", "saddr", "daddr",
                "saddr_v6", "daddr_v6", "sock_cookie", "oldstate", "newstate", "protocol", "err", "req", "ret")


@dataclass
class Options:
    use_ringbuf: bool = True
    ringbuf_pages: int = 2048          # 8 MiB with 4 KiB pages
    filter_netns: bool = False
    filter_ports: bool = False
    filter_hosts: bool = False
    extra_defines: dict[str, int] = field(default_factory=dict)
    raw_functions: tuple[str, ...] = ()   # probes whose raw variant this kernel runs (TW_RAW_<function>)
    btf_functions: tuple[str, ...] = ()   # those among them loaded as BTF tracepoints (TW_BTF_<function>)
    # whether the on-CPU task acts on a socket is read from its lock (TW_CONTEXT_FROM_LOCK), not
    # from a softirq depth kept by the core probes
    context_from_lock: bool = False
    # --netns inodes compared as constants when there are few (TW_NETNS_N, TW_NETNS_0..): an
    # event then costs a comparison or two instead of a hash lookup; more go to the f_netns map
    netns_constants: tuple[int, ...] = ()
    # received RSTs held in the kernel for their socket's event (bpf: tw_held_in); it takes a
    # compare-and-swap, which BPF programs have from kernel 5.12
    hold_wire_in: bool = True
    # BTF tracepoints read packet headers with plain loads, not bpf_probe_read_kernel() calls
    # (TW_DIRECT_PACKET; btfprog.reads_bytes_directly)
    direct_packet: bool = False


NETNS_CONSTANTS = 4


def netns_constants(netns: frozenset[int] | set[int]) -> tuple[int, ...]:
    """The --netns inodes to compile in as constants: all of them when few enough, else none."""
    return tuple(sorted(netns)) if 0 < len(netns) <= NETNS_CONSTANTS else ()


def tracepoint_struct(fmt: Format) -> str:
    """A packed struct whose members sit at the offsets the kernel's format file gives."""
    tp = fmt.name
    lines = [f"struct tp_{tp} {{"]
    pos, pad = 0, 0
    for f in sorted(fmt.fields.values(), key=lambda f: f.offset):
        if f.offset > pos:
            lines.append(f"    __u8 __pad{pad}[{f.offset - pos}];")
            pad += 1
        if f.array_len:
            elem = _SCALAR[(f.elem_size, f.signed)] if (f.elem_size, f.signed) in _SCALAR else "__u8"
            count = f.array_len if elem != "__u8" or f.elem_size == 1 else f.size
            lines.append(f"    {elem} {f.name}[{count}];")
        elif (f.size, f.signed) in _SCALAR:
            lines.append(f"    {_SCALAR[(f.size, f.signed)]} {f.name};")
        else:
            lines.append(f"    __u8 {f.name}[{f.size}];")
        pos = f.offset + f.size
    lines.append("} __attribute__((packed));")
    for f in fmt.fields.values():
        lines.append(f'_Static_assert(__builtin_offsetof(struct tp_{tp}, {f.name}) == {f.offset}, '
                     f'"{tp}.{f.name} offset");')
    lines.append(f"#define TP_{tp}_PRESENT 1")
    saddr = fmt.fields.get("saddr")
    lines.append(f"#define TP_{tp}_SOCKADDR {1 if saddr is not None and saddr.size == 28 else 0}")
    for name in KNOWN_FIELDS:
        f = fmt.fields.get(name)
        lines.append(f"#define TP_{tp}_HAS_{name} {1 if f else 0}")
        if f is None:
            lines.append(f"#define TP_{tp}_{name}(a) 0")
            lines.append(f"#define TP_{tp}_{name}_PTR(a) ((const void *)0)")
        elif f.array_len:
            lines.append(f"#define TP_{tp}_{name}(a) 0")
            lines.append(f"#define TP_{tp}_{name}_PTR(a) ((const void *)(a)->{name})")
        else:
            lines.append(f"#define TP_{tp}_{name}(a) ((a)->{name})")
            lines.append(f"#define TP_{tp}_{name}_PTR(a) ((const void *)&(a)->{name})")
    return "\n".join(lines)


# What bpf/tcpwatch.bpf.c's tw_sk_ends() reads from struct sock_common, and the size of each.
SK_ENDS_FIELDS = {"SKC_DADDR": 4, "SKC_RCV_SADDR": 4, "SKC_DPORT": 2, "SK_NUM": 2, "SKC_FAMILY": 2,
                  "SK_STATE": 1, "SK_NET": 8, "SKC_V6_DADDR": 16, "SKC_V6_RCV_SADDR": 16, "SK_COOKIE": 8}
SK_ENDS_WINDOW = 128    # bytes one read may span (a BPF stack buffer)


def sk_ends_window(offsets: dict[str, int]) -> tuple[int, int]:
    """(start, length) of the one read that covers every SK_ENDS_FIELDS member, or (-1, -1) when
    one is missing or they spread wider than SK_ENDS_WINDOW."""
    if any(offsets.get(name, -1) < 0 for name in SK_ENDS_FIELDS):
        return -1, -1
    lo = min(offsets[name] for name in SK_ENDS_FIELDS)
    hi = max(offsets[name] + size for name, size in SK_ENDS_FIELDS.items())
    return (lo, hi - lo) if hi - lo <= SK_ENDS_WINDOW else (-1, -1)


def kernel_offsets(btf: BTF) -> dict[str, int]:
    """OFF_* for every KERNEL_OFFSETS entry (-1 when this kernel lacks it), and SK_ENDS /
    SK_ENDS_LEN: the window tw_sk_ends() reads (-1 when it cannot be read at once)."""
    out = {}
    for macro, (struct_name, path) in KERNEL_OFFSETS.items():
        try:
            out[macro] = btf.offsetof(struct_name, path)
        except KeyError:
            out[macro] = -1
    out["SK_ENDS"], out["SK_ENDS_LEN"] = sk_ends_window(out)
    return out


def build_source(formats: dict[str, Format | None], offsets: dict[str, int], options: Options,
                 groups: tuple[str, ...] = ("resets",)) -> str:
    """The program for this kernel: generated prelude, the core, then each wanted group's file."""
    from .probes import GROUP_SOURCES

    parts = ["/* generated by tcpwatch/live/program.py for this kernel */"]
    defines = {
        "TW_USE_RINGBUF": int(options.use_ringbuf),
        "TW_RINGBUF_PAGES": options.ringbuf_pages,
        "TW_FILTER_NETNS": int(options.filter_netns),
        "TW_FILTER_PORTS": int(options.filter_ports),
        "TW_FILTER_HOSTS": int(options.filter_hosts),
        "TW_CONTEXT_FROM_LOCK": int(options.context_from_lock),
        "TW_HOLD_ALLOWED": int(options.hold_wire_in),
        "TW_DIRECT_PACKET": int(options.direct_packet),
        **{f"OFF_{k}": v for k, v in offsets.items()},
        **{f"TW_WANT_{g.upper()}": 1 for g in groups},
        **{f"TW_RAW_{fn}": 1 for fn in options.raw_functions},
        **{f"TW_BTF_{fn}": int(fn in options.btf_functions) for fn in options.raw_functions},
        "TW_NETNS_N": len(options.netns_constants),
        **{f"TW_NETNS_{i}": (options.netns_constants[i] if i < len(options.netns_constants) else 0)
           for i in range(NETNS_CONSTANTS)},
        **options.extra_defines,
    }
    parts += [f"#define {name} ({int(value)})" for name, value in defines.items()]
    for name, fmt in formats.items():
        if fmt is None:
            parts.append(f"#define TP_{name}_PRESENT 0")
        else:
            parts.append(tracepoint_struct(fmt))
    for path in [PROGRAM] + [os.path.join(BPF_DIR, GROUP_SOURCES[g]) for g in groups if g in GROUP_SOURCES]:
        with open(path) as f:
            parts.append(f.read())
    parts.append(f"_Static_assert(sizeof(struct tw_event) == {event_dtype().itemsize}, "
                 f'"struct tw_event: header.py and the compiler disagree");')
    return "\n".join(parts) + "\n"
