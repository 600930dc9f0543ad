"""What a namespace's firewall says: does any rule make conntrack track there, and which rule fired.

Read through the tools operators use (`nft list ruleset`, `iptables-save -c`) inside the namespace,
so what we report is what they would see.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from ..errors import EnvironmentProblem
from .netns import open_netns, resolve_netns, run_in_netns

# nft expressions (native, or iptables-nft translations) that need connection tracking in that
# namespace; NAT chains need it too. "notrack" alone does not count.
_CONNTRACK_USE = re.compile(
    r"\bct (state|status|mark|zone|direction|original|reply|expiration|helper|label|count|id|event)\b"
    r"|\btype nat hook\b|xt match \"(conntrack|state|connmark|connlimit)\"")
_IPTABLES_CONNTRACK_USE = re.compile(r"-m (conntrack|state|connmark|connlimit)\b|^\*nat$", re.M)


def ruleset_uses_conntrack(fd: int | None) -> bool | None:
    """Whether a rule in the namespace held by fd makes the kernel track connections; None: cannot tell."""
    answers = []
    if shutil.which("nft"):
        done = run_in_netns(fd, "nft", "list", "ruleset")
        if done.returncode == 0:
            answers.append(bool(_CONNTRACK_USE.search(done.stdout)))
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        if shutil.which(tool):
            done = run_in_netns(fd, tool)
            if done.returncode == 0:
                answers.append(bool(_IPTABLES_CONNTRACK_USE.search(done.stdout)))
    return any(answers) if answers else None


@dataclass(frozen=True, slots=True)
class RuleCounter:
    family: str          # "ipv4" or "ipv6"
    table: str
    chain: str
    spec: str            # the rule as iptables-save prints it, without "-A CHAIN"
    index: int           # position in its chain, from 1: tells identical specs apart
    packets: int
    bytes: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.family, self.table, self.chain, self.index)

    @property
    def rejects(self) -> bool:
        return bool(re.search(r"-j REJECT\b", self.spec))


_RULE_LINE = re.compile(r"^\[(\d+):(\d+)\] -A (\S+) ?(.*)$")


def parse_iptables_save(text: str, family: str = "ipv4") -> list[RuleCounter]:
    """Rules with their counters from `iptables-save -c` output."""
    rules: list[RuleCounter] = []
    table = ""
    position: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        match = _RULE_LINE.match(line)
        if not match:
            continue
        packets, nbytes, chain, spec = match.groups()
        index = position[(table, chain)] = position.get((table, chain), 0) + 1
        rules.append(RuleCounter(family, table, chain, spec, index, int(packets), int(nbytes)))
    return rules


def firewall_rule_counters(netns: str | int | None = None) -> list[RuleCounter]:
    """Every iptables rule (IPv4 and IPv6) in the namespace with its packet and byte counters."""
    ref = resolve_netns(netns)
    fd = open_netns(ref)
    try:
        rules: list[RuleCounter] = []
        for tool, family in (("iptables-save", "ipv4"), ("ip6tables-save", "ipv6")):
            if not shutil.which(tool):
                continue
            done = run_in_netns(fd, tool, "-c")
            if done.returncode != 0:
                raise EnvironmentProblem(f"{tool} failed in {ref.label}: {done.stderr.strip()}", "run as root")
            rules.extend(parse_iptables_save(done.stdout, family))
        return rules
    finally:
        if fd is not None:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule: RuleCounter
    packets: int         # how many packets it matched between the two readings

    def describe(self) -> str:
        return f"{self.rule.table}/{self.rule.chain} #{self.rule.index}: -A {self.rule.chain} {self.rule.spec}"


def which_rule_fired(before: list[RuleCounter], after: list[RuleCounter],
                     rejecting_only: bool = True) -> list[FiredRule]:
    """Rules whose packet counters moved between two readings, most packets first.

    rejecting_only keeps REJECT rules: the ones that answer with a reset or an ICMP error."""
    earlier = {rule.key: rule for rule in before}
    fired = []
    for rule in after:
        if rejecting_only and not rule.rejects:
            continue
        previous = earlier.get(rule.key)
        # a rule that was not there, or now holds another spec at the same place, counts from 0
        moved = rule.packets - (previous.packets if previous and previous.spec == rule.spec else 0)
        if moved > 0:
            fired.append(FiredRule(rule, moved))
    return sorted(fired, key=lambda f: -f.packets)
