"""`tcpwatch pcap` as a user runs it: exit codes, one-line errors, --json, --connections, --output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ORACLE, ROOT, run_cli

POP3 = str(ORACLE / "traces" / "pop3_pop3.pcap")


def test_terminal_output_has_events_and_summary():
    res = run_cli("pcap", POP3)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(" SENT ") == 6 and res.stdout.count(" RETX ") == 5
    assert "conn_state: REJ: 6, SF: 5" in res.stdout
    assert "resets_by: responder/refused: 6" in res.stdout


def test_json_events_then_summary():
    res = run_cli("pcap", "--json", POP3)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    events, summary = rows[:-1], rows[-1]["summary"]
    assert {r["kind"] for r in events} == {"reset-sent", "retransmit"}
    assert all(r["source"] == "pcap" for r in events)
    assert summary["resets"] == 6 and summary["retransmissions"] == 5 and summary["connections"] == 11
    refused = [r for r in events if r["kind"] == "reset-sent"]
    assert {(r["saddr"], r["rst_by"], r["rst_kind"], r["state"]) for r in refused} == {
        ("212.227.15.188", "responder", "refused", "REJ"), ("212.227.15.171", "responder", "refused", "REJ")}


def test_connections_json():
    res = run_cli("pcap", "--json", "--connections", str(ORACLE / "traces" / "http_http-to-ssh.pcap"))
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["conn_state"] == "RSTR" and rows[0]["history"] == "ShADadFr"
    assert "summary" in rows[-1]


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl"])
def test_output_file_round_trip(tmp_path, ext):
    from tcpwatch.sinks import read_back

    out = tmp_path / f"events.{ext}"
    res = run_cli("pcap", "--output", str(out), POP3)
    assert res.returncode == 0, res.stderr
    back = read_back(str(out))
    assert len(back) == 11 and set(back["kind"]) == {"reset-sent", "retransmit"}


def test_bad_input_is_one_line_without_traceback(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"GET / HTTP/1.1\r\n\r\n" * 4)
    for path in (str(junk), str(tmp_path / "missing.pcap")):
        res = run_cli("pcap", path)
        assert res.returncode == 1
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tcpwatch: ") and "Traceback" not in res.stderr


def test_damaged_records_are_listed_on_stderr(tmp_path):
    data = (ROOT / "pcaps" / "linger0.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-20])
    res = run_cli("pcap", str(cut))
    assert res.returncode == 0
    assert "skipped packet #6 at byte" in res.stderr and "truncated record" in res.stderr
    assert "damaged_records: 1" in res.stdout


def test_python_api_returns_two_frames():
    import tcpwatch

    events, conns = tcpwatch.read_pcap(POP3)
    assert len(events) == 11 and len(conns) == 11
    assert str(events["saddr"].dtype) == "string" and "rst_kind" in events.columns


def test_progress_bar_forced_on_stderr_only():
    res = run_cli("pcap", "--max-lines", "0", POP3, env={"TCPWATCH_PROGRESS": "1"})
    assert res.returncode == 0, res.stderr
    assert "pop3_pop3.pcap: [" in res.stderr and res.stderr.rstrip().endswith("100%")
    assert "100%" not in res.stdout and "resets=6" in res.stdout


def test_no_progress_bar_when_stderr_is_not_a_terminal():
    res = run_cli("pcap", "--max-lines", "0", POP3, env={"TCPWATCH_PROGRESS": ""})
    assert res.returncode == 0 and res.stderr == ""


def test_terminal_summary_does_not_import_pandas():
    # the speed path: the summary and the damage report come from the core's records directly
    code = ("import sys; from tcpwatch.cli import main; sys.argv = ['tcpwatch', 'pcap', '--max-lines', '0', "
            f"{POP3!r}]\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('pandas', 'pyarrow', 'scapy') if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))
    assert "resets=6" in res.stdout and "HEAVY []" in res.stdout, res.stdout + res.stderr
