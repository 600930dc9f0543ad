"""Every row of the conn.log Zeek wrote for its own test traces must match tcpwatch's
conn_state and history (and, where Zeek logs them, packets and bytes per side)."""

from __future__ import annotations

import pytest

from conftest import ORACLE

pytestmark = pytest.mark.skipif(not ORACLE.exists(), reason=f"oracle data missing at {ORACLE}")

CONN_LOGS = {
    "pop3_pop3.pcap": "pop3_pop3.conn.log",
    "http_http-to-ssh.pcap": "http_http-to-ssh.conn.log",
    "tls_https-to-http.pcap": "tls_https-to-http.conn.log",
    "ldap_simpleauth.pcap": "ldap_simpleauth.conn.log",
    "ftp_ftp-auth-tls.pcap": "ftp_ftp-auth-tls.conn.log",
}
RST_BEHAVIOR = ["tcp_single-rst.pcap", "tcp_syn-then-rst.pcap", "tcp_syn-then-ack-then-rst.pcap",
                "tcp_syn-then-stuff-then-rst.pcap"]
COUNTED = ("orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "orig_bytes", "resp_bytes")


def zeek_rows(log_name: str) -> list[dict]:
    fields, rows = None, []
    for line in (ORACLE / "baselines" / log_name).read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def by_tuple(rows, key):
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


@pytest.mark.parametrize("trace", sorted(CONN_LOGS))
def test_conn_log_rows_match(trace):
    from tcpwatch import read_pcap

    expected = zeek_rows(CONN_LOGS[trace])
    assert expected, "baseline has rows"
    _events, conns = read_pcap(str(ORACLE / "traces" / trace))
    mine = conns.astype(object).to_dict("records")
    assert len(mine) == len(expected)
    tuple_of = lambda r: (str(r["id.orig_h"]), int(r["id.orig_p"]), str(r["id.resp_h"]), int(r["id.resp_p"]))  # noqa: E731
    mine_tuple = lambda r: (r["orig_h"], int(r["orig_p"]), r["resp_h"], int(r["resp_p"]))  # noqa: E731
    want, got = by_tuple(expected, tuple_of), by_tuple(mine, mine_tuple)
    assert set(want) == set(got)
    for key, rows in want.items():
        # Zeek logs a tuple's rows when it removes them; within one tuple the order is start order
        assert [(r["conn_state"], r["history"]) for r in rows] == [(r["conn_state"], r["history"]) for r in got[key]]
        for z, m in zip(rows, got[key]):
            assert {c: int(z[c]) for c in COUNTED} == {c: int(m[c]) for c in COUNTED}, key


def test_conn_state_rst_behavior_lines():
    from tcpwatch import read_pcap

    lines = [ln for ln in (ORACLE / "baselines" / "conn_state-RST-behavior.out").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert len(lines) == len(RST_BEHAVIOR)
    for trace, line in zip(RST_BEHAVIOR, lines):
        history, state = [x.strip() for x in line.split(",")]
        _events, conns = read_pcap(str(ORACLE / "traces" / trace))
        assert conns[["history", "conn_state"]].astype(str).values.tolist() == [[history, state]], trace
