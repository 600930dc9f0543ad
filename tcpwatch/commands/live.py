"""Live commands: `tcpwatch resets` and `tcpwatch doctor`."""

from __future__ import annotations

import sys

import click

from ._options import capture_options, count_options, filter_options, output_options


@click.command()
@capture_options
@filter_options
@output_options
@click.option("--no-conntrack", is_flag=True, help="Do not join events with their conntrack entries.")
@click.option("--no-netdev", is_flag=True,
              help="Do not watch RSTs on devices (cheaper; resets netfilter sends are then not seen).")
@count_options
def resets(duration, buffer_mb, transport, ports, hosts, netns, direction, as_json, output, no_conntrack,
           no_netdev, count, interval):
    """Show every TCP reset this host sends or receives, with who sent it and why.

    Two lines per reset as it happens (what happened; the likely cause with its evidence: which
    layer sent it, the conntrack entry, the packet it answered), then a summary (counts by kind,
    reason, cause, origin, port, peer, and events lost). Needs root.
    """
    from ..live.capture import Capture
    from ..live.filters import Filters
    from ..live.pipeline import Enrichment
    from ..live.session import Outputs, run

    filters = Filters.parse(ports, hosts, netns, direction)
    groups = ("resets", "giveup") if no_netdev else ("resets", "netdev", "giveup")
    if count:
        from ..live.counting import run_count_command

        cap = Capture(filters, buffer_mb=buffer_mb, transport=transport, groups=groups, count=True)
        run_count_command(cap, duration, interval, as_json, output)
        return
    cap = Capture(filters, buffer_mb=buffer_mb, transport=transport, groups=groups, origins=True)
    stage = Enrichment(conntrack=not no_conntrack, watch_netns=filters.netns)
    run(cap, duration, Outputs(as_json=as_json, output=output), stage=stage)


@click.command()
def doctor():
    """List every prerequisite of live capture as ok/missing, with the fix for each."""
    from ..live.doctor import all_checks

    failed = 0
    for check, required in all_checks():
        mark = "ok     " if check.ok else "missing"
        click.echo(f"{mark} {check.name:<32} {check.detail}")
        if not check.ok:
            if check.fix:
                click.echo(f"        {'':<32} fix: {check.fix}")
            failed += required
    sys.exit(2 if failed else 0)


COMMANDS = [resets, doctor]
