"""Option bundles shared by several commands (sqlite-utils style)."""

from __future__ import annotations


import click


def _stack(*decorators):
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def output_options(func):
    """--json and --output FILE (.jsonl, .csv, .parquet)."""
    return _stack(
        click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout, then a {\"summary\": ...} line."),
        click.option(
            "--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
            help="Also write events to FILE: .jsonl, .csv or .parquet by extension.",
        ),
    )(func)


def filter_options(func):
    """Kernel-side filters shared by the live commands."""
    return _stack(
        click.option("--port", "ports", type=click.IntRange(0, 65535), multiple=True,
                     help="Either side's port (repeatable)."),
        click.option("--host", "hosts", multiple=True, metavar="ADDR[/PREFIX]",
                     help="Local or remote address or prefix, IPv4 or IPv6 (repeatable)."),
        click.option("--netns", "netns", multiple=True, metavar="INODE|NAME",
                     help="Network namespace: inode number or a name from `ip netns` (repeatable)."),
        click.option("--direction", type=click.Choice(["sent", "received"]), default=None,
                     help="Only resets this host sent, or only those it received."),
    )(func)


def count_options(func):
    """--count and --interval: per-flow totals counted in the kernel."""
    return _stack(
        click.option("--count", "count", is_flag=True,
                     help="Count per flow in the kernel instead of one line per event "
                          "(for hosts where per-event output would be too much)."),
        click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
                     help="With --count: print the per-flow totals every N seconds."),
    )(func)


def capture_options(func):
    return _stack(
        click.option("--duration", "-d", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Stop after N seconds (default: until Ctrl-C)."),
        click.option("--buffer-mb", type=click.IntRange(1, 1024), default=4, show_default=True,
                     help="Ring buffer size in MiB (rounded up to a power of two)."),
        click.option("--transport", type=click.Choice(["auto", "ringbuf", "perf"]), default="auto",
                     show_default=True, help="Kernel-to-user channel; perf is the fallback before Linux 5.8."),
    )(func)


__all__ = ["output_options", "filter_options", "capture_options", "count_options"]
