"""The `tcpwatch` command: a thin click group. Each subcommand lives in tcpwatch/commands/.

Commands are discovered from that package, so adding one means adding a module with a
`COMMANDS` list; no logic lives here beyond turning TcpwatchError into one line and an exit code.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from . import __version__
from .errors import TcpwatchError


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TcpwatchError as err:
            click.echo(f"tcpwatch: {err.one_line()}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("tcpwatch: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(0)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tcpwatch")
def cli():
    """Who reset this TCP connection, and why; what is being retransmitted.

    Live from the kernel (BPF tracepoints), or offline from pcap captures and iptables LOG lines.
    Every source yields the same event schema; every command can write JSON Lines, CSV or Parquet.
    """


def _load_commands() -> None:
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_load_commands()


def main() -> None:
    cli(prog_name="tcpwatch")


if __name__ == "__main__":
    main()
