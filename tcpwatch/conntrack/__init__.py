"""Conntrack enrichment: each event joined with its connection-tracking entry (pyroute2 netlink).

    with ConntrackCaches() as caches:          # one cache per network namespace, opened on first use
        frame = enrich(frame, caches)          # adds the ct_ columns of CT_DTYPES

Heavy imports (pyroute2, pandas) happen inside the functions that need them.
"""

from .cache import ConntrackCache
from .enrich import ConntrackCaches, enrich
from .entry import CT_DTYPES, CtEntry, CtEvent, CtLookup, empty_columns
from .firewall import FiredRule, RuleCounter, firewall_rule_counters, which_rule_fired
from .netns import NetnsRef, resolve_netns

__all__ = [
    "CT_DTYPES", "ConntrackCache", "ConntrackCaches", "CtEntry", "CtEvent", "CtLookup", "FiredRule",
    "NetnsRef", "RuleCounter", "empty_columns", "enrich", "firewall_rule_counters", "resolve_netns",
    "which_rule_fired",
]
