"""Shared fixtures. Live tests need root, BPF and namespaces; under TCPWATCH_REQUIRE_LIVE=1
(set by .ci/run) a live test that cannot run fails instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ORACLE = SHARED / "oracle" / "zeek"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REQUIRE_LIVE = os.environ.get("TCPWATCH_REQUIRE_LIVE") == "1"


def live_unavailable() -> str | None:
    """Why live tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip"):
        return "iproute2 missing"
    if not (Path("/sys/kernel/tracing/events").exists() or Path("/sys/kernel/debug/tracing/events").exists()):
        return "tracefs not mounted"
    try:
        import bcc  # noqa: F401
    except Exception as err:  # pragma: no cover
        return f"bcc not importable: {err}"
    return None


def need_live() -> None:
    why = live_unavailable()
    if why:
        if REQUIRE_LIVE:
            pytest.fail(f"live test cannot run: {why} (TCPWATCH_REQUIRE_LIVE=1)")
        pytest.skip(f"live test cannot run: {why}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("live"):
            item.fixturenames.insert(0, "_live_gate")


@pytest.fixture
def _live_gate():
    need_live()


@pytest.fixture
def lab():
    """A fresh two-namespace lab (client/server over veth), always deleted."""
    need_live()
    from tcpwatch.lab import Lab

    with Lab(prefix="twtest") as made:
        yield made


def run_cli(*args: str, input: str | None = None, timeout: float = 120, env: dict | None = None):
    """Run the real `tcpwatch` entry point in a subprocess (exit codes and stderr as a user sees them)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "tcpwatch.cli", *args], capture_output=True, text=True,
                          input=input, timeout=timeout, env=full_env, cwd=str(ROOT))
