"""live/memory.py: freed memory stays for the next batch. Each case runs in a fresh interpreter,
since the settings hold for a process's life, and counts the page faults of a second allocation
as large as a first one that was freed."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource, sys, time
tune = sys.argv[1] == "tune"
if tune:
    from tcpwatch.live.memory import keep_freed_memory
    missed = keep_freed_memory()
else:
    missed = None
import polars as pl

def faults(make):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    make()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def frame():
    return pl.Series(range(8_000_000), dtype=pl.Int64) * 3   # 64 MB in polars' allocator

def text():
    return b"x" * (16 << 20)    # a batch's text: one large block from malloc

result = {"missed": missed}
for name, make in (("polars", frame), ("malloc", text)):
    kept = make()
    del kept
    time.sleep(1.2)     # longer than polars' own purge delay (0.5 s)
    result[name] = faults(make)
print(json.dumps(result))
"""


def _run(mode: str) -> dict:
    # a capture earlier in this process set polars' allocator settings in the environment
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True,
                         env=env)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def runs():
    return {"tune": _run("tune"), "default": _run("default")}


def test_tuned_capture_reuses_freed_pages(runs):
    tuned = runs["tune"]
    assert tuned["missed"] == []
    # 64 MB is 16k pages, 16 MB 4k: reused pages fault at most a few hundred times
    assert tuned["polars"] < 2000, tuned
    assert tuned["malloc"] < 500, tuned


def test_defaults_fault_freed_pages_in_again(runs):
    """The case the settings are for: without them the same allocations fault again."""
    default = runs["default"]
    assert default["polars"] > 8000, default
    assert default["malloc"] > 2000, default


def test_polars_imported_first_is_reported():
    code = ("import polars, json\nfrom tcpwatch.live.memory import keep_freed_memory\n"
            "print(json.dumps(keep_freed_memory()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    missed = json.loads(out.stdout)
    assert len(missed) == 1 and "polars already imported" in missed[0]
