"""Every probe tcpwatch can attach, grouped by what it observes.

A group is one BPF source file in bpf/ (compiled only when the group is wanted) plus the
tracepoints its functions attach to. Adding a kind of observation means adding a file and rows
here; the capture, the program builder and `tcpwatch doctor` all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    group: str
    category: str
    name: str
    function: str              # the BPF function attached to it
    direction: str | None = None  # resets: which --direction the probe serves
    # A raw variant (<function>_raw) reads the tracepoint's arguments as the kernel passes them,
    # skipping the copy into a trace record: about half the cost of a hit, which matters on
    # probes that fire for every packet or softirq. `raw` is the argument types it expects
    # (checked against this kernel's BTF); `raw_needs` the struct offsets it reads instead of
    # the record's fields. When either is missing, the plain tracepoint is attached.
    raw: tuple[str, ...] | None = None
    raw_needs: tuple[str, ...] = ()
    # A raw variant that is not a program of its own but code inside raw_host's (the function of
    # a probe on the same tracepoint, attached earlier): one program run per hit instead of two.
    # It runs raw only when its host does; otherwise it is attached as a plain tracepoint.
    raw_host: str | None = None

    @property
    def tracepoint(self) -> str:
        return f"{self.category}:{self.name}"


# what a raw variant needs to take a socket's ends from the socket itself (tw_sk_ends)
SK_ENDS = ("SK_ENDS", "INET_SPORT")

PROBES: tuple[Probe, ...] = (
    # core: softirq depth decides whether the on-CPU task may be named, where the socket's lock
    # cannot (context_from_lock); then always attached. Exit is attached first: a softirq running
    # while the probes attach must not be counted in and never out (that CPU would then call every
    # event softirq); an exit without entry is ignored.
    Probe("core", "irq", "softirq_exit", "tw_softirq_exit", raw=("int",)),
    Probe("core", "irq", "softirq_entry", "tw_softirq_entry", raw=("int",)),
    Probe("resets", "tcp", "tcp_send_reset", "tw_send_reset", "sent",
          raw=("struct sock *", "struct sk_buff *", "enum sk_rst_reason"), raw_needs=SK_ENDS),
    Probe("resets", "tcp", "tcp_receive_reset", "tw_receive_reset", "received", raw=("struct sock *",),
          raw_needs=SK_ENDS),
    # RSTs on devices: those netfilter sends, and those dropped before TCP sees them
    Probe("netdev", "net", "net_dev_queue", "tw_dev_queue", "sent", raw=("struct sk_buff *",)),
    Probe("netdev", "net", "netif_receive_skb", "tw_receive_skb", "received", raw=("struct sk_buff *",)),
    # owner: always attached, before the event groups (a child socket inherits its listener's
    # owner before a lifecycle event on the same tracepoint looks it up)
    Probe("owner", "sock", "inet_sock_set_state", "tw_owner_state", raw=("struct sock *", "int", "int"),
          raw_needs=("SK_PROTOCOL", "INET_SPORT")),
    Probe("owner", "tcp", "tcp_destroy_sock", "tw_owner_destroy", raw=("struct sock *",)),
    Probe("owner", "syscalls", "sys_exit_accept4", "tw_owner_accept4"),
    Probe("owner", "syscalls", "sys_exit_accept", "tw_owner_accept"),
    Probe("retrans", "tcp", "tcp_retransmit_skb", "tw_retransmit_skb"),
    Probe("retrans", "tcp", "tcp_retransmit_synack", "tw_retransmit_synack"),
    Probe("lifecycle", "sock", "inet_sock_set_state", "tw_state_change"),
    # for `resets`: only the closes the kernel decided on (timeouts), which send no RST
    Probe("giveup", "sock", "inet_sock_set_state", "tw_giveup", raw=("struct sock *", "int", "int"),
          raw_needs=(*SK_ENDS, "SK_ERR"), raw_host="tw_owner_state"),
)

# group -> BPF source file in bpf/, appended to bpf/tcpwatch.bpf.c when the group is wanted
GROUP_SOURCES: dict[str, str] = {
    "resets": "resets.bpf.c",
    "netdev": "netdev.bpf.c",
    "owner": "owner.bpf.c",
    "retrans": "retrans.bpf.c",
    "lifecycle": "lifecycle.bpf.c",
    "giveup": "giveup.bpf.c",
    "count": "count.bpf.c",
}

# Compiled into every capture: core (softirq depth) and owner (who owns each socket, so events
# in softirq can name it). "count" has no probes: in --count mode its source sits before the
# event groups and turns their submissions into per-flow counters in the kernel.
ALWAYS: tuple[str, ...] = ("core", "owner")


def why_not_raw(probe: Probe, facts: dict) -> str | None:
    """Why this kernel cannot run the probe's raw variant, or None when it can: it needs the
    argument types it was written for and every offset it reads. facts: tcpwatch/live/
    kernel_facts.py's numbers for this kernel."""
    if probe.raw is None:
        return "no raw variant"
    args = facts.get("tracepoint_args", {}).get(probe.name)
    if args is None or tuple(args) != probe.raw:
        return "raw arguments differ"
    missing = [name for name in probe.raw_needs if facts["offsets"].get(name, -1) < 0]
    return "BTF lacks " + ", ".join(missing) if missing else None


def raw_usable(probe: Probe, facts: dict) -> bool:
    """Whether this kernel can run the probe's raw variant (why_not_raw says why not)."""
    return why_not_raw(probe, facts) is None


def raw_functions(probes: list[Probe], facts: dict, refused: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """The functions among these probes whose raw variant this kernel runs (TW_RAW_<function>):
    those raw_usable and not refused at attach, a rider only with its host among them. Only
    these are compiled in their raw form, the others in their tracepoint form."""
    usable = {p.function for p in probes if raw_usable(p, facts)} - set(refused)
    return {p.function for p in probes if p.function in usable and (p.raw_host is None or p.raw_host in usable)}


def context_from_lock(facts: dict) -> bool:
    """Whether the BPF code can tell that the on-CPU task acts on a socket from the socket's own
    lock (bpf/tcpwatch.bpf.c: tw_task_acts_on), which needs sock.sk_lock.owned from BTF. Then the
    core probes (a softirq depth: two program runs on every softirq of the host) are not
    attached."""
    return facts["offsets"].get("SK_LOCK_OWNED", -1) >= 0


def btf_functions(probes: list[Probe], facts: dict, raw: set[str],
                  refused: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """The raw variants among `raw` this kernel runs as BTF tracepoints (TW_BTF_<function>: their
    reads are direct loads, tcpwatch/live/btfprog.py): those whose tracepoint has a BTF id and that
    were not refused at load. A rider is code in its host's program and goes with the host."""
    ids = facts.get("tracepoint_btf_ids", {})
    return {p.function for p in probes
            if p.function in raw and p.raw_host is None and ids.get(p.name) and p.function not in refused}


def expand(groups: tuple[str, ...] | list[str], count: bool = False) -> tuple[str, ...]:
    """Every group a capture compiles, in source order."""
    return tuple(dict.fromkeys([*ALWAYS, *(("count",) if count else ()), *groups]))


def select(groups: tuple[str, ...] | list[str], direction: str | None = None) -> list[Probe]:
    """The probes for these groups (core and owner always), honouring a reset direction filter."""
    wanted = set(expand(groups))
    return [p for p in PROBES if p.group in wanted and (direction is None or p.direction in (None, direction))]
