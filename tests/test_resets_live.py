"""`tcpwatch resets` for real: BPF on this kernel, traffic in the test's own namespaces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from tcpwatch.live.capture import Capture
from tcpwatch.live.filters import Filters
from tcpwatch.scenarios import SERVER_COMM, linger_zero, refused, unread_data
from tcpwatch.sinks import read_back

pytestmark = pytest.mark.live


def capture(lab, play, **filters):
    """Attach, play the scenario, drain: every event of the lab's namespaces (or fewer, filtered)."""
    filters.setdefault("netns", [lab.client.name, lab.server.name])
    with Capture(Filters.parse(**filters)) as cap:
        played = play(lab)
        frames = list(cap.batches(0.6))
    assert cap.stats.lost == 0
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["kind"])
    return played, frame


def one(frame, kind):
    rows = frame[frame["kind"] == kind]
    assert len(rows) == 1, f"expected one {kind}, got:\n{frame.to_string()}"
    return rows.iloc[0]


@pytest.mark.parametrize("family", [4, 6])
def test_refused_connection(lab, family):
    played, frame = capture(lab, lambda l: refused(l, family))
    srv = lab.server.v4 if family == 4 else lab.server.v6
    cli = lab.client.v4 if family == 4 else lab.client.v6
    sent, received = one(frame, "reset-sent"), one(frame, "reset-received")
    assert (sent["reason"], sent["netns"], sent["family"]) == ("NO_SOCKET", lab.server.inode, family)
    assert (sent["saddr"], sent["sport"], sent["daddr"], sent["dport"]) == (srv, played.server_port, cli, played.client_port)
    assert pd.isna(sent["pid"]) and pd.isna(sent["comm"])  # sent from softirq: no owner claimed
    assert received["netns"] == lab.client.inode
    assert (received["saddr"], received["sport"], received["daddr"], received["dport"]) == (
        srv, played.server_port, cli, played.client_port)
    assert received["state"] == "SYN_SENT" and pd.isna(received["reason"])


def test_close_with_unread_data(lab):
    played, frame = capture(lab, unread_data)
    sent = one(frame, "reset-sent")
    assert (sent["reason"], sent["state"]) == ("TCP_ABORT_ON_CLOSE", "CLOSE")
    assert (sent["saddr"], sent["sport"], sent["dport"]) == (lab.server.v4, played.server_port, played.client_port)
    assert (sent["pid"], sent["comm"]) == (played.server_pid, SERVER_COMM)  # closed in process context
    received = one(frame, "reset-received")
    assert (received["netns"], received["state"], received["saddr"]) == (lab.client.inode, "ESTABLISHED", lab.server.v4)


def test_so_linger_zero(lab):
    played, frame = capture(lab, linger_zero)
    sent = one(frame, "reset-sent")
    # On this kernel (6.18) an abortive close goes through tcp_disconnect: reason TCP_STATE,
    # reported after the socket moved to CLOSE.
    assert (sent["reason"], sent["state"]) == ("TCP_STATE", "CLOSE")
    assert (sent["pid"], sent["comm"]) == (played.server_pid, SERVER_COMM)
    assert (sent["saddr"], sent["sport"], sent["daddr"], sent["dport"]) == (
        lab.server.v4, played.server_port, lab.client.v4, played.client_port)
    assert one(frame, "reset-received")["state"] == "ESTABLISHED"


def test_filters_exclude(lab):
    # --netns: only the server's namespace; compiled in as a number, or (past four) from the map
    _, frame = capture(lab, refused, netns=[str(lab.server.inode)])
    assert frame["kind"].tolist() == ["reset-sent"]
    unused = [str(n) for n in range(1, 5)]       # inode numbers no namespace has
    _, frame = capture(lab, refused, netns=[str(lab.server.inode), *unused])
    assert frame["kind"].tolist() == ["reset-sent"]
    # --direction received
    _, frame = capture(lab, refused, direction="received")
    assert frame["kind"].tolist() == ["reset-received"]
    # --port: a port that is not used excludes everything; the closed port keeps both
    _, frame = capture(lab, refused, ports=[1234])
    assert frame.empty
    _, frame = capture(lab, refused, ports=[9])
    assert sorted(frame["kind"]) == ["reset-received", "reset-sent"]
    # --host: a prefix that does not cover the lab, then one that does (v6 too)
    _, frame = capture(lab, refused, hosts=["203.0.113.0/24"])
    assert frame.empty
    _, frame = capture(lab, refused, hosts=["198.18.0.2/32"])
    assert len(frame) == 2
    _, frame = capture(lab, lambda l: refused(l, 6), hosts=["fd74:7763::/64"])
    assert len(frame) == 2 and set(frame["family"]) == {6}
    _, frame = capture(lab, lambda l: refused(l, 6), hosts=["198.18.0.0/15"])
    assert frame.empty


