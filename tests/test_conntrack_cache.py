"""The conntrack cache, enrichment and firewall counters without a kernel: entries fed through apply()."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from tcpwatch.conntrack import (CT_DTYPES, ConntrackCache, CtEvent, CtLookup, enrich, resolve_netns,
                                which_rule_fired)
from tcpwatch.conntrack.firewall import parse_iptables_save
from tcpwatch.errors import UsageProblem

CLIENT, VIP, REAL = "198.18.0.1", "198.18.0.2", "198.18.0.2"


def fields(ct_id, sport, state, orig_dport=80, reply_sport=80, **extra):
    """A client -> server:orig_dport connection; the server answers from reply_sport (DNAT if different)."""
    return {"family": socket.AF_INET, "ct_id": ct_id,
            "ct_orig_src": CLIENT, "ct_orig_sport": sport, "ct_orig_dst": VIP, "ct_orig_dport": orig_dport,
            "ct_reply_src": REAL, "ct_reply_sport": reply_sport, "ct_reply_dst": CLIENT, "ct_reply_dport": sport,
            "ct_state": state, "ct_status": "SEEN_REPLY,ASSURED,CONFIRMED", **extra}


@pytest.fixture
def cache():
    return ConntrackCache(listen=False, ttl=30.0)


def test_matches_either_direction_and_says_which(cache):
    cache.apply(CtEvent.NEW, fields(7, 40000, "ESTABLISHED"), seen_ts=100.0)
    entry, direction = cache.match(socket.AF_INET, CLIENT, 40000, VIP, 80, ts=100.5)
    assert entry.ct_id == 7 and direction == "original"
    entry, direction = cache.match(socket.AF_INET, VIP, 80, CLIENT, 40000, ts=100.5)
    assert entry.ct_id == 7 and direction == "reply"
    assert cache.lookup(socket.AF_INET, CLIENT, 40001, VIP, 80) is None


def test_updates_merge_and_destroyed_entries_linger_for_ttl(cache):
    cache.apply(CtEvent.NEW, fields(7, 40000, "SYN_SENT", ct_mark=5), seen_ts=100.0)
    cache.apply(CtEvent.UPDATE, fields(7, 40000, "CLOSE", ct_timeout=10), seen_ts=101.0)
    cache.apply(CtEvent.DESTROY, {"family": socket.AF_INET, "ct_id": 7}, seen_ts=111.0)
    entry = cache.lookup(socket.AF_INET, VIP, 80, CLIENT, 40000, ts=101.0)
    assert (entry.ct_state, entry.ct_mark, entry.ct_timeout, entry.ct_event) == ("CLOSE", 5, 10, CtEvent.DESTROY)
    assert entry.destroyed_ts == 111.0
    assert cache.prune(now=111.0 + 29) == 0 and len(cache) == 1
    assert cache.prune(now=111.0 + 31) == 1 and len(cache) == 0
    assert cache.lookup(socket.AF_INET, VIP, 80, CLIENT, 40000) is None


def test_dnat_reply_tuple_reveals_the_real_destination(cache):
    cache.apply(CtEvent.NEW, fields(9, 40000, "ESTABLISHED", orig_dport=80, reply_sport=8080), seen_ts=1.0)
    # the packet as the server sees it after DNAT: real port 8080 -> client
    columns = cache.columns(socket.AF_INET, REAL, 8080, CLIENT, 40000, ts=1.0)
    assert columns["ct_lookup"] == "found" and columns["ct_dir"] == "reply"
    assert (columns["ct_orig_dport"], columns["ct_reply_sport"]) == (80, 8080)


def test_reused_tuple_picks_the_entry_alive_at_the_event_time(cache):
    cache.apply(CtEvent.NEW, fields(1, 40000, "ESTABLISHED"), seen_ts=100.0)
    cache.apply(CtEvent.DESTROY, {"ct_id": 1}, seen_ts=110.0)
    cache.apply(CtEvent.NEW, fields(2, 40000, "SYN_SENT"), seen_ts=200.0)
    assert cache.lookup(socket.AF_INET, CLIENT, 40000, VIP, 80, ts=105.0).ct_id == 1
    assert cache.lookup(socket.AF_INET, CLIENT, 40000, VIP, 80, ts=200.2).ct_id == 2
    assert cache.lookup(socket.AF_INET, CLIENT, 40000, VIP, 80).ct_id == 2      # no ts: the latest


def test_v4_mapped_event_addresses_find_ipv4_entries(cache):
    cache.apply(CtEvent.NEW, fields(3, 40000, "ESTABLISHED"), seen_ts=1.0)
    assert cache.lookup(socket.AF_INET6, f"::ffff:{CLIENT}", 40000, f"::ffff:{VIP}", 80).ct_id == 3


def test_no_entry_versus_not_tracked(cache):
    assert cache.columns(socket.AF_INET, CLIENT, 1, VIP, 2)["ct_lookup"] == "not-tracked"
    cache.apply(CtEvent.NEW, fields(3, 40000, "ESTABLISHED"), seen_ts=1.0)
    missing = cache.columns(socket.AF_INET, CLIENT, 1, VIP, 2)
    assert missing["ct_lookup"] == "no-entry" and missing["ct_state"] is None
    assert set(missing) == set(CT_DTYPES)


def test_message_without_tuples_is_counted_not_cached(cache):
    assert cache.apply(CtEvent.DESTROY, {"ct_id": 99}) is None
    assert cache.counts["incomplete"] == 1 and len(cache) == 0


def test_enrich_adds_typed_columns_per_namespace(cache):
    cache.apply(CtEvent.UPDATE, fields(7, 40000, "CLOSE"), seen_ts=5.0)
    other = ConntrackCache(listen=False)
    events = pd.DataFrame({
        "ts": [5.0, 5.0, 5.0, 5.0],
        "family": pd.array([2, 2, 2, None], dtype="UInt8"),
        "saddr": pd.array([VIP, VIP, VIP, VIP], dtype="string"),
        "sport": pd.array([80, 80, 80, 80], dtype="UInt16"),
        "daddr": pd.array([CLIENT, CLIENT, CLIENT, CLIENT], dtype="string"),
        "dport": pd.array([40000, 40000, 40000, 40000], dtype="UInt16"),
        "netns": pd.array([11, 22, 33, 11], dtype="UInt64"),
    }, index=[10, 11, 12, 13])
    out = enrich(events, {11: cache, 22: other})
    assert list(out.index) == [10, 11, 12, 13]
    assert out["ct_lookup"].tolist() == ["found", "not-tracked", "unavailable", "unavailable"]
    assert out.loc[10, "ct_state"] == "CLOSE" and out.loc[10, "ct_id"] == 7
    assert out["ct_state"].isna().tolist() == [False, True, True, True]
    for name, dtype in CT_DTYPES.items():
        assert str(out[name].dtype) == dtype, name
    assert "ct_state" not in events.columns          # the input frame is left alone


def test_enrich_with_one_cache_and_an_empty_frame(cache):
    empty = pd.DataFrame({"ts": pd.Series([], dtype="float64")})
    out = enrich(empty, cache)
    assert len(out) == 0 and set(CT_DTYPES) <= set(out.columns)


def test_resolve_netns_names_and_inodes():
    own = resolve_netns(None)
    assert own.path is None and resolve_netns(own.inode) == own
    with pytest.raises(UsageProblem):
        resolve_netns("surely-no-such-netns-here")
    with pytest.raises(UsageProblem):
        resolve_netns(1)                  # no namespace has inode 1


SAVE = """# Generated by iptables-save
*filter
:INPUT ACCEPT [0:0]
[12:720] -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[3:180] -A INPUT -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
[0:0] -A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
COMMIT
*nat
[1:60] -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.0.2:8080
COMMIT
"""


def test_parse_iptables_save_counters():
    rules = parse_iptables_save(SAVE)
    assert [(r.table, r.chain, r.index, r.packets) for r in rules] == [
        ("filter", "INPUT", 1, 12), ("filter", "INPUT", 2, 3), ("filter", "INPUT", 3, 0), ("nat", "PREROUTING", 1, 1)]
    assert rules[1].spec.startswith("-p tcp") and rules[1].rejects and not rules[0].rejects


def test_which_rule_fired_names_the_reject_rule_whose_counter_moved():
    before = parse_iptables_save(SAVE)
    after = parse_iptables_save(SAVE.replace("[0:0] -A INPUT -p tcp -m tcp --dport 81", "[2:120] -A INPUT -p tcp "
                                             "-m tcp --dport 81").replace("[12:720]", "[20:900]"))
    fired = which_rule_fired(before, after)
    assert [(f.rule.index, f.packets) for f in fired] == [(3, 2)]
    assert "--dport 81" in fired[0].describe()
    everything = which_rule_fired(before, after, rejecting_only=False)
    assert [(f.rule.index, f.packets) for f in everything] == [(1, 8), (3, 2)]
    assert which_rule_fired(after, after) == []
