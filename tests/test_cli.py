"""The command line itself: help without heavy imports, generated docs up to date, errors."""

import subprocess
import sys

from conftest import ROOT, run_cli


def test_help_imports_nothing_heavy():
    code = ("import sys; from tcpwatch.cli import cli; "
            "sys.argv=['tcpwatch','--help']\n"
            "try:\n    cli()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('bcc', 'pandas', 'scapy', 'pyroute2', 'pyarrow', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), check=True)
    assert "HEAVY []" in out.stdout, out.stdout
    assert "resets" in out.stdout and "doctor" in out.stdout


def test_docs_match_help():
    generated = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py")], capture_output=True,
                               text=True, check=True, cwd=str(ROOT)).stdout
    assert (ROOT / "docs" / "cli.md").read_text() == generated, "run `make docs`"


def test_bad_usage_is_one_line_exit_2():
    proc = run_cli("resets", "--host", "not-an-address", "--duration", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not-an-address" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("resets", "--output", "x.txt", "--duration", "1")
    assert proc.returncode == 2 and ".jsonl, .csv or .parquet" in proc.stderr
