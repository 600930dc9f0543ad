"""`tcpwatch pcap FILE...`: resets and retransmissions in captures, agreeing with Zeek and tshark."""

from __future__ import annotations

import os

import click

from ._options import output_options


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--connections", "show_connections", is_flag=True,
              help="Output the connection table (Zeek conn_state, history) instead of the events.")
@click.option("--max-lines", type=click.IntRange(min=0), default=200, show_default=True,
              help="Terminal only: print at most N rows (the files and --json get all).")
@output_options
def pcap(files, show_connections, max_lines, as_json, output):
    """Who reset each connection and what was retransmitted, from pcap/pcapng files (.gz too).

    Events: one per RST (sender, originator/responder, kind: refused, abort, after-fin,
    synack-reply, suspect) and one per retransmission as tshark's tcp.analysis.retransmission
    counts them (retransmission, fast, spurious). --connections gives one row per connection
    with Zeek's conn_state and history. A summary follows; damaged records are reported with
    their packet numbers and byte offsets, never silently skipped.
    """
    # numpy's OpenBLAS otherwise starts a spinning thread per core at import; nothing here uses BLAS
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..pcap.cli_output import run_files

    run_files(files, show_connections=show_connections, max_lines=max_lines, as_json=as_json, output=output)


COMMANDS = [pcap]
