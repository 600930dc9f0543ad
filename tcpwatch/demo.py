"""`tcpwatch demo`: a private namespace lab, every scenario played, captured live, lab removed."""

from __future__ import annotations

import sys
import threading
from typing import IO

from .lab import Lab
from .live.capture import Capture
from .live.filters import Filters
from .live.pipeline import Enrichment
from .live.session import Outputs, run
from .scenarios import SCENARIOS


def _play_all(lab: Lab, cap: Capture, err: IO[str], errors: list) -> None:
    try:
        for scenario in SCENARIOS:
            err.write(f"tcpwatch demo: playing {scenario.name}: {scenario.title}\n")
            err.flush()
            scenario.play(lab)
    except Exception as exc:  # re-raised once the capture has stopped cleanly
        errors.append(exc)
    finally:
        threading.Timer(1.0, cap.stop).start()  # let the last events drain first


def demo(out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> dict:
    with Lab(prefix="twdemo") as lab:
        err.write(f"tcpwatch demo: lab {lab.client.name} ({lab.client.v4}) <-> "
                  f"{lab.server.name} ({lab.server.v4})\n")
        filters = Filters.parse(netns=[lab.client.name, lab.server.name])
        cap = Capture(filters, groups=("resets", "netdev", "giveup"), origins=True)
        stage = Enrichment(watch_netns=filters.netns)
        errors: list = []
        player = threading.Thread(target=_play_all, args=(lab, cap, err, errors), daemon=True)
        try:
            summary = run(cap, duration=60, outputs=Outputs(stdout=out, stderr=err), on_started=player.start,
                          stage=stage)
        finally:
            if player.is_alive():
                player.join(30)
        if errors:
            raise errors[0]
        return summary