def start_cli(lab, *args):
    """Start `tcpwatch resets` on the lab's namespaces; return once it is attached."""
    proc = subprocess.Popen([sys.executable, "-m", "tcpwatch.cli", "resets", "--netns", lab.client.name,
                             "--netns", lab.server.name, *args], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "tracing" in line, line + proc.stderr.read()
    return proc


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_output_round_trip_and_json(lab, tmp_path, ext):
    out = tmp_path / f"events.{ext}"
    proc = start_cli(lab, "--json", "--output", str(out), "--duration", "3")
    refused(lab)
    unread_data(lab)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    events, summary = lines[:-1], lines[-1]["summary"]
    assert len(events) == 4 and summary["events"] == 4 and summary["lost"] == 0
    # kernel records: each reset from the TCP stack (4), and the out copy of the one the stack
    # reports after sending it (unread data). The kernel pairs the rest itself: the out copy of
    # the refusal, traced before it leaves, and both in copies, taken by their sockets' events.
    assert summary["captured"] == 5
    assert summary["by_kind"] == {"reset-sent": 2, "reset-received": 2}
    written = read_back(str(out))
    from_json = read_back_json(events)
    cols = ["kind", "saddr", "sport", "daddr", "dport", "state", "reason", "netns", "pid"]
    pd.testing.assert_frame_equal(written[cols].reset_index(drop=True), from_json[cols].reset_index(drop=True))
    assert (written["ts"] - from_json["ts"]).abs().max() < 1e-5


def read_back_json(rows):
    from tcpwatch.events import conform

    return conform(pd.DataFrame.from_records(rows))


def bpf_progs() -> list[dict]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def progs_of(pid: int) -> set[int]:
    """Ids of the BPF programs a process holds, from its fds' fdinfo (other tcpwatch instances may
    be running meanwhile, so the check follows this one's programs only)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                ids |= {int(line.split()[1]) for line in info if line.startswith("prog_id:")}
        except OSError:
            continue
    return ids


def test_sigint_mid_capture(lab, tmp_path):
    out = tmp_path / "events.jsonl"
    proc = start_cli(lab, "--output", str(out))
    try:
        ours = progs_of(proc.pid)
        assert len(ours) >= 4  # send and receive resets, owner probes (and device probes)
        refused(lab)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:   # never leave a capture running behind a failed test
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "NO_SOCKET" in stdout and "-- summary" in stdout and "lost=0" in stdout and "missed=0" in stdout
    assert "Traceback" not in stderr
    written = read_back(str(out))
    assert sorted(written["kind"]) == ["reset-received", "reset-sent"]
    assert not ours & {p["id"] for p in bpf_progs()}, "a BPF program stayed loaded"


def test_not_root_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "tcpwatch.cli", "resets", "--duration", "1"], cwd=str(ROOT), capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "root" in proc.stderr and "sudo" in proc.stderr


def test_missing_tracepoint_exits_2(tmp_path):
    fake = tmp_path / "tracing"
    (fake / "events" / "irq").mkdir(parents=True)
    proc = run_cli("resets", "--duration", "1", env={"TCPWATCH_TRACEFS": str(fake)})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "tcp:tcp_send_reset is missing" in proc.stderr


def test_python_api_capture(lab):
    import threading

    import tcpwatch

    timer = threading.Timer(1.5, lambda: refused(lab))
    timer.start()
    frame = tcpwatch.capture(duration=2.5, netns=[lab.server.name], port=9)
    timer.join()
    assert list(frame.columns[:14]) == ["ts", "source", "kind", "family", "saddr", "sport", "daddr", "dport",
                                        "state", "reason", "netns", "cookie", "pid", "comm"]
    assert str(frame["sport"].dtype) == "UInt16" and str(frame["pid"].dtype) == "Int64"
    assert frame["kind"].tolist() == ["reset-sent"] and frame.attrs["lost"] == 0


def test_perf_buffer_transport(lab):
    """The fallback for kernels before 5.8, forced here: same events, counted the same way."""
    with Capture(Filters.parse(netns=[lab.client.name, lab.server.name]), transport="perf") as cap:
        played = refused(lab)
        frames = list(cap.batches(0.6))
    frame = pd.concat(frames, ignore_index=True)
    assert cap.stats.transport == "perf" and cap.stats.lost == 0
    assert sorted(frame["kind"]) == ["reset-received", "reset-sent"]
    assert set(frame["dport"]) == {played.client_port}


def _refuse_many(count: int) -> list[int]:
    """count connects to a closed port on this namespace's loopback, as fast as Python goes."""
    import errno

    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            assert s.connect_ex(("127.0.0.1", 9)) == errno.ECONNREFUSED
    return ports


@pytest.mark.parametrize("transport", ["ringbuf", "perf"])
def test_a_burst_is_captured_whole_by_either_transport(lab, transport):
    """Both transports are read on a timer, neither woken per event: a burst of refusals comes
    through whole, one reset each way per connect, nothing lost."""
    with Capture(Filters.parse(netns=[lab.server.name]), transport=transport, groups=("resets", "netdev"),
                 origins=True) as cap:
        ports = lab.server.call(_refuse_many, 3000, timeout=60)
        frame = pd.concat(list(cap.batches(1.0)), ignore_index=True)
    assert cap.stats.transport == transport and cap.stats.lost == 0
    sent, received = frame[frame["kind"] == "reset-sent"], frame[frame["kind"] == "reset-received"]
    assert len(frame) == 2 * len(ports) and sorted(sent["dport"]) == sorted(received["dport"]) == sorted(ports)


def test_python_api_stream(lab):
    import threading

    import tcpwatch
    from tcpwatch.events import Event, Kind

    timer = threading.Timer(1.5, lambda: refused(lab))
    timer.start()
    events = list(tcpwatch.stream(duration=2.5, netns=[lab.server.name]))
    timer.join()
    assert len(events) == 1 and isinstance(events[0], Event)
    event = events[0]
    assert (event.kind, event.reason, event.sport, event.netns) == (Kind.RESET_SENT, "NO_SOCKET", 9, lab.server.inode)
    assert event.pid is None and event.comm is None and event.state is None
    assert "uid" in event.extra and event.extra["uid"] is None


def test_doctor_lists_checks():
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout
    assert "ok      tracepoint tcp:tcp_send_reset" in proc.stdout
    assert "missing kprobes/fentry" in proc.stdout  # reported, but not required
    assert "net:netif_receive_skb present, raw form usable" in proc.stdout     # this kernel's BTF


def test_probe_forms_give_the_same_events(lab, monkeypatch):
    """On this kernel (BTF names every tracepoint's arguments) the reset, per-packet and owner
    probes run as BTF tracepoints (raw, reading directly); as plain raw tracepoints, or as
    tracepoints, the events are the same (owner included). No softirq probes: whether a task acts
    on a socket is read from its lock."""
    import tcpwatch.live.capture as capture_module
    import tcpwatch.live.probes as probes

    def events(frame, played):
        # the device probes' records too (wire-out/wire-in): their headers are read from the packet
        rows = frame[frame["kind"].isin(["reset-sent", "reset-received", "wire-out", "wire-in"])]
        ports = {played.server_port: "server", played.client_port: "client"}   # the client's differs per run
        return sorted(zip(rows["kind"], rows["netns"], rows["state"].fillna("-"), rows["comm"].fillna("-"),
                          rows["reason"].fillna("-"), rows["saddr"], rows["sport"].map(ports), rows["daddr"],
                          rows["dport"].map(ports), rows["tcp_flags"].fillna("-"), rows["trigger_flags"].fillna("-"),
                          rows["ifindex"].fillna(0)))

    def capture():
        with Capture(Filters.parse(netns=[lab.client.name, lab.server.name]), groups=("resets", "netdev")) as cap:
            played = unread_data(lab)
            frame = pd.concat(list(cap.batches(0.6)), ignore_index=True)
        return cap, events(frame, played)

    cap, btf_events = capture()
    raw_probes = {"net:net_dev_queue", "net:netif_receive_skb", "sock:inet_sock_set_state", "tcp:tcp_destroy_sock",
                  "tcp:tcp_send_reset", "tcp:tcp_receive_reset"}
    assert set(cap.stats.raw) == raw_probes and set(cap.stats.btf) == raw_probes
    assert cap.stats.direct_packet_reads      # this kernel (6.17 on) lets them load packet bytes
    # the stack's RST's copy on the device, and the received one folded into its socket's event
    assert "wire-out" in {row[0] for row in btf_events}
    assert {row[9] for row in btf_events if row[0] == "reset-received"} == {"R."}   # RST+ACK, as sent
    monkeypatch.setattr(capture_module, "_direct_packet_reads", lambda _facts: False)
    cap, btf_helper_events = capture()
    assert set(cap.stats.btf) == raw_probes and not cap.stats.direct_packet_reads
    assert btf_helper_events == btf_events
    monkeypatch.setattr(probes, "btf_functions", lambda *_args: set())
    cap, raw_events = capture()
    assert set(cap.stats.raw) == raw_probes and cap.stats.btf == [] and not cap.stats.direct_packet_reads
    monkeypatch.setattr(probes, "raw_usable", lambda *_: False)
    cap, plain_events = capture()
    assert cap.stats.raw == []
    assert btf_events == raw_events == plain_events
    assert SERVER_COMM in {row[3] for row in btf_events}
    # the closing server's reset: its port read back from inet_sport (the socket gave skc_num up)
    assert ("reset-sent", lab.server.inode, "CLOSE", SERVER_COMM, "TCP_ABORT_ON_CLOSE") in {
        row[:5] for row in btf_events}


@pytest.mark.parametrize("refuse", ["btf", "btf+raw"])
def test_refused_form_is_rebuilt_with_the_next(lab, monkeypatch, refuse):
    """Only the form a probe runs in is compiled; when the kernel refuses it anyway (as a BTF
    tracepoint, then as a raw tracepoint), the program is built again with that probe's next
    form down, the refusal is reported, and the events are the same."""
    from bcc import BPF

    import tcpwatch.live.btfprog as btfprog

    real_load, real_raw = btfprog.load, BPF.attach_raw_tracepoint

    def refuse_btf(module, function, btf_id):
        if function == "tw_receive_reset_raw":
            raise btfprog.BtfRefused(f"{function}: Permission denied: (simulated)")
        return real_load(module, function, btf_id)

    def refuse_raw(self, tp=b"", fn_name=b""):
        if tp == b"tcp_receive_reset":
            raise Exception("Failed to attach BPF to raw tracepoint (simulated)")
        return real_raw(self, tp=tp, fn_name=fn_name)

    monkeypatch.setattr(btfprog, "load", refuse_btf)
    if refuse == "btf+raw":
        monkeypatch.setattr(BPF, "attach_raw_tracepoint", refuse_raw)
    with Capture(Filters.parse(netns=[lab.client.name, lab.server.name])) as cap:
        refused(lab)
        frame = pd.concat(list(cap.batches(0.6)), ignore_index=True)
    assert "tcp:tcp_receive_reset" in cap.stats.attached and "tcp:tcp_receive_reset" not in cap.stats.btf
    assert ("tcp:tcp_receive_reset" in cap.stats.raw) == (refuse == "btf")
    assert "tcp:tcp_send_reset" in cap.stats.btf
    assert [f.split(":")[0] for f in cap.stats.fallbacks] == (
        ["btf form refused"] if refuse == "btf" else ["btf form refused", "raw form refused"])
    assert sorted(frame["kind"]) == ["reset-received", "reset-sent"]
    received = one(frame, "reset-received")
    assert (received["state"], received["netns"]) == ("SYN_SENT", lab.client.inode)


def _send_rst_with_ip_options(src: str, dst: str, sport: int, dport: int) -> None:
    """An RST whose IPv4 header carries options (IHL 6: four NOPs), sent from a raw socket opened
    inside the lab namespace. The kernel fills in the total length and the IP checksum."""
    import socket
    import struct

    ip = struct.pack("!BBHHHBBH4s4s4s", 0x46, 0, 0, 4242, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst), b"\x01\x01\x01\x01")
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 777, 0, 5 << 4, 0x04, 0, 0, 0)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(ip + tcp, (dst, 0))


