"""`tcpwatch rules`: printed fragment and --apply/--remove inside a test namespace only."""

from __future__ import annotations

import subprocess

import pytest

from conftest import run_cli
from tcpwatch.iplog.rules import COMMENT, RuleSpec, render_all, rule_lines


def test_fragment_logs_rst_both_ways_with_excluded_port():
    lines = rule_lines(RuleSpec(prefix="[drds] ", exclude_ports=(3406,)))
    assert lines[0].startswith("-A INPUT -p tcp -m tcp ! --dport 3406 --tcp-flags RST RST")
    assert lines[1].startswith("-A OUTPUT -p tcp -m tcp ! --sport 3406 --tcp-flags RST RST")
    assert all('--log-prefix "[drds] " --log-level 7 --log-tcp-sequence --log-tcp-options --log-ip-options' in l
               for l in lines)
    multi = rule_lines(RuleSpec(exclude_ports=(1, 2)))
    assert "-m multiport ! --dports 1,2" in multi[0] and "-m multiport ! --sports 1,2" in multi[1]
    text = render_all(RuleSpec(log_file="/var/log/x.log", keep_days=30))
    assert "rotate 30" in text and 'file="/var/log/x.log"' in text and "$msg contains '[drds] '" in text


def test_cli_rejects_bad_prefix():
    res = run_cli("rules", "--prefix", "x" * 40)
    assert res.returncode == 2 and "prefix" in res.stderr


@pytest.mark.live
def test_apply_and_remove_inside_a_namespace(lab):
    ns = lab.server.name
    res = run_cli("rules", "--apply", "--netns", ns, "--exclude-port", "3406")
    assert res.returncode == 0, res.stderr
    listed = lab.server.run("iptables", "-S").stdout + lab.server.run("ip6tables", "-S").stdout
    assert listed.count(COMMENT) == 4 and "! --sport 3406" in listed
    assert COMMENT not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    res = run_cli("rules", "--remove", "--netns", ns)
    assert res.returncode == 0 and res.stdout.count("removed") == 4
    assert COMMENT not in lab.server.run("iptables", "-S").stdout
