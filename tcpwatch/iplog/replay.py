"""`tcpwatch replay --pcap F --rules RULES [--log L]`: what would this ruleset have logged?

A private two-namespace lab is made for the run (tcpwatch.lab.Lab, deleted on every exit path).
The receiving namespace gets the ruleset with every `-j LOG` turned into `-j NFLOG` with the same
prefix (same matches, also non-terminating), so what the rules log comes back per packet, whole,
over a netlink socket of that namespace only: no global sysctl, nothing from other namespaces.
Each captured IP packet is sent, bytes unchanged, in a new Ethernet header from the sending
namespace over the veth (an AF_PACKET socket bound to the lab's veth: never a host interface),
so the receiving namespace's PREROUTING and INPUT chains see it. Capture addresses are not the
lab's: the receiving side treats every address as local (a `local` default route, accept_local,
no rp_filter), and drops everything it would send itself at raw OUTPUT, so its own replies
(RSTs to SYNs without a listener...) neither reach the rules nor disturb conntrack. A logged
packet is tied to the packet sent by its bytes.

Limits, reported not hidden: only the receive path is replayed (a recorded OUTPUT line is
compared with what the INPUT/PREROUTING rules log for that packet); fragments reassembled or
packets rewritten by NAT before the LOG rule cannot be tied to one sent packet (counted as
`unattributed`).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import os
import re
import shlex
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

from ..errors import EnvironmentProblem, InputError, UsageProblem

NFLOG_GROUP = 7          # private namespace: any group number is free
SETTLE_S = 0.3           # quiet time that ends the collection
SETTLE_MAX_S = 5.0
CLONE_NEWNET = 0x40000000
_LOG_TARGET = re.compile(r"(?:^|\s)-j\s+LOG(?=\s|$)")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")


# ---------------------------------------------------------------- ruleset

def to_nflog(rules: str, group: int = NFLOG_GROUP) -> tuple[str, int]:
    """iptables-save text with each `-j LOG ...` as `-j NFLOG --nflog-group G --nflog-prefix P`.

    iptables-save writes the target and its options last on the line, so the text before
    `-j LOG` (the matches) is kept byte for byte.
    """
    out, count = [], 0
    for line in rules.splitlines():
        m = _LOG_TARGET.search(line) if line.startswith(("-A", "-I")) else None
        if m is None:
            out.append(line)
            continue
        try:
            options = shlex.split(line[m.end():])
        except ValueError as err:
            raise InputError(f"cannot read LOG options in rule {line!r}: {err}") from None
        prefix = ""
        if "--log-prefix" in options:
            at = options.index("--log-prefix")
            prefix = options[at + 1] if at + 1 < len(options) else ""
        quoted = prefix.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'{line[:m.start()]} -j NFLOG --nflog-group {group} --nflog-prefix "{quoted}"'
                   if prefix else f"{line[:m.start()]} -j NFLOG --nflog-group {group}")
        count += 1
    return "\n".join(out) + "\n", count


# ---------------------------------------------------------------- capture

@dataclass(frozen=True)
class Sent:
    cap: object        # verify.Captured
    ip: bytes          # the IP packet as captured (IP header onwards, link padding cut)
    family: int


def read_packets(path: str) -> tuple[list[Sent], int]:
    """The capture's IP packets (outermost IP header on) and the number of other packets skipped."""
    from .verify import iter_capture

    skipped = [0]
    packets = [Sent(cap, bytes(ip)[:cap.length], 6 if ip.version == 6 else 4)
               for cap, ip in iter_capture(path, skipped)]
    return packets, skipped[0]


# ---------------------------------------------------------------- namespaces

def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def _inside(host):
    """Run the block with this thread in the host's namespace (sockets made there stay there)."""
    from ..lab import enter_netns

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter_netns(host.name)
        if os.stat("/proc/thread-self/ns/net").st_ino != host.inode:
            raise EnvironmentProblem(f"could not enter namespace {host.name}")
        yield
    finally:
        _setns(home)
        os.close(home)


