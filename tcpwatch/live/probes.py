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

    @property
    def tracepoint(self) -> str:
        return f"{self.category}:{self.name}"


PROBES: tuple[Probe, ...] = (
    # core: always attached; softirq depth decides whether the on-CPU task may be named
    Probe("core", "irq", "softirq_entry", "tw_softirq_entry"),
    Probe("core", "irq", "softirq_exit", "tw_softirq_exit"),
    Probe("resets", "tcp", "tcp_send_reset", "tw_send_reset", "sent"),
    Probe("resets", "tcp", "tcp_receive_reset", "tw_receive_reset", "received"),
)

# group -> BPF source file in bpf/, appended to bpf/tcpwatch.bpf.c when the group is wanted
GROUP_SOURCES: dict[str, str] = {
    "resets": "resets.bpf.c",
}


def select(groups: tuple[str, ...] | list[str], direction: str | None = None) -> list[Probe]:
    """The probes for these groups (core always), honouring a reset direction filter."""
    wanted = {"core", *groups}
    return [p for p in PROBES if p.group in wanted and (direction is None or p.direction in (None, direction))]
