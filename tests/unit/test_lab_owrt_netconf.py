"""The lab's OpenWrt router's network and firewall configs and its WAN plan, read back by the
project's UCI parser (no root; netifd and fw4 read them in tests/lab/test_openwrt_lab.py)."""

from __future__ import annotations

from pathlib import Path

from bonding import uci
from bonding.lab.build import plan_state
from bonding.lab.model import parse_links
from bonding.lab.owrt.lab import wan_plan
from bonding.lab.owrt.netconf import lab_firewall, lab_network


def test_every_wan_but_the_last_is_dhcp_one_link_alone_too() -> None:
    st = plan_state("bx", parse_links("50,30,20"), 1, Path("/s"))
    assert wan_plan(st) == [("wan1", 1, True), ("wan2", 2, True), ("wan3", 3, False)]
    assert wan_plan(plan_state("bx", parse_links("50"), 1, Path("/s"))) == [("wan1", 1, True)]


def test_network_lan_static_dhcp_wans_and_the_static_one_with_metrics() -> None:
    text = lab_network("lan0", ("192.0.2.1", "255.255.255.0"),
                       [("wan1", 1, True), ("wan2", 2, False)])
    got = {s.name: dict(s.options) for s in uci.loads(text, "network").sections}
    assert got["lan"] == {"device": "lan0", "proto": "static", "ipaddr": "192.0.2.1",
                          "netmask": "255.255.255.0"}
    assert got["wan1"] == {"device": "wan1", "proto": "dhcp", "metric": "10"}
    assert got["wan2"] == {"device": "wan2", "proto": "static", "ipaddr": "100.64.2.2",
                           "netmask": "255.255.255.0", "gateway": "100.64.2.1", "metric": "20"}
    assert got["loopback"]["device"] == "lo"


def test_firewall_zones_masquerade_and_forwarding() -> None:
    secs = uci.loads(lab_firewall(["wan1", "wan2"]), "firewall").sections
    zones = {s.options["name"]: s.options for s in secs if s.type == "zone"}
    assert zones["wan"]["network"] == ("wan1", "wan2") and zones["wan"]["masq"] == "1"
    assert zones["lan"]["network"] == ("lan",)
    assert [dict(s.options) for s in secs if s.type == "forwarding"] == [
        {"src": "lan", "dest": "wan"}]
    assert {s.options["name"] for s in secs if s.type == "rule"} == {"Allow-DHCP-Renew",
                                                                     "Allow-Ping"}
