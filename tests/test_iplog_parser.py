"""iptables LOG parser: fields, envelopes, bad lines, engines agreeing, CLI."""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import json
import os
import shutil

import pandas as pd
import pytest

from conftest import FIXTURES, run_cli
from tcpwatch.iplog.api import core, parse_buffer, parse_iptables_log

MIXED = FIXTURES / "iplog" / "mixed.log"
JOURNAL = FIXTURES / "iplog" / "journal.json"
ISSUE_LINE = ("Apr 26 15:27:36 vb kernel: [drds] IN= OUT=eth0 SRC=10.0.186.75 DST=10.0.175.109 LEN=40 TOS=0x00 "
              "PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=8182 DPT=9366 SEQ=0 ACK=1747027778 WINDOW=0 RES=0x00 ACK RST URGP=0")
ENGINES = ["python"] + (["c"] if core() is not None else [])


def _write(tmp_path, text, name="log"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("engine", ENGINES)
def test_issue_line_every_field(tmp_path, engine):
    path = _write(tmp_path, ISSUE_LINE + "\n")
    os.utime(path, (calendar.timegm((2024, 6, 1, 0, 0, 0)),) * 2)
    frame = parse_iptables_log(path, engine=engine)[0]
    row = frame.iloc[0]
    assert len(frame) == 1
    assert row["ts"] == calendar.timegm((2024, 4, 26, 15, 27, 36))   # machine is UTC; year from mtime
    assert (row["source"], row["kind"], row["family"]) == ("iptables-log", "reset-sent", 4)
    assert (row["saddr"], row["sport"], row["daddr"], row["dport"]) == ("10.0.186.75", 8182, "10.0.175.109", 9366)
    assert (row["prefix"], row["chain"], row["host"], row["in"], row["out"]) == ("[drds] ", "OUTPUT", "vb", "", "eth0")
    assert (row["len"], row["tos"], row["prec"], row["ttl"], row["id"], row["df"]) == (40, 0, 0, 64, 0, True)
    assert (row["seq"], row["ack"], row["window"], row["res"], row["urgp"]) == (0, 1747027778, 0, 0, 0)
    assert (row["tcp_flags"], row["tcp_flag_bits"], row["proto"]) == ("ACK RST", 0x14, "TCP")
    assert "mf" not in frame.columns and pd.isna(row["uptime"]) and row["envelope"] == "syslog"


@pytest.mark.parametrize("engine", ENGINES)
def test_mixed_formats_and_bad_lines(engine):
    frame, report = parse_iptables_log(str(MIXED), engine=engine)
    assert (report.lines, report.log_lines, report.other_lines) == (21, 13, 1)
    expected = {15: "missing", 16: "300", 17: "10.0.186.999", 18: "IN=", 19: "not closed", 20: "timestamp",
                21: "envelope"}
    assert [e.lineno for e in report.errors] == list(expected)
    assert all(expected[e.lineno] in e.reason for e in report.errors), [e.reason for e in report.errors]
    assert len(report.errors) == 7 and 15 not in set(frame["lineno"])   # never half-parsed
    by = frame.set_index("lineno")
    assert by.loc[4, "ts"] == pytest.approx(calendar.timegm((2024, 4, 26, 13, 27, 36)) + 0.123456)
    assert by.loc[5, "envelope"] == "rfc5424" and by.loc[5, "level"] == 4
    assert (by.loc[5, "saddr"], by.loc[5, "src"]) == ("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001")
    assert (by.loc[5, "macsrc"], by.loc[5, "macproto"], by.loc[5, "tcp_opt"]) == \
        ("52:54:00:65:43:21", 0x86DD, "0101080A00000001000000020000")
    assert (by.loc[6, "chain"], by.loc[6, "physin"], by.loc[6, "frag"], by.loc[6, "mf"]) == ("FORWARD", "veth1", 185, True)
    assert by.loc[6, "prefix"] == "fw *BLOCK*: " and by.loc[6, "ts"] == calendar.timegm((2024, 4, 26, 15, 27, 36))
    assert (by.loc[7, "uptime"], by.loc[7, "mark"], by.loc[7, "uid"]) == (1234.56789, 0x1F, 0)
    assert (by.loc[7, "inner_src"], by.loc[7, "inner_udp_len"], by.loc[7, "inner_df"]) == ("127.0.0.1", 40, True)
    assert pd.isna(by.loc[7, "ts"]) and report.uptime_only == 3
    assert (by.loc[8, "ip6_frag"], by.loc[8, "ip6_frag_id"], by.loc[8, "ip6_mf"]) == (1232, 0xABCD, True)
    assert (by.loc[8, "envelope"], by.loc[8, "uptime"]) == ("kmsg", 5.678901)
    assert (by.loc[9, "mtu"], by.loc[9, "inner_incomplete"], by.loc[9, "inner_proto"]) == (1280, 8, "TCP")
    assert (by.loc[10, "tos"], by.loc[10, "mark"], by.loc[10, "prefix"]) == (0x10, 0, "[ulog] ")
    assert by.loc[11, "truncated"] and by.loc[11, "prefix"] == "[ulog]  "
    assert (by.loc[12, "proto"], by.loc[12, "arp_opcode"], by.loc[12, "arp_ipdst"]) == ("ARP", 1, "10.0.0.2")
    assert (by.loc[13, "spi"], by.loc[14, "proto"], by.loc[14, "mark"]) == (0x1234ABCD, "47", 0x10)


def test_engines_agree_on_every_fixture():
    if len(ENGINES) < 2:
        pytest.skip("C tokenizer not built")
    for path in (MIXED, JOURNAL):
        c, rc = parse_iptables_log(str(path), engine="c")
        p, rp = parse_iptables_log(str(path), engine="python")
        pd.testing.assert_frame_equal(c, p)
        assert [e.lineno for e in rc.errors] == [e.lineno for e in rp.errors]


@pytest.mark.skipif(core() is None, reason="C tokenizer not built")
def test_parts_join_like_one_pass():
    """Cut into parts (one thread each), the buffer gives the rows, values, categories, errors and
    line numbers of the reference parser, also when the parts hold different columns and values
    and lines between them give no row."""
    blocks = []
    for i in range(40):   # parts differ: prefixes, interfaces, protocols, ICMP quotes only late
        line = ISSUE_LINE.replace("[drds] ", f"[p{i % 7}] ").replace("OUT=eth0", f"OUT=eth{i // 10}")
        if i >= 30:
            line = MIXED.read_text().splitlines()[6]
        blocks.append(line + "\n" + ("not a LOG line\n" if i % 3 == 0 else "") +
                      (ISSUE_LINE.replace("SPT=8182", "SPT=99999") + "\n" if i % 11 == 5 else ""))
    data = "".join(blocks).encode()
    ref_arrays, ref_rows, ref_errors, ref_lines, ref_other = parse_buffer(data, 10, 2024, 12, "python")
    assert ref_errors and ref_other and ref_rows < ref_lines
    one_pass_errors = parse_buffer(data, 10, 2024, 12, "c", parts=1)[2]
    assert [e[:2] for e in one_pass_errors] == [e[:2] for e in ref_errors]   # the engines word reasons apart
    for parts in (1, 2, 3, 7, 64):
        arrays, rows, errors, lines, other = parse_buffer(data, 10, 2024, 12, "c", parts=parts)
        assert (rows, errors, lines, other) == (ref_rows, one_pass_errors, ref_lines, ref_other), parts
        assert set(arrays) == set(ref_arrays), parts
        for name, ref in ref_arrays.items():
            pd.testing.assert_series_equal(pd.Series(arrays[name]), pd.Series(ref), obj=f"{name} in {parts} parts")


@pytest.mark.parametrize("engine", ENGINES)
def test_non_ascii_prefixes(tmp_path, engine):
    """Valid UTF-8 is kept as it is; invalid bytes become U+FFFD (the columns are Arrow strings)."""
    good = ISSUE_LINE.replace("[drds] ", "[drös] ").encode()
    bad = ISSUE_LINE.replace("[drds] ", "[dr\udcffs] ").encode("utf-8", "surrogateescape")
    path = tmp_path / "log"
    path.write_bytes(good + b"\n" + bad + b"\n")
    frame, report = parse_iptables_log(str(path), engine=engine)
    assert list(frame["prefix"]) == ["[drös] ", "[dr\ufffds] "] and not report.errors
    path.write_bytes(good + b"\n")
    assert list(parse_iptables_log(str(path), engine=engine)[0]["prefix"]) == ["[drös] "]


def test_several_files_keep_column_types():
    """Low-cardinality text columns are Categoricals; joining files keeps them (union of categories)."""
    both = parse_iptables_log([str(MIXED), str(JOURNAL)])[0]
    alone = [parse_iptables_log(str(p))[0] for p in (MIXED, JOURNAL)]
    assert "mac" not in alone[1].columns   # a column only one file has: missing in the other's rows

    def values(frame, name):
        return frame[name].astype(object).tolist() if name in frame.columns else [None] * len(frame)

    for name in ("prefix", "chain", "host", "envelope", "in", "out", "proto", "mac", "tcp_flags"):
        assert isinstance(both[name].dtype, pd.CategoricalDtype), name
        assert list(both[name].cat.categories) == sorted({v for f in alone for v in values(f, name) if isinstance(v, str)})
        got = [None if pd.isna(v) else v for v in values(both, name)]
        assert got == [None if pd.isna(v) else v for f in alone for v in values(f, name)], name
    assert both["saddr"].dtype == "string" and both["kind"].dtype == "string"   # schema columns keep the schema's


def test_journal_json(tmp_path):
    frame, report = parse_iptables_log(str(JOURNAL))
    assert (report.lines, report.log_lines, report.other_lines, len(report.errors)) == (3, 2, 1, 0)
    first = frame.iloc[0]
    assert (first["envelope"], first["host"], first["level"]) == ("journal-json", "vb", 4)
    assert first["ts"] == pytest.approx(1714138056.123456)
    assert (frame.iloc[1]["prefix"], frame.iloc[1]["proto"]) == ("[x] ", "50")   # byte-array MESSAGE


def test_year_inference_and_boot_time(tmp_path):
    text = ("Dec 31 23:59:59 h kernel: " + ISSUE_LINE.split("kernel: ")[1] + "\n" +
            "Jan  2 00:00:01 h kernel: " + ISSUE_LINE.split("kernel: ")[1] + "\n" +
            "[  100.500000] " + ISSUE_LINE.split("kernel: ")[1] + "\n")
    path = _write(tmp_path, text)
    os.utime(path, (calendar.timegm((2025, 1, 3, 0, 0, 0)),) * 2)
    frame = parse_iptables_log(path, boot=1_000_000.0)[0]
    assert list(frame["ts"]) == [calendar.timegm((2024, 12, 31, 23, 59, 59)),
                                 calendar.timegm((2025, 1, 2, 0, 0, 1)), 1_000_100.5]
    assert parse_iptables_log(path, year=2020)[0]["ts"].iloc[1] == calendar.timegm((2020, 1, 2, 0, 0, 1))


def test_gzip_and_stdin(tmp_path):
    gz = tmp_path / "log.1.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(MIXED.read_text())
    assert len(parse_iptables_log(str(gz))[0]) == 13
    res = run_cli("iplog", "--json", "-", input=ISSUE_LINE + "\nnot a log line\n")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert len(lines) == 2 and lines[0]["kind"] == "reset-sent" and lines[1]["summary"]["other_lines"] == 1


def test_cli_reports_bad_lines_and_writes_parquet(tmp_path):
    out = tmp_path / "events.parquet"
    res = run_cli("iplog", str(MIXED), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"{MIXED}:15: bad LOG line" in res.stderr and "13 LOG lines, 7 bad LOG lines" in res.stderr
    from tcpwatch.sinks import read_back
    back = read_back(str(out))
    assert len(back) == 13 and set(back["source"]) == {"iptables-log"}
    res = run_cli("iplog", str(tmp_path / "missing.log"))
    assert res.returncode == 1 and res.stderr.startswith("tcpwatch: cannot read") and "Traceback" not in res.stderr


def test_follow_survives_rotation(tmp_path):
    from tcpwatch.iplog.api import follow

    path = tmp_path / "fw.log"
    path.write_text("old line\n")
    calls = {"n": 0}

    def write():
        calls["n"] += 1   # call 1 happens before follow opens the file (it starts at the end, like tail -F)
        if calls["n"] == 2:
            with open(path, "a") as fh:
                fh.write(ISSUE_LINE + "\n")
        elif calls["n"] == 3:
            shutil.move(path, str(path) + ".1")
            path.write_text(ISSUE_LINE.replace("SPT=8182", "SPT=1") + "\n")

    seen = []
    it = follow([str(path)], poll=0.05, stop=lambda: (write(), len(seen) >= 2 or calls["n"] > 50)[1])
    for frame, _report in it:
        seen.extend(frame["sport"].tolist())
    assert seen == [8182, 1]


def test_parquet_batches_with_more_categories_than_the_first(tmp_path):
    """`iplog --follow --output x.parquet` writes batch after batch: a later batch whose
    categorical column holds more distinct values than the first must still fit the file."""
    import pandas as pd

    from tcpwatch.events import conform
    from tcpwatch.sinks import open_file_sink, read_back

    path = str(tmp_path / "log.parquet")
    sink = open_file_sink(path)
    sink.write(conform(pd.DataFrame({"ts": [1.0], "prefix": pd.Categorical(["[a] "])})))
    sink.write(conform(pd.DataFrame({"ts": [2.0] * 300, "prefix": pd.Categorical([f"[p{i}] " for i in range(300)])})))
    sink.close()
    back = read_back(path)
    assert len(back) == 301 and list(back["prefix"].iloc[[0, -1]]) == ["[a] ", "[p299] "]
