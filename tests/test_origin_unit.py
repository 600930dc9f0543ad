"""Pairing the stack's reset records with RSTs seen on devices (tcpwatch.live.origin), on
the raw records, and the capture releasing what waits for a partner."""

import ipaddress

import numpy as np

from tcpwatch.live import origin
from tcpwatch.live.decode import Names, decode, flags_text
from tcpwatch.live.header import constants, event_dtype
from tcpwatch.live.origin import OriginPairing

KINDS = {"reset-sent": "TW_KIND_RESET_SENT", "reset-received": "TW_KIND_RESET_RECEIVED",
         "wire-out": "TW_KIND_WIRE_OUT", "wire-in": "TW_KIND_WIRE_IN"}
S = 1_000_000_000   # the records' clock is in nanoseconds


def records(*specs):
    """tw_event records: (seconds, kind, saddr, sport, daddr, dport, netns); device copies
    carry ifindex 7 and flags R."""
    rec = np.zeros(len(specs), dtype=event_dtype())
    for i, (ts, kind, s, sp, d, dp, ns) in enumerate(specs):
        wire = kind.startswith("wire")
        rec[i]["ts_ns"], rec[i]["kind"], rec[i]["netns"] = round(ts * S), constants()[KINDS[kind]], ns
        rec[i]["sport"], rec[i]["dport"] = sp, dp
        for side, text in (("saddr", s), ("daddr", d)):
            addr = ipaddress.ip_address(text)
            rec[i]["family"] = addr.version
            rec[i][side][:len(addr.packed)] = np.frombuffer(addr.packed, dtype=np.uint8)
        if wire:
            rec[i]["ifindex"], rec[i]["tcpflags"] = 7, 0x14
    return rec


def frame(paired):
    """The schema rows of what the pairing released (None: nothing)."""
    if paired is None:
        return None
    return decode(paired.records, Names(states={}, reasons={}), 0.0, paired.columns)


def feed(pairing, *specs, now):
    return frame(pairing.feed(records(*specs), round(now * S)))


def test_stack_records_go_at_once_with_their_device_copy_folded_in():
    pairing = OriginPairing(window=0.2)
    out = feed(pairing,
               (100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1),        # stack, then its packet
               (100.01, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1),
               (100.02, "wire-out", "10.0.0.2", 80, "10.0.0.1", 5001, 1),         # no stack event: netfilter
               (100.03, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2),           # packet, then the socket saw it
               (100.04, "reset-received", "10.0.0.2", 9, "10.0.0.1", 5000, 2),
               (100.05, "wire-in", "10.0.0.9", 443, "10.0.0.1", 5002, 2),         # never reached a socket
               (100.06, "wire-out", "10.0.0.2", 8081, "10.0.0.1", 5003, 1),       # active reset: packet first
               (100.07, "reset-sent", "10.0.0.2", 8081, "10.0.0.1", 5003, 1),
               now=100.0)
    got = list(zip(out["kind"], out["sport"], out["origin"], out["ifindex"], out["tcp_flags"]))
    assert got == [("reset-sent", 9, "tcp-stack", 7, "R."), ("reset-received", 9, "remote", 7, "R."),
                   ("reset-sent", 8081, "tcp-stack", 7, "R.")]
    assert list(out["delivered"].fillna("-")) == ["-", "yes", "-"]
    # the lone device copies wait for a partner until they are window + latency old
    assert pairing.next_release() == round((100.02 + 0.25) * S)
    out = frame(pairing.feed(records(), round(101.0 * S)))
    got = list(zip(out["kind"], out["sport"], out["origin"], out["delivered"].fillna("-"), out["ifindex"]))
    assert got == [("reset-sent", 80, "netfilter", "-", 7), ("reset-received", 443, "remote", "no", 7)]
    assert pairing.flush() is None and pairing.next_release() is None


