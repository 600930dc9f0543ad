"""`tcpwatch resets` offline parts: format files of both tcp_send_reset layouts, the generated
tracepoint structs (compiled and run with gcc), filters, the event header, decoding."""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tcpwatch.errors import UsageProblem
from tcpwatch.live.decode import Names, decode
from tcpwatch.live.filters import Filters, lpm_key
from tcpwatch.live.header import constants, event_dtype, kind_names
from tcpwatch.live.tracefs import parse_format
from tp_harness import BPF_DIR, read_record

FORMATS = Path(__file__).parent / "fixtures" / "formats"


def fmt(kernel: str, name: str):
    return parse_format((FORMATS / kernel / name).read_text())


def test_new_layout_fields_and_reason_names():
    f = fmt("6.18", "tcp_send_reset")
    assert f.name == "tcp_send_reset"
    assert (f.fields["saddr"].offset, f.fields["saddr"].size) == (32, 28)
    assert f.fields["reason"].ctype == "enum sk_rst_reason"
    assert "sport" not in f.fields and "common_pid" not in f.fields
    reasons = f.names_for("reason")
    assert reasons[1] == "NO_SOCKET" and reasons[11] == "TCP_ABORT_ON_CLOSE"
    # State keys are enum constants: they resolve only through BTF-like values.
    assert f.names_for("state") == {}
    assert f.names_for("state", {"TCP_ESTABLISHED": 1, "TCP_CLOSE": 7})[7] == "TCP_CLOSE"


def test_old_layout_fields_and_no_reason():
    f = fmt("6.1", "tcp_send_reset")
    assert f.has("sport", "dport", "family", "saddr", "daddr", "saddr_v6", "daddr_v6")
    assert f.fields["saddr"].size == 4 and "reason" not in f.fields
    assert f.names_for("reason") == {}
    assert f.names_for("family") == {2: "AF_INET", 10: "AF_INET6"}


def run_harness(tmp_path, f, record: bytes, swap: int = 0):
    return read_record(tmp_path, f, record, f"TW_ADDRS(tcp_send_reset, a, &e, {swap});")


def put(buf: bytearray, f, name: str, data: bytes):
    field = f.fields[name]
    assert len(data) <= field.size
    buf[field.offset:field.offset + len(data)] = data


def sockaddr(family: int, addr: str, port: int) -> bytes:
    if family == 4:
        return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(addr)
    return (struct.pack("<H", socket.AF_INET6) + struct.pack(">H", port) + b"\0" * 4
            + socket.inet_pton(socket.AF_INET6, addr))


@pytest.mark.parametrize("family,src,dst", [(4, "198.18.0.2", "198.18.0.1"), (6, "fd74:7763::2", "fd74:7763::1")])
def test_generated_struct_reads_new_layout(tmp_path, family, src, dst):
    f = fmt("6.18", "tcp_send_reset")
    rec = bytearray(f.size)
    put(rec, f, "saddr", sockaddr(family, src, 9))
    put(rec, f, "daddr", sockaddr(family, dst, 40000))
    e = run_harness(tmp_path, f, bytes(rec))
    n = 4 if family == 4 else 16
    assert e["family"] == family
    assert str(ipaddress.ip_address(bytes(e["saddr"][:n]))) == src
    assert str(ipaddress.ip_address(bytes(e["daddr"][:n]))) == dst
    assert (e["sport"], e["dport"]) == (9, 40000)


@pytest.mark.parametrize("family,src,dst", [(4, "198.18.0.2", "198.18.0.1"), (6, "fd74:7763::2", "fd74:7763::1")])
def test_generated_struct_reads_old_layout(tmp_path, family, src, dst):
    f = fmt("6.1", "tcp_send_reset")
    rec = bytearray(f.size)
    put(rec, f, "sport", struct.pack("<H", 9))      # host order in the old layout
    put(rec, f, "dport", struct.pack("<H", 40000))
    put(rec, f, "family", struct.pack("<H", socket.AF_INET if family == 4 else socket.AF_INET6))
    if family == 4:
        put(rec, f, "saddr", socket.inet_aton(src))
        put(rec, f, "daddr", socket.inet_aton(dst))
    put(rec, f, "saddr_v6", socket.inet_pton(socket.AF_INET6, src if family == 6 else "::ffff:" + src))
    put(rec, f, "daddr_v6", socket.inet_pton(socket.AF_INET6, dst if family == 6 else "::ffff:" + dst))
    e = run_harness(tmp_path, f, bytes(rec), swap=1)   # swap: as for a received reset
    n = 4 if family == 4 else 16
    assert e["family"] == family
    assert str(ipaddress.ip_address(bytes(e["saddr"][:n]))) == dst
    assert str(ipaddress.ip_address(bytes(e["daddr"][:n]))) == src
    assert (e["sport"], e["dport"]) == (40000, 9)