def test_device_probe_reads_tcp_past_ip_options(lab):
    """The device probe reads an option-less IPv4 header and the TCP header in one go; with IP
    options the TCP header sits further on and takes a second read: ports and flags still right."""
    with Capture(Filters.parse(netns=[lab.server.name]), groups=("resets", "netdev")) as cap:
        lab.client.call(_send_rst_with_ip_options, lab.client.v4, lab.server.v4, 40123, 45679)
        frame = pd.concat(list(cap.batches(0.6)), ignore_index=True)
    wire = one(frame, "wire-in")
    assert (wire["saddr"], wire["sport"], wire["daddr"], wire["dport"]) == (lab.client.v4, 40123, lab.server.v4, 45679)
    assert wire["tcp_flags"] == "R" and wire["netns"] == lab.server.inode


@pytest.mark.parametrize("hold", [True, False])
def test_received_rst_is_held_for_its_socket_where_the_kernel_can(lab, monkeypatch, hold):
    """From 5.12 the kernel holds a received RST as its device sees it and the socket's event
    takes it: one record. Before (no compare-and-swap in BPF), both records come, as they are."""
    import tcpwatch.live.capture as capture_module

    if not hold:
        monkeypatch.setattr(capture_module, "_kernel_at_least", lambda version: version < (5, 12))
    with Capture(Filters.parse(netns=[lab.client.name]), groups=("resets", "netdev")) as cap:
        refused(lab)
        frame = pd.concat(list(cap.batches(0.6)), ignore_index=True)
    received = one(frame, "reset-received")
    assert sorted(frame["kind"]) == (["reset-received"] if hold else ["reset-received", "wire-in"])
    if hold:
        assert (received["tcp_flags"], pd.notna(received["ifindex"])) == ("R.", True)
    else:
        assert pd.isna(received["tcp_flags"]) and pd.isna(received["ifindex"])
    assert (cap._held_rsts is not None) == hold
