"""Live commands: `tcpwatch retrans` and `tcpwatch watch`."""

from __future__ import annotations

import click

from ._options import capture_options, filter_options, output_options


def count_options(func):
    """--count and --interval: per-flow totals counted in the kernel."""
    func = click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
                        help="With --count: print the per-flow totals every N seconds.")(func)
    return click.option("--count", "count", is_flag=True,
                        help="Count per flow in the kernel instead of one line per event "
                             "(for hosts where per-event output would be too much).")(func)


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
    from ..live.session import Outputs
    from ..live.watching import run_watch

    run_watch(cap, duration, Outputs(as_json=as_json, output=output), retransmits_only=retransmits_only)


COMMANDS = [retrans, watch]