def test_old_layout_without_family_uses_v4_mapped(tmp_path):
    text = (FORMATS / "6.1" / "tcp_send_reset").read_text()
    text = text.replace("\tfield:__u16 family;\toffset:32;\tsize:2;\tsigned:0;\n", "")
    f = parse_format(text)
    assert "family" not in f.fields
    rec = bytearray(f.size)
    put(rec, f, "saddr", socket.inet_aton("198.18.0.2"))
    put(rec, f, "daddr", socket.inet_aton("198.18.0.1"))
    put(rec, f, "saddr_v6", socket.inet_pton(socket.AF_INET6, "::ffff:198.18.0.2"))
    put(rec, f, "daddr_v6", socket.inet_pton(socket.AF_INET6, "::ffff:198.18.0.1"))
    e = run_harness(tmp_path, f, bytes(rec))
    assert e["family"] == 4 and bytes(e["saddr"][:4]) == socket.inet_aton("198.18.0.2")


def test_header_dtype_matches_c_sizeof(tmp_path):
    src = tmp_path / "s.c"
    src.write_text('#include <stdint.h>\n#include <stdio.h>\n#include <stddef.h>\n'
                   'typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;\n'
                   '#include "tcpwatch.h"\nint main(void){printf("%zu %zu %zu\\n", sizeof(struct tw_event),'
                   ' offsetof(struct tw_event, sport), offsetof(struct tw_event, comm)); return 0;}\n')
    subprocess.run(["gcc", f"-I{BPF_DIR}", "-o", str(tmp_path / "s"), str(src)], check=True)
    size, sport, comm = map(int, subprocess.run([str(tmp_path / "s")], capture_output=True, text=True,
                                                check=True).stdout.split())
    dt = event_dtype()
    assert (dt.itemsize, dt.fields["sport"][1], dt.fields["comm"][1]) == (size, sport, comm)
    assert kind_names()[constants()["TW_KIND_RESET_SENT"]] == "reset-sent"


def test_decode_batch():
    dt = event_dtype()
    c = constants()
    rec = np.zeros(3, dtype=dt)
    rec["ts_ns"] = [3_000_000_000, 1_000_000_000, 2_000_000_000]
    rec["kind"] = [c["TW_KIND_RESET_SENT"], c["TW_KIND_RESET_RECEIVED"], c["TW_KIND_RESET_SENT"]]
    rec["family"] = [4, 6, 6]
    rec["saddr"][0][:4] = list(socket.inet_aton("198.18.0.2"))
    rec["saddr"][1] = list(socket.inet_pton(socket.AF_INET6, "fd74:7763::2"))
    rec["saddr"][2] = list(socket.inet_pton(socket.AF_INET6, "::ffff:198.18.0.9"))
    rec["sport"] = [9, 80, 443]
    rec["reason"] = [1, 0, 11]
    rec["state"] = [0, 1, 7]
    rec["flags"] = [c["TW_F_HAS_REASON"], c["TW_F_HAS_STATE"] | c["TW_F_OWNER_TASK"],
                    c["TW_F_HAS_REASON"] | c["TW_F_HAS_STATE"]]
    rec["pid"] = [0, 42, 7]
    rec["comm"] = [b"", b"nginx", b"other"]
    rec["netns"] = [0, 4026531833, 4026531833]
    names = Names(states={1: "ESTABLISHED", 7: "CLOSE"}, reasons={1: "NO_SOCKET", 11: "TCP_ABORT_ON_CLOSE"})
    frame = decode(rec.tobytes(), names, mono_to_epoch=1000.0)
    assert frame["ts"].tolist() == [1001.0, 1002.0, 1003.0]  # sorted by time
    first, second, third = frame.to_dict("records")
    assert (first["kind"], first["family"], first["saddr"], first["sport"]) == ("reset-received", 6, "fd74:7763::2", 80)
    assert (first["state"], first["pid"], first["comm"]) == ("ESTABLISHED", 42, "nginx")
    assert first["reason"] is None
    assert (second["family"], second["saddr"], second["reason"], second["state"]) == (4, "198.18.0.9", "TCP_ABORT_ON_CLOSE", "CLOSE")
    assert second["pid"] is None  # not the owner: never reported
    assert (third["saddr"], third["reason"], third["state"], third["netns"]) == ("198.18.0.2", "NO_SOCKET", None, None)


