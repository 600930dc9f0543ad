"""Traffic scenarios played in a namespace lab: the demo's script and the live tests' traffic.

One module per area (resets, lifecycle, ...); each exports a SCENARIOS list of Scenario. The
registry below is what `tcpwatch demo` plays, in order.
"""

from __future__ import annotations

from .base import CLIENT_COMM, SERVER_COMM, Played, Scenario
from .causes import SCENARIOS as CAUSE_SCENARIOS
from .resets import SCENARIOS as RESET_SCENARIOS
from .resets import linger_zero, refused, unread_data

SCENARIOS: list[Scenario] = [*RESET_SCENARIOS, *CAUSE_SCENARIOS]

__all__ = ["CLIENT_COMM", "SERVER_COMM", "Played", "Scenario", "SCENARIOS", "linger_zero", "refused", "unread_data"]