@contextlib.contextmanager
def _signals_held():
    """Hold Ctrl-C/SIGTERM while the namespaces are being made, so none is made without being
    recorded for deletion; a signal that came meanwhile is acted on right after (and cleans up).
    Children started meanwhile (`ip netns add`) inherit the mask and are not cut short either."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _run(host, *cmd: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run(["ip", "netns", "exec", host.name, *cmd], input=stdin, capture_output=True,
                             text=True, timeout=60)
    except FileNotFoundError:
        raise EnvironmentProblem("iproute2 is not installed", "apt-get install iproute2") from None
    if check and res.returncode != 0:
        raise EnvironmentProblem(f"{' '.join(cmd)} failed in the replay namespace: {res.stderr.strip()}")
    return res


def _prepare(lab, rules: str | None, rules6: str | None, iface: str | None, mtu: int) -> tuple[str, int]:
    """Set up the receiving side; returns (its interface name, number of LOG rules turned into NFLOG)."""
    snd, rcv = lab.client, lab.server
    # The sender never speaks IPv6 itself (no router solicitations or MLD reaching the rules).
    _run(snd, "sysctl", "-qw", f"net.ipv6.conf.{snd.ifname}.disable_ipv6=1")
    name = rcv.ifname
    if iface and iface != name:
        if not _IFNAME.fullmatch(iface) or iface == "lo":
            raise UsageProblem(f"--iface {iface!r} is not a usable interface name")
        _run(rcv, "ip", "link", "set", "dev", name, "down")
        _run(rcv, "ip", "link", "set", "dev", name, "name", iface)
        name = iface
    for host, dev in ((snd, snd.ifname), (rcv, name)):
        _run(host, "ip", "link", "set", "dev", dev, "mtu", str(mtu), "up")
    for key, value in (("all.rp_filter", 0), (f"{name}.rp_filter", 0), ("all.accept_local", 1),
                       ("all.route_localnet", 1), ("default.rp_filter", 0)):
        _run(rcv, "sysctl", "-qw", f"net.ipv4.conf.{key}={value}")
    _run(rcv, "sysctl", "-qw", f"net.ipv6.conf.{name}.accept_ra=0")
    _run(rcv, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "local")
    _run(rcv, "ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "local")
    converted = 0
    for tool, text in (("iptables-restore", rules), ("ip6tables-restore", rules6)):
        if text is None:
            continue
        nflog, n = to_nflog(text)
        converted += n
        res = _run(rcv, tool, stdin=nflog, check=False)
        if res.returncode != 0:
            raise InputError(f"{tool} rejected the ruleset: {res.stderr.strip()}",
                             "give `iptables-save` output (--rules IPv4, --rules6 IPv6)")
    for tool in ("iptables", "ip6tables"):   # the receiver's own packets never reach the rules
        _run(rcv, tool, "-t", "raw", "-I", "OUTPUT", "1", "-j", "DROP")
    # Captures taken on a sending host often carry checksums left to the NIC: accept them as that
    # host's conntrack did (per namespace; absent when no rule uses conntrack).
    _run(rcv, "sysctl", "-qw", "net.netfilter.nf_conntrack_checksum=0", check=False)
    return name, converted


def _mac(host, dev: str) -> bytes:
    text = _run(host, "cat", f"/sys/class/net/{dev}/address").stdout.strip()
    return bytes.fromhex(text.replace(":", ""))


# ---------------------------------------------------------------- replay

@dataclass
class ReplayRun:
    sent: list[Sent]
    logged: dict[int, list] = field(default_factory=dict)   # position in `sent` -> [LoggedPacket]
    unattributed: list = field(default_factory=list)
    send_errors: Counter = field(default_factory=Counter)
    lost: int = 0


class _Attributor:
    """Ties each logged payload to a sent packet with the same bytes. Messages arrive in send order
    (the veth delivers within the send call), so a repeated packet is told apart by position: the
    earliest packet not yet passed that does not already carry this (chain, prefix)."""

    def __init__(self, run: ReplayRun):
        self.run = run
        self.where: dict[bytes, list[int]] = {}
        self.floor = 0

    def sent(self, pos: int) -> None:
        self.where.setdefault(self.run.sent[pos].ip, []).append(pos)

    def add(self, messages) -> None:
        for msg in messages:
            positions = self.where.get(msg.payload, [])
            k = bisect.bisect_left(positions, self.floor)
            if k == len(positions):
                self.run.unattributed.append(msg)
                continue
            candidates = positions[k:]
            pos = next((p for p in candidates if not any(
                (m.chain, m.prefix) == (msg.chain, msg.prefix) for m in self.run.logged.get(p, ()))),
                candidates[-1])
            self.floor = pos
            self.run.logged.setdefault(pos, []).append(msg)


def _send_all(lab, rcv_dev: str, run: ReplayRun) -> None:
    from .nflog import NflogSocket

    snd, rcv = lab.client, lab.server
    dst_mac, src_mac = _mac(rcv, rcv_dev), _mac(snd, snd.ifname)
    with _inside(rcv):
        listener = NflogSocket(NFLOG_GROUP)
    try:
        with _inside(snd):
            out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            out.bind((snd.ifname, 0))   # the lab veth: its name exists only inside the lab namespace
        attributor = _Attributor(run)
        try:
            for pos, pkt in enumerate(run.sent):
                attributor.sent(pos)
                ethertype = b"\x86\xdd" if pkt.family == 6 else b"\x08\x00"
                try:
                    out.send(dst_mac + src_mac + ethertype + pkt.ip)
                except OSError as err:
                    run.send_errors[os.strerror(err.errno or 0)] += 1
                attributor.add(listener.read(0))
            deadline = time.monotonic() + SETTLE_MAX_S
            while time.monotonic() < deadline:
                got = listener.read(SETTLE_S)
                if not got:
                    break
                attributor.add(got)
        finally:
            out.close()
        run.lost = listener.lost
    finally:
        listener.close()


def _flags_text(bits) -> str | None:
    from .fields import tcp_flags_text

    return None if bits is None else tcp_flags_text(bits)


def _describe(msgs: list) -> str:
    return "; ".join(f"{m.chain} {m.prefix!r}" for m in msgs)


def replay(pcap: str, rules: str | None, rules6: str | None = None, log: str | None = None,
           iface: str | None = None, skew: float = 5.0) -> dict:
    """Replay a capture through an iptables-save ruleset; see the module doc. Returns
    {"summary": dict, "packets": DataFrame (one row per sent packet), "messages": DataFrame (one row
    per log message), "reproduce": DataFrame (one row per recorded LOG line, with --log)}."""
    import pandas as pd

    from ..lab import Lab

    if rules is None and rules6 is None:
        raise UsageProblem("give a ruleset: --rules (iptables-save) and/or --rules6 (ip6tables-save)")
    if os.geteuid() != 0:
        raise EnvironmentProblem("replay needs root (it makes network namespaces)", "run with sudo")
    sent, skipped = read_packets(pcap)
    recorded = None
    if log is not None:
        from .api import parse_iptables_log
        recorded, _report = parse_iptables_log(log)
        if iface is None and len(recorded):
            ins = recorded["in"].dropna()
            ins = ins[ins != ""]
            iface = ins.mode().iloc[0] if len(ins) else None
    mtu = max([1500] + [len(p.ip) for p in sent])
    if mtu > 65535 - 14:
        raise InputError("the capture holds packets larger than a veth can carry")
    run = ReplayRun(sent)
    with contextlib.ExitStack() as stack:
        with _signals_held():
            lab = stack.enter_context(Lab(prefix="twreplay"))
        rcv_dev, converted = _prepare(lab, rules, rules6, iface, mtu)
        _send_all(lab, rcv_dev, run)

    packets = pd.DataFrame([{
        "index": p.cap.index, "ts": p.cap.ts, "family": p.family, "saddr": p.cap.saddr, "sport": p.cap.sport,
        "daddr": p.cap.daddr, "dport": p.cap.dport, "proto": p.cap.proto, "tcp_flags": _flags_text(p.cap.flags),
        "logged": len(run.logged.get(pos, [])), "prefixes": _describe(run.logged.get(pos, []))}
        for pos, p in enumerate(run.sent)])
    messages = pd.DataFrame([{"index": run.sent[pos].cap.index, "chain": m.chain, "prefix": m.prefix}
                             for pos in sorted(run.logged) for m in run.logged[pos]],
                            columns=["index", "chain", "prefix"])
    summary = {"packets": len(sent), "skipped_not_ip": skipped, "log_rules": converted,
               "packets_logged": len(run.logged), "messages": int(sum(map(len, run.logged.values()))),
               "unattributed_messages": len(run.unattributed), "lost_messages": run.lost,
               "send_errors": dict(run.send_errors), "interface": rcv_dev}
    result = {"summary": summary, "packets": packets, "messages": messages}
    if recorded is not None:
        result["reproduce"], summary["reproduce"] = reproduce(recorded, run, skew)
    return result


# ---------------------------------------------------------------- --log

def reproduce(recorded, run: ReplayRun, skew: float):
    """Does the replay log what the recorded log holds, packet for packet and prefix for prefix?

    Each recorded line is tied to a captured packet (verify's matching); then it is `reproduced`
    when the replay logged that packet with the same prefix, `other-prefix` when only with other
    prefixes, `not-logged` when not at all, `not-in-capture` when no captured packet fits. Packets
    the replay logged with a prefix the recorded log does not show for them are `extra`.
    """
    import pandas as pd

    from .verify import match_logged

    by_index = {p.cap.index: pos for pos, p in enumerate(run.sent)}
    rows, recorded_pairs = [], set()
    for row, cap in match_logged(recorded, [p.cap for p in run.sent], skew):
        msgs = run.logged.get(by_index[cap.index], []) if cap is not None else []
        prefixes = {m.prefix for m in msgs}
        if cap is None:
            status = "not-in-capture"
        elif row["prefix"] in prefixes:
            status = "reproduced"
            recorded_pairs.add((cap.index, row["prefix"]))
        else:
            status = "other-prefix" if msgs else "not-logged"
        rows.append({"lineno": row["lineno"], "prefix": row["prefix"], "chain": row["chain"],
                     "index": None if cap is None else cap.index, "status": status,
                     "replay_logged": _describe(msgs), "saddr": row["saddr"], "sport": row["sport"],
                     "daddr": row["daddr"], "dport": row["dport"], "tcp_flags": row["tcp_flags"]})
    for pos in sorted(run.logged):
        cap = run.sent[pos].cap
        for m in run.logged[pos]:
            if (cap.index, m.prefix) not in recorded_pairs:
                recorded_pairs.add((cap.index, m.prefix))
                rows.append({"lineno": None, "prefix": m.prefix, "chain": m.chain, "index": cap.index,
                             "status": "extra", "replay_logged": _describe(run.logged[pos]),
                             "saddr": cap.saddr, "sport": cap.sport, "daddr": cap.daddr, "dport": cap.dport,
                             "tcp_flags": _flags_text(cap.flags)})
    frame = pd.DataFrame(rows, columns=["lineno", "prefix", "chain", "index", "status", "replay_logged", "saddr",
                                        "sport", "daddr", "dport", "tcp_flags"])
    counts = dict(Counter(frame["status"]))
    checked = {k: counts.get(k, 0) for k in ("reproduced", "other-prefix", "not-logged", "extra", "not-in-capture")}
    checked["reproduces"] = bool(len(frame)) and not any(checked[k] for k in ("other-prefix", "not-logged", "extra"))
    return frame, checked
