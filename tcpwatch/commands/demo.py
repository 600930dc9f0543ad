"""`tcpwatch demo`."""

import click


@click.command()
def demo():
    """Play every reset scenario in a private namespace lab and capture it live.

    Builds two network namespaces joined by veth, plays each scenario (refused connection,
    close with unread data, SO_LINGER 0), shows `tcpwatch resets` capturing them, and removes
    the lab on every exit path. Needs root.
    """
    from ..demo import demo as run_demo

    run_demo()


COMMANDS = [demo]
