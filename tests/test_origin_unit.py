"""Pairing the stack's reset events with RSTs seen on devices (tcpwatch.live.origin)."""

import pandas as pd

from tcpwatch.events import conform
from tcpwatch.live.decode import LIVE_DTYPES, flags_text
from tcpwatch.live.origin import OriginPairing


def rows(*specs):
    records = [dict(ts=ts, source="bpf", kind=kind, family=4, saddr=s, sport=sp, daddr=d, dport=dp, netns=ns,
                    ifindex=7 if kind.startswith("wire") else None, tcp_flags="R." if kind.startswith("wire") else None)
               for ts, kind, s, sp, d, dp, ns in specs]
    return conform(pd.DataFrame.from_records(records), LIVE_DTYPES)


def test_pairs_label_origin_and_fold_wire_rows():
    pairing = OriginPairing(window=0.2)
    batch = rows(
        (100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1),        # stack, then its packet
        (100.01, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1),
        (100.02, "wire-out", "10.0.0.2", 80, "10.0.0.1", 5001, 1),         # no stack event: netfilter
        (100.03, "wire-in", "10.0.0.2", 9, "10.0.0.1", 5000, 2),           # packet, then the socket saw it
        (100.04, "reset-received", "10.0.0.2", 9, "10.0.0.1", 5000, 2),
        (100.05, "wire-in", "10.0.0.9", 443, "10.0.0.1", 5002, 2),         # never reached a socket
        (100.06, "wire-out", "10.0.0.2", 8081, "10.0.0.1", 5003, 1),       # active reset: packet first
        (100.07, "reset-sent", "10.0.0.2", 8081, "10.0.0.1", 5003, 1),
    )
    assert pairing.feed(batch, now=100.0) is None          # nothing is old enough yet
    out = pairing.feed(None, now=101.0)
    got = list(zip(out["kind"], out["sport"], out["origin"], out["ifindex"]))
    assert got == [("reset-sent", 9, "tcp-stack", 7), ("reset-sent", 80, "netfilter", 7),
                   ("reset-received", 9, "remote", 7), ("reset-received", 443, "remote", 7),
                   ("reset-sent", 8081, "tcp-stack", 7)]
    assert list(out["delivered"].fillna("-")) == ["-", "-", "yes", "no", "-"]
    assert pairing.flush() is None


def test_half_of_a_pair_waits_for_the_other():
    pairing = OriginPairing(window=0.2)
    first = pairing.feed(rows((100.0, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1)), now=100.25)
    assert first is None                                   # its partner may still be in flight
    out = pairing.feed(rows((100.1, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1)), now=100.7)
    assert list(out["origin"]) == ["tcp-stack"] and len(out) == 1


def test_far_apart_events_do_not_pair_and_flush_releases_all():
    pairing = OriginPairing(window=0.2)
    batch = rows((100.0, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1),
                 (105.0, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1))
    assert pairing.feed(batch, now=100.0) is None
    out = pairing.flush()
    assert list(out["origin"]) == ["netfilter", "tcp-stack"]


def test_flags_text():
    assert (flags_text(0x12), flags_text(0x14), flags_text(0x04), flags_text(0x11), flags_text(0)) == (
        "S.", "R.", "R", "F.", None)


def test_next_release_is_when_the_oldest_held_row_becomes_final():
    pairing = OriginPairing(window=0.2, latency=0.3)
    assert pairing.next_release() is None
    pairing.feed(rows((100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1),
                      (100.10, "wire-out", "10.0.0.2", 80, "10.0.0.1", 5001, 1)), now=100.2)
    assert abs(pairing.next_release() - 100.5) < 1e-9
    out = pairing.feed(None, now=100.51)                     # the first is final, the second not yet
    assert list(out["sport"]) == [9] and abs(pairing.next_release() - 100.6) < 1e-9
    pairing.feed(None, now=100.61)
    assert pairing.next_release() is None


def test_capture_wakes_when_a_stage_releases_rows(monkeypatch):
    """A stage's release time brings the next tick forward from the flush interval."""
    import time

    from tcpwatch.live.capture import Capture
    from tcpwatch.live.filters import Filters

    cap = Capture(Filters(), flush_interval=30.0)
    cap._t0 = time.monotonic()
    cap._mono_to_epoch = time.time() - time.monotonic()      # as start() sets it
    polls = []
    monkeypatch.setattr(cap, "_poll", lambda timeout_ms: (polls.append(timeout_ms), time.sleep(timeout_ms / 1000)))
    due = time.time() + 0.2
    ticks = cap.batches(idle_ticks=True, wake=lambda: due)
    assert next(ticks) is None                   # an idle tick at the release time, not 30 s later
    assert polls and all(p <= 1000 for p in polls)
    cap.stop()


def test_capture_keeps_its_pace_under_load(monkeypatch):
    """After a large batch the stage's wake-up is not honoured: batches come at the flush interval."""
    import time

    from tcpwatch.live.capture import Capture
    from tcpwatch.live.filters import Filters

    cap = Capture(Filters(), flush_interval=0.5)
    cap._t0 = time.monotonic()
    cap._mono_to_epoch = time.time() - time.monotonic()
    cap._last_batch_rows = Capture.WAKE_MAX_ROWS + 1
    monkeypatch.setattr(cap, "_poll", lambda timeout_ms: time.sleep(timeout_ms / 1000))
    t0 = time.monotonic()
    assert next(cap.batches(idle_ticks=True, wake=lambda: time.time())) is None
    assert time.monotonic() - t0 >= 0.45      # the flush interval, not the (past) release time
    cap.stop()


def test_an_older_lone_row_of_a_reused_tuple_does_not_shift_the_pairing():
    """A flood reuses ephemeral ports: a held reset of an earlier connection on the same tuple
    (its device copy dropped in the kernel) must not take the device copy of the next one."""
    pairing = OriginPairing(window=0.2, latency=0.05)
    pairing.feed(rows((100.00, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1)), now=100.1)
    pairing.feed(rows((100.21, "reset-sent", "10.0.0.2", 9, "10.0.0.1", 5000, 1),    # same tuple, next connect
                      (100.22, "wire-out", "10.0.0.2", 9, "10.0.0.1", 5000, 1)), now=100.23)
    out = pairing.feed(None, now=101.0)
    assert list(zip(out["ts"], out["origin"])) == [(100.00, "tcp-stack"), (100.21, "tcp-stack")]
    assert list(out["ifindex"].isna()) == [True, False]        # the device copy folded into the second


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
