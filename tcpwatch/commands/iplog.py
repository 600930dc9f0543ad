"""Commands for iptables LOG lines: iplog (parse), rules (helper), verify (vs a capture), replay (through a ruleset)."""

from __future__ import annotations

import sys

import click

from ._options import output_options


def _emit(frame, summary: dict, as_json: bool, output: str | None, human_columns: tuple[str, ...]) -> None:
    from ..sinks import JsonlSink, open_file_sink

    if output:
        with open_file_sink(output) as sink:
            sink.write(frame)
    if as_json:
        sink = JsonlSink(sys.stdout)
        sink.write(frame)
        sink.write_summary(summary)
        return
    if not output:
        cols = [c for c in human_columns if c in frame.columns]
        if len(frame):
            click.echo(frame[cols].to_string(index=False, na_rep="-", max_rows=200))


def _report_problems(report) -> None:
    for problem in report.errors[:50]:
        click.echo(f"tcpwatch: {problem.file}:{problem.lineno}: bad LOG line: {problem.reason}", err=True)
    if len(report.errors) > 50:
        click.echo(f"tcpwatch: ... and {len(report.errors) - 50} more bad LOG lines", err=True)
    if report.uptime_only:
        click.echo(f"tcpwatch: {report.uptime_only} lines carry only a since-boot stamp: ts left null "
                   "(column uptime); pass --boot-time EPOCH or read /dev/kmsg to convert", err=True)


HUMAN = ("ts", "kind", "chain", "prefix", "saddr", "sport", "daddr", "dport", "proto", "tcp_flags", "host")


@click.command("iplog")
@click.argument("files", nargs=-1, required=True)
@click.option("--follow", "-f", is_flag=True, help="Keep reading lines appended to FILE (survives rotation).")
@click.option("--engine", type=click.Choice(["auto", "c", "python"]), default="auto", show_default=True,
              help="C tokenizer or the pure-Python reference grammar.")
@click.option("--year", type=int, default=None, help="Year of classic syslog stamps (default: from file mtime).")
@click.option("--boot-time", type=float, default=None, metavar="EPOCH",
              help="Boot time of the machine that wrote raw dmesg stamps, to fill ts (/dev/kmsg: automatic).")
@output_options
def iplog_cmd(files, follow, engine, year, boot_time, as_json, output):
    """Parse iptables/nftables/ulogd LOG lines (FILE... or - for stdin; .gz and /dev/kmsg too).

    Envelopes: dmesg, dmesg -T, classic syslog, RFC 3339/5424, journalctl short/short-iso/-o json,
    ulogd LOGEMU. Non-LOG lines are skipped and counted; LOG lines that do not parse are listed
    with their line numbers on stderr and never half-parsed.
    """
    from ..iplog import api

    if follow:
        from ..sinks import JsonlSink, open_file_sink

        sink = open_file_sink(output) if output else None
        try:
            for frame, report in api.follow(list(files), engine=engine, boot=boot_time):
                if sink:
                    sink.write(frame)
                if as_json:
                    JsonlSink(sys.stdout).write(frame)
                elif not sink:
                    click.echo(frame[[c for c in HUMAN if c in frame.columns]].to_string(
                        index=False, header=False, na_rep="-"))
                _report_problems(report)
                report.errors.clear()
        finally:
            if sink:
                sink.close()
        return
    frame, report = api.parse_iptables_log(list(files), engine=engine, year=year, boot=boot_time)
    _report_problems(report)
    _emit(frame, report.as_dict(), as_json, output, HUMAN)
    if not as_json:
        click.echo(f"{report.log_lines} LOG lines, {len(report.errors)} bad LOG lines, "
                   f"{report.other_lines} other lines", err=True)


@click.command("rules")
@click.option("--prefix", default="[drds] ", show_default=True, help="LOG prefix (at most 29 bytes).")
@click.option("--exclude-port", "exclude_ports", type=click.IntRange(1, 65535), multiple=True,
              help="Local port whose RSTs are not logged (repeatable).")
