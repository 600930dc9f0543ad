"""Retransmit decoding offline: tcp_retransmit_skb of three layouts compiled with gcc, the
retransmit kind from TCP flags, the new columns of a decoded batch."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from tcpwatch.live.decode import Names, decode, retransmit_kind
from tcpwatch.live.header import constants, event_dtype
from tcpwatch.live.tracefs import parse_format
from tp_harness import read_record

FORMATS = Path(__file__).parent / "fixtures" / "formats"

READ_RETRANSMIT = """
    TW_ADDRS(tcp_retransmit_skb, a, &e, 0);
    e.state = TPH(tcp_retransmit_skb, state) ? TPF(tcp_retransmit_skb, state, a) : 99;
    e.err = (__u32)TPF(tcp_retransmit_skb, err, a);
"""


@pytest.mark.parametrize("kernel", ["6.18", "6.1", "4.15"])
def test_every_retransmit_layout_reads(tmp_path, kernel):
    f = parse_format((FORMATS / kernel / "tcp_retransmit_skb").read_text())
    rec = bytearray(f.size)

    def put(name, data):
        if name in f.fields:
            rec[f.fields[name].offset:f.fields[name].offset + len(data)] = data

    put("sport", struct.pack("<H", 40000))
    put("dport", struct.pack("<H", 8101))
    put("family", struct.pack("<H", socket.AF_INET))
    put("saddr", socket.inet_aton("198.18.0.1"))
    put("daddr", socket.inet_aton("198.18.0.2"))
    put("saddr_v6", socket.inet_pton(socket.AF_INET6, "::ffff:198.18.0.1"))
    put("daddr_v6", socket.inet_pton(socket.AF_INET6, "::ffff:198.18.0.2"))
    put("state", struct.pack("<i", 1))
    put("err", struct.pack("<i", -16))
    e = read_record(tmp_path, f, bytes(rec), READ_RETRANSMIT)
    assert (e["family"], bytes(e["saddr"][:4]), bytes(e["daddr"][:4])) == (
        4, socket.inet_aton("198.18.0.1"), socket.inet_aton("198.18.0.2"))
    assert (e["sport"], e["dport"]) == (40000, 8101)
    assert e["state"] == (99 if kernel == "4.15" else 1)           # no state field: the socket's is read
    assert np.int32(e["err"].view(np.int32)) == (-16 if kernel == "6.18" else 0)


def test_retransmit_kind_from_flags():
    assert [retransmit_kind(b) for b in (0x02, 0x12, 0x11, 0x01, 0x18, 0x10, 0)] == [
        "syn", "synack", "fin", "fin", "data", "data", None]


def test_decode_retransmit_and_state_change_columns():
    c = constants()
    rec = np.zeros(3, dtype=event_dtype())
    rec["ts_ns"] = [1, 2, 3]
    rec["kind"] = [c["TW_KIND_RETRANSMIT"], c["TW_KIND_STATE_CHANGE"], c["TW_KIND_RESET_SENT"]]
    rec["family"] = 4
    rec["seq"] = [123456, 7, 7]
    rec["tcpflags"] = [0x18, 0, 0x14]
    rec["oldstate"] = [0, 1, 1]
    rec["state"] = [1, 7, 7]
    rec["err"] = [np.uint32(2**32 - 16), 110, 5]
    rec["pid"] = [42, 43, 44]
    rec["flags"] = [c["TW_F_OWNER_TASK"] | c["TW_F_OWNER_RECORDED"] | c["TW_F_SOFTIRQ"], c["TW_F_OWNER_TASK"],
                    c["TW_F_SOFTIRQ"]]
    names = Names(states={1: "ESTABLISHED", 7: "CLOSE"}, reasons={})
    retx, change, reset = decode(rec.tobytes(), names, 0.0).to_dict("records")
    assert (retx["retransmit"], retx["seq"], retx["tcp_flags"], retx["err"]) == ("data", 123456, "P.", -16)
    assert (retx["pid"], retx["owner_from"], retx["old_state"]) == (42, "recorded", None)
    assert (change["old_state"], change["err"], change["owner_from"], change["seq"]) == ("ESTABLISHED", 110, "task", None)
    assert (reset["retransmit"], reset["err"], reset["pid"], reset["owner_from"]) == (None, None, None, None)
