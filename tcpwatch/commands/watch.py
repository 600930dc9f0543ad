"""Live commands: `tcpwatch retrans` and `tcpwatch watch`."""

from __future__ import annotations

import click

from ._options import capture_options, count_options, filter_options, output_options


@click.command()
@capture_options
@filter_options
@output_options
@count_options
def retrans(duration, buffer_mb, transport, ports, hosts, netns, direction, as_json, output, count, interval):
    """Show every TCP retransmission: which connection, which segment (SYN, SYN/ACK, data, FIN,
    with its sequence number and flags), and the process that owns the socket.

    One line per retransmit, then per connection: how many, first and last, and the gaps
    between them (the retransmission backoff). Needs root.
    """
    _run(("retrans",), duration, buffer_mb, transport, ports, hosts, netns, direction, as_json, output, count,
         interval, retransmits_only=True)


@click.command()
@capture_options
@filter_options
@output_options
def watch(duration, buffer_mb, transport, ports, hosts, netns, direction, as_json, output):
    """Resets, retransmits and state changes together, each with its connection id and owner.

    At the end, per connection: its states, who closed first, how it ended (fin, rst-sent,
    rst-received, timeout), how long it lived, its retransmits. Needs root.
    """
    _run(("resets", "retrans", "lifecycle"), duration, buffer_mb, transport, ports, hosts, netns, direction,
         as_json, output, False, None, retransmits_only=False)


def _run(groups, duration, buffer_mb, transport, ports, hosts, netns, direction, as_json, output, count,
         interval, retransmits_only):
    from ..live.capture import Capture
    from ..live.filters import Filters

    filters = Filters.parse(ports, hosts, netns, direction)
    cap = Capture(filters, buffer_mb=buffer_mb, transport=transport, groups=groups, count=count)
    if count:
        from ..live.counting import run_count_command

        run_count_command(cap, duration, interval, as_json, output)
        return
    from ..live.session import Outputs, run
    from ..live.watching import WatchStage

    run(cap, duration, Outputs(as_json=as_json, output=output), stage=WatchStage(retransmits_only))


COMMANDS = [retrans, watch]