@click.option("--level", type=click.IntRange(0, 7), default=7, show_default=True, help="Kernel log level.")
@click.option("--log-file", default="/var/log/tcpwatch-rst.log", show_default=True)
@click.option("--keep-days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--apply", "do_apply", is_flag=True, help="Load the rules (IPv4 and IPv6).")
@click.option("--remove", "do_remove", is_flag=True, help="Remove the rules --apply loaded.")
@click.option("--netns", default=None, metavar="NAME", help="Act inside this network namespace (ip netns).")
@click.option("--install-config", is_flag=True,
              help="With --apply/--remove: also write/remove the rsyslog and logrotate files in /etc.")
def rules_cmd(prefix, exclude_ports, level, log_file, keep_days, do_apply, do_remove, netns, install_config):
    """Print (or load) iptables rules that LOG RSTs in both directions, with rsyslog + logrotate config."""
    from ..errors import UsageProblem
    from ..iplog import rules

    spec = rules.RuleSpec(prefix=prefix, exclude_ports=tuple(exclude_ports), level=level, log_file=log_file,
                          keep_days=keep_days)
    if do_apply and do_remove:
        raise UsageProblem("--apply and --remove exclude each other")
    if do_apply:
        for line in rules.apply(spec, netns=netns, install_config=install_config):
            click.echo(line)
    elif do_remove:
        for line in rules.remove(netns=netns, remove_config=install_config) or ["nothing to remove"]:
            click.echo(line)
    else:
        click.echo(rules.render_all(spec), nl=False)


@click.command("verify")
@click.option("--pcap", "pcap", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--log", "log", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--skew", type=float, default=5.0, show_default=True, help="Clock difference tolerated (s).")
@output_options
def verify_cmd(pcap, log, skew, as_json, output):
    """Match each logged packet to the capture: matched, logged-not-captured, unlogged RSTs."""
    from ..iplog.verify import verify

    result = verify(pcap, log, skew=skew)
    summary = result["summary"]
    if as_json or output:
        _emit(result["logged"], summary, as_json, output, ())
        return
    for key, value in summary.items():
        click.echo(f"{key:26s} {value}")
    if len(result["logged"]):
        click.echo(result["logged"].to_string(index=False, na_rep="-", max_rows=200))
    if len(result["unlogged_rsts"]):
        click.echo("captured RSTs that were not logged:")
        click.echo(result["unlogged_rsts"][["index", "ts", "saddr", "sport", "daddr", "dport"]].to_string(index=False))


def _read_text(path: str | None) -> str | None:
    if path is None:
        return None
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


@click.command("replay")
@click.option("--pcap", "pcap", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--rules", "rules", type=click.Path(exists=True, dir_okay=False), default=None,
              help="iptables-save output (IPv4) to load into the receiving namespace.")
@click.option("--rules6", "rules6", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ip6tables-save output (IPv6).")
@click.option("--log", "log", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Recorded LOG lines: say whether the ruleset reproduces them.")
@click.option("--iface", default=None, metavar="NAME",
              help="Name of the receiving interface (for -i rules; default: the log's IN=, else the lab's).")
@click.option("--skew", type=float, default=5.0, show_default=True,
              help="Clock difference tolerated between --log and the capture (s).")
@output_options
def replay_cmd(pcap, rules, rules6, log, iface, skew, as_json, output):
    """Replay a capture through an iptables ruleset in private namespaces: what would it log?"""
    from ..errors import UsageProblem
    from ..iplog.replay import replay

    if rules is None and rules6 is None:
        raise UsageProblem("give --rules (iptables-save) and/or --rules6 (ip6tables-save)")
    result = replay(pcap, _read_text(rules), _read_text(rules6), log=log, iface=iface, skew=skew)
    summary = result["summary"]
    table = result["reproduce"] if "reproduce" in result else result["packets"]
    if as_json or output:
        _emit(table, summary, as_json, output, ())
        return
    click.echo(result["packets"].to_string(index=False, na_rep="-", max_rows=200))
    if "reproduce" in result:
        click.echo("recorded log vs replay:")
        click.echo(result["reproduce"].to_string(index=False, na_rep="-", max_rows=200))
    check = summary.pop("reproduce", None)
    for key, value in summary.items():
        click.echo(f"{key:26s} {value}")
    if check is not None:
        counts = ", ".join(f"{k} {v}" for k, v in check.items() if k != "reproduces")
        click.echo(f"the ruleset reproduces the recorded log: {'yes' if check['reproduces'] else 'no'} ({counts})")


COMMANDS = [iplog_cmd, rules_cmd, verify_cmd, replay_cmd]
