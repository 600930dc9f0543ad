"""`tcpwatch rules`: iptables LOG rules for RSTs in both directions, plus rsyslog and logrotate config.

Every rule carries the comment COMMENT so --remove deletes exactly what --apply added.
--apply/--remove act on the host's ruleset unless a network namespace is named (tests always
name one).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess

from ..errors import EnvironmentProblem, UsageProblem

COMMENT = "tcpwatch-rst-log"
LOG_OPTIONS = "--log-level {level} --log-tcp-sequence --log-tcp-options --log-ip-options"


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    prefix: str = "[drds] "
    exclude_ports: tuple[int, ...] = ()
    level: int = 7
    log_file: str = "/var/log/tcpwatch-rst.log"
    keep_days: int = 30

    def __post_init__(self):
        if not self.prefix or len(self.prefix.encode()) > 29:
            raise UsageProblem("the LOG prefix must be 1 to 29 bytes", "shorten --prefix")
        if '"' in self.prefix or "\n" in self.prefix:
            raise UsageProblem("the LOG prefix cannot contain quotes or newlines", "change --prefix")
        if not 0 <= self.level <= 7:
            raise UsageProblem("--level must be 0..7")


def rule_lines(spec: RuleSpec) -> list[str]:
    """`-A CHAIN ...` lines (same for iptables and ip6tables)."""
    log = f'-j LOG --log-prefix "{spec.prefix}" ' + LOG_OPTIONS.format(level=spec.level)
    out = []
    for chain, side in (("INPUT", "d"), ("OUTPUT", "s")):   # our own port: dport coming in, sport going out
        ports = ""
        if len(spec.exclude_ports) == 1:
            ports = f"! --{side}port {spec.exclude_ports[0]} "
        elif spec.exclude_ports:
            ports = f"-m multiport ! --{side}ports {','.join(map(str, spec.exclude_ports))} "
        out.append(f'-A {chain} -p tcp -m tcp {ports}--tcp-flags RST RST '
                   f'-m comment --comment "{COMMENT}" {log}')
    return out


def save_fragment(spec: RuleSpec) -> str:
    return "*filter\n" + "\n".join(rule_lines(spec)) + "\nCOMMIT\n"


def rsyslog_rule(spec: RuleSpec) -> str:
    prefix = spec.prefix.replace("\\", "\\\\").replace("'", "\\'")
    return (f"# /etc/rsyslog.d/30-tcpwatch-rst.conf: LOG lines with prefix {spec.prefix!r} to their own file\n"
            f"if $programname == 'kernel' and $msg contains '{prefix}' and $msg contains 'IN=' then {{\n"
            f"    action(type=\"omfile\" file=\"{spec.log_file}\")\n"
            f"    stop\n}}\n")


def logrotate_stanza(spec: RuleSpec) -> str:
    return (f"# /etc/logrotate.d/tcpwatch-rst\n{spec.log_file} {{\n    daily\n    rotate {spec.keep_days}\n"
            f"    maxage {spec.keep_days}\n    missingok\n    notifempty\n    compress\n    delaycompress\n"
            "    postrotate\n        /usr/lib/rsyslog/rsyslog-rotate\n    endscript\n}\n")


def render_all(spec: RuleSpec) -> str:
    frag = save_fragment(spec)
    return ("# iptables-restore --noflush < this   (IPv4)\n" + frag +
            "# ip6tables-restore --noflush < this  (IPv6)\n" + frag + "\n" +
            rsyslog_rule(spec) + "\n" + logrotate_stanza(spec))


def _run(cmd: list[str], netns: str | None, stdin: str | None = None) -> subprocess.CompletedProcess:
    full = (["ip", "netns", "exec", netns] if netns else []) + cmd
    try:
        return subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{full[0]} is not installed", "apt-get install iptables iproute2") from None


def _check_netns(netns: str | None) -> None:
    if netns and not os.path.exists(f"/run/netns/{netns}"):
        raise UsageProblem(f"no network namespace named {netns!r}", "see `ip netns list`")


def apply(spec: RuleSpec, netns: str | None = None, install_config: bool = False) -> list[str]:
    """Load the rules (idempotent: removes earlier tcpwatch rules first); returns what was done."""
    _check_netns(netns)
    done = remove(netns=netns)
    for tool in ("iptables-restore", "ip6tables-restore"):
        res = _run([tool, "--noflush"], netns, save_fragment(spec))
        if res.returncode != 0:
            raise EnvironmentProblem(f"{tool} failed: {res.stderr.strip()}", "run as root")
        done.append(f"{tool}: added {len(rule_lines(spec))} rules" + (f" in netns {netns}" if netns else ""))
    if install_config:
        for path, text in (("/etc/rsyslog.d/30-tcpwatch-rst.conf", rsyslog_rule(spec)),
                           ("/etc/logrotate.d/tcpwatch-rst", logrotate_stanza(spec))):
            with open(path, "w") as fh:
                fh.write(text)
            done.append(f"wrote {path}")
    return done


def remove(netns: str | None = None, remove_config: bool = False) -> list[str]:
    """Delete every rule carrying the tcpwatch comment (IPv4 and IPv6)."""
    _check_netns(netns)
    done = []
    for tool in ("iptables", "ip6tables"):
        listing = _run([tool, "-S"], netns)
        if listing.returncode != 0:
            raise EnvironmentProblem(f"{tool} -S failed: {listing.stderr.strip()}", "run as root")
        for line in listing.stdout.splitlines():
            if COMMENT in line and line.startswith("-A "):
                import shlex
                args = shlex.split(line)
                _run([tool, "-D", *args[1:]], netns)
                done.append(f"{tool}: removed {args[1]} rule")
    if remove_config:
        for path in ("/etc/rsyslog.d/30-tcpwatch-rst.conf", "/etc/logrotate.d/tcpwatch-rst"):
            if os.path.exists(path):
                os.unlink(path)
                done.append(f"removed {path}")
    return done
