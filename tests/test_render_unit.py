"""Terminal lines (tcpwatch/render.py): formatted once per template, filled per event."""

import time

import pandas as pd

from tcpwatch.render import event_lines, event_text, shown_comm

TS = 1_700_000_000.25


def _frame(**extra) -> pd.DataFrame:
    rows = [
        # a flood's shape: the same flow but for the client's port, then a different one
        {"kind": "reset-sent", "saddr": "10.0.0.1", "sport": 9, "daddr": "10.0.0.2", "dport": 40000,
         "state": None, "reason": "NO_SOCKET", "netns": 4026531840, "pid": None, "comm": None},
        {"kind": "reset-sent", "saddr": "10.0.0.1", "sport": 9, "daddr": "10.0.0.2", "dport": 40001,
         "state": None, "reason": "NO_SOCKET", "netns": 4026531840, "pid": None, "comm": None},
        {"kind": "reset-received", "saddr": "fd00::1", "sport": 443, "daddr": "fd00::2", "dport": 5,
         "state": "ESTABLISHED", "reason": None, "netns": 4026531840, "pid": 77, "comm": "curl"},
        # a flow wider than its column is not cut; an unknown port shows as "-"
        {"kind": "reset-sent", "saddr": "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", "sport": None,
         "daddr": "2001:db8:aaaa:bbbb:cccc:dddd:eeee:2", "dport": 65535, "state": "CLOSE", "reason": None,
         "netns": 1, "pid": None, "comm": None},
    ]
    frame = pd.DataFrame(rows)
    frame.insert(0, "ts", [TS, TS + 0.000001, TS + 1.5, TS + 2])
    for column in ("sport", "dport", "pid"):
        frame[column] = frame[column].astype("Int64")
    for name, values in extra.items():
        frame[name] = values
    return frame


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{round(ts * 1e6) % 1_000_000:06d}"


def test_plain_lines_exactly():
    lines = event_lines(_frame())
    assert lines == [
        f"{_clock(TS)} SENT  {'10.0.0.1:9 -> 10.0.0.2:40000':<47} {'-':<11} {'NO_SOCKET':<18} 4026531840",
        f"{_clock(TS + 0.000001)} SENT  {'10.0.0.1:9 -> 10.0.0.2:40001':<47} {'-':<11} {'NO_SOCKET':<18} 4026531840",
        f"{_clock(TS + 1.5)} RECV  {'[fd00::1]:443 -> [fd00::2]:5':<47} {'ESTABLISHED':<11} {'-':<18} "
        "4026531840 77/curl",
        f"{_clock(TS + 2)} SENT  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:- -> [2001:db8:aaaa:bbbb:cccc:dddd:eeee:2]:65535 "
        f"{'CLOSE':<11} {'-':<18} 1",
    ]


def test_diagnosed_lines_carry_the_cause_and_evidence():
    frame = _frame(cause=["port-closed", "port-closed", "peer-reset", None],
                   explanation=["nothing listens", "nothing listens", "the peer reset it", None],
                   origin=["tcp-stack", "tcp-stack", "remote", None], trigger_flags=["S", "S", None, None],
                   ct_lookup=[None, None, "found", "found"], ct_state=[None, None, "CLOSE", "TIME_WAIT"],
                   ct_event=[None, None, "destroy", None], rule=[None, None, None, "-A INPUT -j REJECT"])
    lines = event_lines(frame)
    assert lines[0].splitlines() == [
        f"{_clock(TS)} SENT  {'10.0.0.1:9 -> 10.0.0.2:40000':<47} {'-':<11} {'NO_SOCKET':<18} port-closed",
        " " * 22 + "nothing listens (by tcp-stack, netns 4026531840, answering [S])"]
    assert lines[2].splitlines()[1] == (" " * 22 + "the peer reset it (by remote, netns 4026531840, pid 77/curl, "
                                        "conntrack CLOSE (destroyed))")
    assert lines[3].splitlines()[1] == " " * 22 + "- (by -, netns 1, conntrack TIME_WAIT, rule -A INPUT -j REJECT)"


def test_a_batch_reads_as_its_events_one_by_one():
    """Events sharing a template, and those that don't, read the same in a batch as alone."""
    for frame in (_frame(), _frame(cause=["a", "a", "b", "a"], explanation=["x", "x", "y", "x"])):
        alone = "".join(event_text(frame.iloc[[i]]) for i in range(len(frame)))
        assert event_text(frame) == alone
        assert event_text(frame).count("\n") == len(frame) * (2 if "cause" in frame.columns else 1)


def test_empty_batch():
    assert event_text(_frame().iloc[0:0]) == "" and event_lines(_frame().iloc[0:0]) == []


def test_a_process_name_cannot_drive_the_terminal():
    frame = _frame()
    frame.loc[2, "comm"] = "evil\n12:00:00.000000 SENT\x1b[2J"
    line = event_lines(frame)[2]
    assert line.endswith(" 77/evil?12:00:00.000000 SENT?[2J") and "\n" not in line and "\x1b" not in line
    assert shown_comm("evil\n\x1b[2J\x7f") == "evil??[2J?"     # the same for the lines built in Python