def test_filters_parse_and_reject():
    f = Filters.parse(ports=["80", 443], hosts=["10.0.0.0/8", "2001:db8::1"], netns=["4026531833"], direction="sent")
    assert f.ports == {80, 443} and f.netns == {4026531833} and f.direction == "sent"
    assert lpm_key(f.hosts[0]) == (8 + 8, bytes([4, 10]) + b"\0" * 15)
    assert lpm_key(f.hosts[1])[0] == 8 + 128
    for bad in (dict(ports=["http"]), dict(ports=[70000]), dict(hosts=["10.0.0.300"]),
                dict(netns=["no-such-ns-xyz"]), dict(netns=["../x"]), dict(direction="both")):
        with pytest.raises(UsageProblem):
            Filters.parse(**bad)


def test_raw_variant_needs_matching_arguments_and_offsets():
    from tcpwatch.live.probes import PROBES, raw_usable

    state = next(p for p in PROBES if p.function == "tw_owner_state")
    offsets = {"SK_PROTOCOL": 16, "INET_SPORT": 782, "SK_ENDS": 0, "SK_ERR": 284}
    args = {"inet_sock_set_state": ["struct sock *", "int", "int"]}     # as read back from the JSON cache
    assert raw_usable(state, {"offsets": offsets, "tracepoint_args": args})
    # another kernel's TP_PROTO; no BTF for it; a field it reads is unknown
    assert not raw_usable(state, {"offsets": offsets, "tracepoint_args": {"inet_sock_set_state": ("struct sock *", "int")}})
    assert not raw_usable(state, {"offsets": offsets, "tracepoint_args": {"inet_sock_set_state": None}})
    assert not raw_usable(state, {"offsets": {**offsets, "INET_SPORT": -1}, "tracepoint_args": args})
    send = next(p for p in PROBES if p.function == "tw_send_reset")
    six_ten = {"tcp_send_reset": ("struct sock *", "struct sk_buff *", "enum sk_rst_reason")}
    assert raw_usable(send, {"offsets": offsets, "tracepoint_args": six_ten})
    # before 6.10 the reset has no reason argument: the tracepoint's record it is
    assert not raw_usable(send, {"offsets": offsets, "tracepoint_args": {"tcp_send_reset": ("struct sock *", "struct sk_buff *")}})
    # the socket's ends not readable at once
    assert not raw_usable(send, {"offsets": {**offsets, "SK_ENDS": -1}, "tracepoint_args": six_ten})


def test_giveup_runs_raw_only_inside_a_raw_owner_program():
    from tcpwatch.live.probes import raw_functions, select

    probes = select(("resets", "giveup"))
    offsets = {"SK_PROTOCOL": 16, "INET_SPORT": 782, "SK_ENDS": 0, "SK_ERR": 284}
    args = {"inet_sock_set_state": ("struct sock *", "int", "int")}
    assert {"tw_owner_state", "tw_giveup"} <= raw_functions(probes, {"offsets": offsets, "tracepoint_args": args})
    # the host cannot run raw (its offset unknown): the rider stays a tracepoint of its own
    no_host = raw_functions(probes, {"offsets": {**offsets, "SK_PROTOCOL": -1}, "tracepoint_args": args})
    assert "tw_owner_state" not in no_host and "tw_giveup" not in no_host
    # the rider cannot (no socket ends): the host still can
    no_rider = raw_functions(probes, {"offsets": {**offsets, "SK_ENDS": -1}, "tracepoint_args": args})
    assert "tw_owner_state" in no_rider and "tw_giveup" not in no_rider


def test_btf_form_for_raw_probes_whose_tracepoint_btf_names():
    from tcpwatch.live.probes import btf_functions, select

    probes = select(("resets", "netdev", "giveup"))
    raw = {"tw_send_reset", "tw_dev_queue", "tw_owner_state", "tw_giveup"}
    ids = {"tcp_send_reset": 7, "net_dev_queue": 8, "inet_sock_set_state": 9}
    facts = {"tracepoint_btf_ids": ids}
    # only raw variants; a rider is code in its host's program, not a program to load
    assert btf_functions(probes, facts, raw) == {"tw_send_reset", "tw_dev_queue", "tw_owner_state"}
    assert btf_functions(probes, facts, raw, refused={"tw_dev_queue"}) == {"tw_send_reset", "tw_owner_state"}
    assert btf_functions(probes, {"tracepoint_btf_ids": {**ids, "net_dev_queue": None}}, raw) == {
        "tw_send_reset", "tw_owner_state"}
    assert btf_functions(probes, {}, raw) == set()      # facts cached before BTF forms existed


