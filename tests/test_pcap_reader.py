"""Reading: every container format, byte order, link type and tag layout gives the same
analysis as the plain Ethernet capture it was crafted from; damage is reported, never a traceback."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys

import pytest

from conftest import FIXTURES, ORACLE, ROOT

sys.path.insert(0, str(FIXTURES / "pcap"))
import craft  # noqa: E402

from tcpwatch.errors import InputError  # noqa: E402
from tcpwatch.pcap.api import analyze  # noqa: E402

CONN_COLS = ["orig_h", "orig_p", "resp_h", "resp_p", "conn_state", "history", "orig_pkts", "resp_pkts",
             "orig_ip_bytes", "resp_ip_bytes"]
EVENT_COLS = ["kind", "packet", "saddr", "reason"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small synthetic Ethernet capture (IPv4 + IPv6, resets and retransmissions)."""
    spec = importlib.util.spec_from_file_location("gen", ROOT / "bench" / "gen_synthetic_pcap.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path = tmp_path_factory.mktemp("pcap") / "base.pcap"
    gen.write(str(path), packets=3000, seed=11, batch_flows=60)
    return path


def same_analysis(a, b):
    ca, cb = a.connections[CONN_COLS].astype(str), b.connections[CONN_COLS].astype(str)
    assert ca.values.tolist() == cb.values.tolist()
    ea, eb = a.events[EVENT_COLS].astype(str), b.events[EVENT_COLS].astype(str)
    assert ea.values.tolist() == eb.values.tolist()


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def variants(base_path):
    _lt, frames = craft.read_classic(base_path)
    ips = craft.ip_payloads(base_path)
    half = len(frames) // 2
    return {
        "big-endian.pcap": craft.classic(frames, 1, endian=">"),
        "nanoseconds.pcap": craft.classic(frames, 1, nanos=True),
        "null.pcap": craft.classic([(s, u, craft.wrap(0, ip)) for s, u, ip in ips], 0),
        "raw.pcap": craft.classic([(s, u, craft.wrap(101, ip)) for s, u, ip in ips], 101),
        "sll.pcap": craft.classic([(s, u, craft.wrap(113, ip)) for s, u, ip in ips], 113),
        "sll2.pcap": craft.classic([(s, u, craft.wrap(276, ip)) for s, u, ip in ips], 276),
        "vlan.pcap": craft.classic([(s, u, craft.vlan(ip, 1)) for s, u, ip in ips], 1),
        "qinq.pcap": craft.classic([(s, u, craft.vlan(ip, 2)) for s, u, ip in ips], 1),
        "le.pcapng": craft.pcapng([[(1, frames)]]),
        "be.pcapng": craft.pcapng([[(1, frames)]], endian=">"),
        "sections.pcapng": craft.pcapng([[(1, frames[:half])], [(1, frames[half:])]]),
        # two interfaces of different link types (and timestamp resolutions), interleaved
        "interfaces.pcapng": craft.pcapng([[(1, frames[0::2]), (101, [(s, u, ip) for s, u, ip in ips[1::2]])]]),
        "gzipped.pcap.gz": gzip.compress(base_path.read_bytes()),
    }




VARIANT_NAMES = ["big-endian.pcap", "nanoseconds.pcap", "null.pcap", "raw.pcap", "sll.pcap", "sll2.pcap", "vlan.pcap",
                 "qinq.pcap", "le.pcapng", "be.pcapng", "sections.pcapng", "interfaces.pcapng", "gzipped.pcap.gz"]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_reads_like_base(base, tmp_path, name):
    path = write(tmp_path, name, variants(base)[name])
    result, reference = analyze(str(path)), analyze(str(base))
    assert result.stats["damaged"] == 0 and result.stats["malformed"] == 0
    assert result.stats["tcp_packets"] == reference.stats["tcp_packets"] > 0
    same_analysis(result, reference)


def test_base_has_both_families_and_findings(base):
    result = analyze(str(base))
    assert set(result.connections["family"].astype(int)) == {4, 6}
    assert set(result.events["kind"]) == {"reset-sent", "retransmit"}


def test_small_chunks_give_the_same_result(base, tmp_path):
    gz = write(tmp_path, "b.pcap.gz", gzip.compress(base.read_bytes()))
    same_analysis(analyze(str(base), chunk_size=777), analyze(str(base)))
    same_analysis(analyze(str(gz), chunk_size=555), analyze(str(base)))


def test_oracle_vlan_trace_with_bad_checksums_is_read():
    result = analyze(str(ORACLE / "traces" / "ldap_simpleauth.pcap"))
    assert result.stats["tcp_packets"] == 12 and result.stats["malformed"] == 0


def test_wrong_magic_is_one_clear_error(tmp_path):
    path = write(tmp_path, "notes.txt", b"hello, this is not a capture at all\n")
    with pytest.raises(InputError, match="not a pcap or pcapng file"):
        analyze(str(path))


@pytest.mark.parametrize("data,match", [(b"", "empty"), (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header")])
def test_empty_or_headless_file(tmp_path, data, match):
    with pytest.raises(InputError, match=match):
        analyze(str(write(tmp_path, "x.pcap", data)))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        analyze(str(tmp_path / "absent.pcap"))


def record_offsets(data: bytes) -> list[int]:
    offs, pos = [], 24
    while pos + 16 <= len(data):
        offs.append(pos)
        pos += 16 + struct.unpack("<I", data[pos + 8:pos + 12])[0]
    return offs


def test_truncated_file_reports_the_cut_record(base, tmp_path):
    data = base.read_bytes()
    offs = record_offsets(data)
    cut = offs[-10] + 30  # inside record number len(offs) - 9
    result = analyze(str(write(tmp_path, "cut.pcap", data[:cut])))
    assert result.stats["packets"] == len(offs) - 10
    row = result.damage.iloc[0]
    assert (int(row.packet), int(row.offset), row.reason) == (len(offs) - 9, offs[-10], "truncated record")


def test_garbage_in_the_middle_is_skipped_and_located(base, tmp_path):
    data = base.read_bytes()
    offs = record_offsets(data)
    at = offs[100]
    junk = bytes((i * 37 + 11) % 256 for i in range(333))
    result = analyze(str(write(tmp_path, "junk.pcap", data[:at] + junk + data[at:])))
    assert result.stats["packets"] == len(offs)  # nothing after the junk is lost
    assert result.stats["damaged"] == 1
    row = result.damage.iloc[0]
    assert (int(row.packet), int(row.offset), int(row.length)) == (101, at, len(junk))
    same_analysis(result, analyze(str(base)))


def test_record_longer_than_snaplen(base, tmp_path):
    data = bytearray(base.read_bytes())
    offs = record_offsets(bytes(data))
    longest = max(struct.unpack("<I", data[o + 8:o + 12])[0] for o in offs)
    struct.pack_into("<I", data, 16, longest - 1)  # header snaplen now below the longest record
    over = [i + 1 for i, o in enumerate(offs) if struct.unpack("<I", data[o + 8:o + 12])[0] > longest - 1]
    result = analyze(str(write(tmp_path, "snap.pcap", bytes(data))))
    assert result.damage["reason"].unique().tolist() == ["record longer than the snap length"]
    assert result.damage["packet"].astype(int).tolist() == over
    assert result.stats["packets"] == len(offs)


def test_truncated_gzip_keeps_what_it_had(base, tmp_path):
    gz = gzip.compress(base.read_bytes())
    result = analyze(str(write(tmp_path, "cut.pcap.gz", gz[: len(gz) // 2])))
    assert "truncated" in result.stats["compression_problem"]
    assert 0 < result.stats["packets"] < analyze(str(base)).stats["packets"]


def test_ip_fragments_are_counted_not_parsed(tmp_path):
    path = write(tmp_path, "frag.pcap", craft.classic(craft.ipv4_fragments(1_700_000_000, 5), 1))
    result = analyze(str(path))
    assert result.stats["ip_fragments"] == 2
    assert result.stats["tcp_packets"] == 0 and result.connections.empty