def test_a_device_copy_waits_for_its_stack_record():
    pairing = OriginPairing(window=0.2)
    assert feed(pairing, (100.0, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=100.25) is None
    out = feed(pairing, (100.1, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=100.7)
    assert list(out["origin"]) == ["tcp-stack"] and list(out["ifindex"]) == [7]


def test_far_apart_records_do_not_pair_and_flush_releases_all():
    pairing = OriginPairing(window=0.2)
    out = feed(pairing, (100.0, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1),
               (105.0, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=100.0)
    assert list(out["origin"]) == ["tcp-stack"] and out["ifindex"].isna().all()
    assert list(frame(pairing.flush())["origin"]) == ["netfilter"]


def test_a_late_device_copy_of_a_reset_already_shown_is_not_a_second_reset():
    """The kernel drops the device copy of a reset it traced first; one it misses comes after
    the stack record went out, and must not be taken for netfilter's."""
    pairing = OriginPairing(window=0.2, latency=0.05)
    feed(pairing, (100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=100.01)
    assert feed(pairing, (100.05, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=101.0) is None
    assert pairing.late_copies == 1 and pairing.next_release() is None
    # once joined, the sent reset takes no second copy; nor does one outside the window
    out = feed(pairing, (100.06, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=101.0)
    assert list(out["origin"]) == ["netfilter"]
    feed(pairing, (102.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=102.01)
    out = feed(pairing, (102.30, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=103.0)
    assert list(out["origin"]) == ["netfilter"] and pairing.late_copies == 1


def test_an_older_lone_record_of_a_reused_tuple_does_not_shift_the_pairing():
    """A flood reuses ephemeral ports: an earlier connection's reset on the same tuple (its
    device copy dropped in the kernel) must not take the device copy of the next one."""
    pairing = OriginPairing(window=0.2, latency=0.05)
    first = feed(pairing, (100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=100.1)
    out = feed(pairing, (100.21, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1),    # same tuple, next connect
               (100.22, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=100.23)
    assert list(first["ifindex"].isna()) == [True]
    assert list(zip(out["ts"], out["origin"], out["ifindex"])) == [(100.21, "tcp-stack", 7)]
    assert pairing.late_copies == 0


def test_a_v4_mapped_socket_pairs_with_its_ipv4_packet():
    pairing = OriginPairing(window=0.2)
    out = feed(pairing, (100.00, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2),
               (100.01, "reset-received", "::ffff:10.0.0.2", 9, "::ffff:10.0.0.1", 5000, 2), now=100.0)
    assert list(zip(out["saddr"], out["delivered"], out["ifindex"])) == [("10.0.0.2", "yes", 7)]
    assert pairing.next_release() is None


def test_flows_that_share_a_hash_never_pair(monkeypatch):
    """The hash only groups records: a pair must be the same flow word for word."""
    real = origin.flow_words
    monkeypatch.setattr(origin, "flow_words", lambda rec, sent: (real(rec, sent)[0], np.zeros(len(rec), np.uint64)))
    pairing = OriginPairing(window=0.2)
    out = feed(pairing, (100.00, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2),
               (100.01, "reset-received", "10.0.0.3", 9, "10.0.0.1", 5000, 2), now=100.0)
    assert list(out["delivered"]) == ["yes"] and out["ifindex"].isna().all()
    assert list(frame(pairing.flush())["delivered"]) == ["no"]


def test_without_device_records_nothing_waits():
    pairing = OriginPairing(window=0.2, wire=False)
    out = feed(pairing, (100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1),
               (100.01, "reset-received", "10.0.0.2", 9, "10.0.0.1", 5000, 2), now=100.0)
    assert list(zip(out["origin"], out["delivered"].fillna("-"))) == [("tcp-stack", "-"), ("remote", "yes")]
    assert pairing.next_release() is None


def test_flags_text():
    assert (flags_text(0x12), flags_text(0x14), flags_text(0x04), flags_text(0x11), flags_text(0)) == (
        "S.", "R.", "R", "F.", None)


def held_capture(flush_interval: float):
    """A capture with origins whose pairing holds one lone device copy, due 0.2 s from now."""
    import time

    from tcpwatch.live.capture import Capture
    from tcpwatch.live.filters import Filters

    cap = Capture(Filters(), flush_interval=flush_interval, groups=("resets", "netdev"), origins=True)
    cap._t0 = time.monotonic()
    cap._mono_to_epoch = time.time() - time.monotonic()      # as start() sets it
    cap._names = Names(states={}, reasons={})
    now = time.monotonic()
    cap._pairing.feed(records((now - 0.05, "wire-out", "10.0.0.2", 80, "10.0.0.1", 5001, 1)), round(now * S))
    assert cap._pairing.next_release() is not None
    return cap


def test_capture_releases_a_held_record_when_it_becomes_final(monkeypatch):
    """The release time of a held record brings the next batch forward from the flush interval."""
    import time

    cap = held_capture(flush_interval=30.0)
    polls = []
    monkeypatch.setattr(cap, "_poll", lambda timeout_ms: (polls.append(timeout_ms), time.sleep(timeout_ms / 1000)))
    t0 = time.monotonic()
    out = next(cap.batches(idle_ticks=True))      # at the release time, not 30 s later
    assert list(out["origin"]) == ["netfilter"] and time.monotonic() - t0 < 1.0
    assert polls and all(p <= 1000 for p in polls)
    cap.stop()


def test_capture_keeps_its_pace_under_load(monkeypatch):
    """After a large batch a held record's release time is not honoured: batches come at the
    flush interval."""
    import time

    cap = held_capture(flush_interval=0.5)
    cap._last_batch_rows = cap.WAKE_MAX_ROWS + 1
    monkeypatch.setattr(cap, "_poll", lambda timeout_ms: time.sleep(timeout_ms / 1000))
    t0 = time.monotonic()
    out = next(cap.batches(idle_ticks=True))
    assert time.monotonic() - t0 >= 0.45 and list(out["origin"]) == ["netfilter"]
    cap.stop()


def test_capture_flushes_what_waits_at_the_end(monkeypatch):
    import time

    cap = held_capture(flush_interval=30.0)
    monkeypatch.setattr(cap, "_poll", lambda timeout_ms: time.sleep(timeout_ms / 1000))
    monkeypatch.setattr(cap, "read_lost", lambda: 0)
    cap.stop()
    assert [list(f["origin"]) for f in cap.batches()] == [["netfilter"]]


def test_first_events_go_out_as_soon_as_read_then_at_the_flush_interval(monkeypatch):
    import time

    from tcpwatch.live.capture import Capture
    from tcpwatch.live.filters import Filters

    cap = Capture(Filters(), flush_interval=0.5)
    cap._t0 = time.monotonic()
    cap._mono_to_epoch = time.time() - time.monotonic()

    def poll(timeout_ms):           # every read finds one more record
        time.sleep(timeout_ms / 1000)
        cap._raw.append(b"r" * 8)

    monkeypatch.setattr(cap, "_poll", poll)
    monkeypatch.setattr(cap, "_decode", len)
    t0 = time.monotonic()
    batches = cap.batches()
    assert next(batches) == 8                          # the first read's record, at once
    first = time.monotonic() - t0
    assert next(batches) > 8                           # then everything read until the flush
    second = time.monotonic() - t0
    assert first < 0.2 and second - first >= 0.4, (first, second)
    cap.stop()


def test_read_cpu_by_cpu_a_lone_stack_record_waits_for_a_copy_from_another_cpu():
    """A perf buffer is read one CPU after another: a socket's reset can come in a read before
    the device copy another CPU saw first."""
    pairing = OriginPairing(window=0.2, latency=0.05, ordered=False)
    assert feed(pairing, (100.00, "reset-received", "10.0.0.2", 9, "10.0.0.1", 5000, 2), now=100.01) is None
    assert pairing.next_release() == round(100.05 * S)
    out = feed(pairing, (99.99, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2), now=100.02)
    assert list(zip(out["delivered"], out["ifindex"])) == [("yes", 7)] and pairing.next_release() is None
    # alone, it goes after the latency, with nothing else held
    feed(pairing, (101.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1), now=101.01)
    out = feed(pairing, now=101.06)
    assert list(out["origin"]) == ["tcp-stack"] and pairing.next_release() is None


def test_a_device_copy_held_past_its_sockets_event_is_not_a_second_reset():
    """The kernel holds a received RST for its socket's event; when that event ran on another
    CPU it goes out without the copy, which comes later (sent on, or taken from the slot)."""
    pairing = OriginPairing(window=0.2, latency=0.05)
    out = feed(pairing, (100.01, "reset-received", "10.0.0.2", 9, "10.0.0.1", 5000, 2), now=100.02)
    assert list(out["delivered"]) == ["yes"]
    assert feed(pairing, (100.00, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2), now=100.6) is None
    assert pairing.late_copies == 1


def test_a_received_reset_with_its_copy_folded_in_the_kernel_is_not_remembered():
    pairing = OriginPairing(window=0.2, latency=0.05)
    rec = records((100.01, "reset-received", "10.0.0.2", 9, "10.0.0.1", 5000, 2))
    rec["flags"] |= constants()["TW_F_DEVICE_COPY"]
    pairing.feed(rec, round(100.02 * S))
    # a second RST of that flow no socket took: reported, not swallowed by the first
    out = feed(pairing, (100.05, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2), now=100.6)
    assert list(out["delivered"]) == ["no"] and pairing.late_copies == 0


class FakeSlots:
    """A bcc per-CPU array of struct tw_held_rst: getvalue returns every CPU's bytes; each read
    may be changed by `writer` first (the kernel writing meanwhile)."""

    def __init__(self, slots, writer=None):
        self.slots, self.writer, self.reads = slots, writer, 0

    def Key(self, n):
        return n

    def getvalue(self, _key):
        self.reads += 1
        if self.writer:
            self.writer(self.slots, self.reads)
        return self.slots.tobytes()


def held_slots(*specs):
    from tcpwatch.live.held import slot_dtype

    slots = np.zeros(len(specs), dtype=slot_dtype())
    for cpu, spec in enumerate(specs):
        if spec is not None:
            slots[cpu]["e"] = records(spec)[0]
            slots[cpu]["token"] = slots[cpu]["last_token"] = cpu + 1
    return slots


def test_held_rsts_are_taken_when_old_once_and_their_later_copy_dropped():
    from tcpwatch.live.held import HeldRsts

    slots = held_slots((100.00, "wire-in", "10.0.0.9", 443, "10.0.0.1", 5002, 2), None,
                       (100.20, "wire-in", "10.0.0.9", 444, "10.0.0.1", 5003, 2))
    held = HeldRsts(FakeSlots(slots), horizon=round(0.25 * S))
    taken = held.take(round(100.3 * S))
    assert list(taken["sport"]) == [443]                       # the other is still young
    assert len(held.take(round(100.31 * S))) == 0              # not taken twice
    assert list(held.take(round(100.31 * S), everything=True)["sport"]) == [444]   # at the end, all
    # the kernel sends the first on when the next RST arrives on its CPU: that copy goes
    later = records((100.00, "wire-in", "10.0.0.9", 443, "10.0.0.1", 5002, 2),
                    (100.90, "wire-in", "10.0.0.9", 445, "10.0.0.1", 5004, 2))
    assert list(held.drop_copies(later)["sport"]) == [445] and held.taken == 2


def test_a_held_rst_being_rewritten_is_not_taken():
    from tcpwatch.live.held import HeldRsts

    def kernel_writes(slots, reads):      # each read sees the slot half-written
        slots[0]["e"]["sport"] = 1000 + reads

    slots = held_slots((100.00, "wire-in", "10.0.0.9", 443, "10.0.0.1", 5002, 2))
    assert len(HeldRsts(FakeSlots(slots, kernel_writes), horizon=round(0.25 * S)).take(round(101 * S))) == 0