def test_socket_ends_window():
    from tcpwatch.live.program import SK_ENDS_FIELDS, sk_ends_window

    sock_common = {"SKC_DADDR": 0, "SKC_RCV_SADDR": 4, "SKC_DPORT": 12, "SK_NUM": 14, "SKC_FAMILY": 16,
                   "SK_STATE": 18, "SK_NET": 48, "SKC_V6_DADDR": 56, "SKC_V6_RCV_SADDR": 72, "SK_COOKIE": 88}
    assert set(sock_common) == set(SK_ENDS_FIELDS)
    assert sk_ends_window(sock_common) == (0, 96)
    assert sk_ends_window({**sock_common, "SKC_V6_DADDR": -1}) == (-1, -1)       # no IPv6
    assert sk_ends_window({**sock_common, "SK_COOKIE": 400}) == (-1, -1)         # too far apart


@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(), reason="no kernel BTF")
def test_btf_names_tracepoint_arguments():
    from tcpwatch.live.btf import kernel_btf

    btf = kernel_btf()
    assert btf.tracepoint_args("net_dev_queue") == ("struct sk_buff *",)
    assert btf.tracepoint_args("inet_sock_set_state") == ("struct sock *", "int", "int")
    assert btf.tracepoint_args("no_such_tracepoint") is None


def test_jsonl_leaves_out_columns_null_in_the_whole_batch(tmp_path):
    import json

    import pandas as pd

    from tcpwatch.events import conform
    from tcpwatch.sinks import frame_to_jsonl_bytes, open_file_sink, read_back

    frame = conform(pd.DataFrame({"ts": [1.5, 2.25], "source": ["bpf", "bpf"], "kind": ["reset-sent", "reset-received"],
                                  "family": [4, 4], "saddr": ["10.0.0.1", "10.0.0.2"], "sport": [80, 5000],
                                  "daddr": ["10.0.0.2", "10.0.0.1"], "dport": [5000, 80], "pid": [None, 42]}))
    lines = [json.loads(line) for line in frame_to_jsonl_bytes(frame).splitlines()]
    # null in every row: absent; null in some rows: null there, the value elsewhere
    assert "cookie" not in lines[0] and "cookie" not in lines[1] and "reason" not in lines[0]
    assert lines[0]["pid"] is None and lines[1]["pid"] == 42
    path = str(tmp_path / "x.jsonl")
    with open_file_sink(path) as sink:
        sink.write(frame)
    back = read_back(path)
    assert list(back.columns) == list(frame.columns) and back["cookie"].isna().all()
    pd.testing.assert_frame_equal(back[["kind", "sport", "pid"]], frame[["kind", "sport", "pid"]])


def test_few_namespaces_are_compiled_in_as_numbers():
    from tcpwatch.live.program import Options, build_source, netns_constants

    assert netns_constants(frozenset({7, 3})) == (3, 7)
    assert netns_constants(frozenset(range(1, 6))) == ()          # five: the map does it
    assert netns_constants(frozenset()) == ()
    source = build_source({}, {}, Options(filter_netns=True, netns_constants=(3, 7)), ())
    assert "#define TW_NETNS_N (2)" in source and "#define TW_NETNS_1 (7)" in source
    assert "#define TW_NETNS_2 (0)" in source


def test_doctor_says_why_a_probe_has_only_its_tracepoint_form():
    from tcpwatch.live.doctor import _raw_forms
    from tcpwatch.live.probes import PROBES

    send = [p for p in PROBES if p.name == "tcp_send_reset"]
    six_ten = {"tcp_send_reset": ("struct sock *", "struct sk_buff *", "enum sk_rst_reason")}
    offsets = {"SK_ENDS": 0, "INET_SPORT": 782}
    facts = {"offsets": offsets, "tracepoint_args": six_ten, "tracepoint_btf_ids": {"tcp_send_reset": 7}}
    assert _raw_forms(send, facts) == {"tcp_send_reset": ", raw form usable (as a BTF tracepoint)"}
    assert _raw_forms(send, {**facts, "tracepoint_btf_ids": {}}) == {"tcp_send_reset": ", raw form usable"}
    assert _raw_forms(send, {**facts, "offsets": {**offsets, "INET_SPORT": -1}}) == {
        "tcp_send_reset": ", tracepoint form only (BTF lacks INET_SPORT)"}
    before_6_10 = {"tcp_send_reset": ("struct sock *", "struct sk_buff *")}
    assert _raw_forms(send, {**facts, "tracepoint_args": before_6_10}) == {
        "tcp_send_reset": ", tracepoint form only (raw arguments differ)"}
