"""IPv6 in the lab (root): every link, the LAN, the server and the target have 2001:db8::/32
addresses; bondingd bonds the paths' IPv6 (endpoints, probes, policy routing) and the data plane
proxies the LAN's IPv6 when the server has an IPv6 address.

Three labs: bondingd alone (the control plane), the full path whose bonded connections run over
the links' IPv4 (LAN IPv6 carried inside them), and the full path over the links' IPv6
(`tunnel6`: MPTCP subflows on IPv6)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from bonding.lab.topology import (
    LAN_HOST6,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    TARGET_ADDR6,
    Lab,
)
from bonding.lab.traffic import (
    Service,
    ask_from,
    endpoints,
    family_state,
    lan_transfer,
    link_rates,
    path_state,
    try_ask_from,
    wait_all_up,
    wait_family_up,
    wait_for,
    wait_proxy_running,
)

pytestmark = pytest.mark.lab

PRIO = 1000  # rule_priority
# A sanity limit on how long a blackhole takes to notice, generous for a busy host: the bar
# (≤ 1 s in ≥ 95% of runs, also just after a path came up) is measured by bench/detect.py.
NOTICED_S = 2.5
RT, BASE = 200, 210  # route_table, path_table_base


def ip6(lab: Lab, *args: str) -> Any:
    st = lab.state or lab.load()
    r = subprocess.run(["ip", "-n", st.namespaces["router"], "-j", "-6", *args],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout or "[]")


def our_rules6(lab: Lab) -> list[dict[str, Any]]:
    return [r for r in ip6(lab, "rule", "show") if PRIO <= r["priority"] < PRIO + 100]


def table6(lab: Lab, table: int) -> list[dict[str, Any]]:
    try:
        out: list[dict[str, Any]] = ip6(lab, "route", "show", "table", str(table))
    except subprocess.CalledProcessError:
        return []
    return out


def hop_devs(route: dict[str, Any]) -> list[str]:
    return [h["dev"] for h in route.get("nexthops", [route])]


def server6_devs(lab: Lab) -> list[str]:
    r = [x for x in table6(lab, RT) if x["dst"] == SERVER_ADDR6]
    return hop_devs(r[0]) if r else []


def default6_dev(lab: Lab) -> str | None:
    r = [x for x in table6(lab, RT) if x["dst"] == "default"]
    return r[0].get("dev") if r else None


def ep_addresses(lab: Lab) -> set[str]:
    return {str(e.get("address")) for e in endpoints(lab)}


def families(lab: Lab, name: str) -> dict[str, Any]:
    fams: dict[str, Any] = lab.status()["paths"][name]["families"]
    return fams


@pytest.fixture
def fresh6(fresh: Lab) -> Lab:
    """bondingd's lab, faults cleared, both families of every path up."""
    assert wait_family_up(fresh, 6, 20), fresh.status().get("paths")
    return fresh


# --- the control plane: endpoints, rules and routes of IPv6 ------------------------------------

def test_ipv6_endpoints_rules_and_routes_of_every_path(fresh6: Lab) -> None:
    links = fresh6.load().links
    assert wait_for(lambda: {x.router_addr6 for x in links} <= ep_addresses(fresh6), 2)
    eps = {e["address"]: e for e in endpoints(fresh6)}
    for x in links:  # a subflow endpoint bound to the path's device, like IPv4's
        assert eps[x.router_addr6].get("dev") == x.router_dev, eps[x.router_addr6]
        assert eps[x.router_addr6].get("subflow") is True, eps[x.router_addr6]
        assert not eps[x.router_addr6].get("backup"), eps[x.router_addr6]
    rules = {r["priority"]: r for r in our_rules6(fresh6)}
    assert rules[PRIO + 1]["table"] == "main" and rules[PRIO + 1]["suppress_prefixlen"] == 0
    for x in links:
        r = rules[PRIO + 1 + x.index]
        assert (r["src"], r["table"]) == (x.router_addr6, str(BASE + x.index - 1))
        # each path's table: the default route through its own link, gateway learnt from the
        # main table's source-specific route (as netifd leaves it on OpenWrt)
        (d,) = table6(fresh6, BASE + x.index - 1)
        assert (d["dst"], d["gateway"], d["dev"]) == ("default", x.isp_addr6, x.router_dev)
    assert rules[PRIO + 90]["table"] == str(RT) and rules[PRIO + 90]["iif"] == "lo"
    assert sorted(server6_devs(fresh6)) == ["wan1", "wan2", "wan3"]
    assert default6_dev(fresh6) == "wan1"
    for x in links:  # the status has each family, probed over its own address
        f6 = families(fresh6, x.name)["ipv6"]
        assert (f6["state"], f6["probed"], f6["carrying"], f6["address"], f6["gateway"]) == (
            "up", True, True, x.router_addr6, x.isp_addr6)
        assert {t["address"] for t in f6["targets"]} == {SERVER_ADDR6, TARGET_ADDR6}
        # each target answers (they take turns leading the rounds: the second one's first
        # turn may come after the family went up on the first answer)
        assert wait_for(lambda n=x.name: all(
            t["received"] > 0 for t in families(fresh6, n)["ipv6"]["targets"]), 3), f6
        assert f6["rtt_ms"] >= 2 * x.delay_ms  # the link's delay, each way
        assert fresh6.status()["paths"][x.name]["address6"] == x.router_addr6


def test_an_ipv6_outage_takes_out_ipv6_alone(fresh6: Lab) -> None:
    """An ISP whose IPv6 breaks: the path stays up on IPv4, its IPv6 endpoint and routes go."""
    wan2 = fresh6.link("wan2")
    t0 = time.time()
    fresh6.blackhole("wan2", 6)
    assert wait_for(lambda: family_state(fresh6, "wan2", 6) == "down", 3, 0.01) is not None
    f6 = families(fresh6, "wan2")["ipv6"]
    assert f6["since"] - t0 < NOTICED_S and "probe rounds got no reply" in f6["reason"]
    assert path_state(fresh6, "wan2") == "up"  # IPv4 still answers: the link carries
    assert families(fresh6, "wan2")["ipv4"]["state"] == "up"
    assert wait_for(lambda: wan2.router_addr6 not in ep_addresses(fresh6), 1) is not None
    assert wan2.router_addr in ep_addresses(fresh6)
    assert wait_for(lambda: sorted(server6_devs(fresh6)) == ["wan1", "wan3"], 1) is not None
    fresh6.clear("wan2")
    assert wait_for(lambda: family_state(fresh6, "wan2", 6) == "up", 10, 0.01) is not None
    assert wait_for(lambda: wan2.router_addr6 in ep_addresses(fresh6), 1) is not None
    assert wait_for(lambda: sorted(server6_devs(fresh6)) == ["wan1", "wan2", "wan3"], 1)


def test_a_blackholed_link_is_taken_out_in_both_families(fresh6: Lab) -> None:
    wan1 = fresh6.link("wan1")
    t0 = time.time()
    fresh6.blackhole("wan1")
    assert wait_for(lambda: path_state(fresh6, "wan1") == "down", 3, 0.01) is not None
    assert fresh6.status()["paths"]["wan1"]["since"] - t0 < NOTICED_S
    assert family_state(fresh6, "wan1", 6) == "down"
    gone = {wan1.router_addr, wan1.router_addr6}
    assert wait_for(lambda: not gone & ep_addresses(fresh6), 1) is not None
    # the router's own IPv6 default route moves to the next live path
    assert wait_for(lambda: default6_dev(fresh6) == "wan2", 1) is not None
    assert sorted(server6_devs(fresh6)) == ["wan2", "wan3"]
    fresh6.clear("wan1")
    assert wait_for(lambda: path_state(fresh6, "wan1") == "up", 10, 0.01) is not None
    assert wait_for(lambda: gone <= ep_addresses(fresh6) and default6_dev(fresh6) == "wan1",
                    10) is not None


def test_stop_removes_ipv6_rules_routes_and_endpoints(fresh6: Lab) -> None:
    st = fresh6.load()
    fresh6.stop_daemon()
    try:
        assert our_rules6(fresh6) == []
        for table in (RT, BASE, BASE + 1, BASE + 2):
            assert table6(fresh6, table) == [], table
        assert not {x.router_addr6 for x in st.links} & ep_addresses(fresh6)
        # what is not bondingd's stays: the main table's routes
        assert any(r["dst"] == "default" for r in ip6(fresh6, "route", "show", "table", "main"))
    finally:
        fresh6.start_daemon()
    assert wait_all_up(fresh6, 20)


# --- the full path, bonded over the links' IPv4: LAN IPv6 inside ------------------------------

def test_lan_ipv6_goes_through_the_proxy(full: Lab) -> None:
    assert full.status()["proxy"]["ipv6"] == {"lan": "proxied", "reason": ""}
    with Service(full, "target", "whoami", 8090), Service(full, "target", "udp-echo", 7090):
        # the target sees the server's IPv6 address: LAN IPv6 went through the proxy
        assert ask_from(full, "lan", "whoami", TARGET_ADDR6, 8090) == SERVER_ADDR6
        assert ask_from(full, "lan", "udp-echo", TARGET_ADDR6, 7090) == f"{SERVER_ADDR6} ping"
        # IPv4 at the same time, through the same proxy
        assert ask_from(full, "lan", "whoami", TARGET_ADDR, 8090) == SERVER_ADDR
        assert ask_from(full, "lan", "udp-echo", TARGET_ADDR, 7090) == f"{SERVER_ADDR} ping"
        # the router's own IPv6 is not proxied: it leaves by its first live path
        assert ask_from(full, "router", "whoami", TARGET_ADDR6, 8090) == full.link(
            "wan1").router_addr6
    st = full.load()
    r = subprocess.run(["ip", "netns", "exec", st.namespaces["router"], "nft", "-j", "list",
                        "set", "inet", "bonding", "servers6"], capture_output=True, text=True,
                       check=True)
    assert json.loads(r.stdout)["nftables"][1]["set"]["elem"] == [SERVER_ADDR6]


def test_without_an_ipv6_server_lan_ipv6_is_routed_natively(full: Lab) -> None:
    """The server has no IPv6 address: LAN IPv6 takes the router's ordinary routes (ISP 1
    delegated the LAN prefix), status says why; IPv4 is still proxied."""
    with Service(full, "target", "whoami", 8091):
        try:
            full.set_options({"lab": {"address6": None}})
            assert wait_for(lambda: full.status()["proxy"]["ipv6"]["lan"] == "routed natively",
                            10) is not None
            assert "no IPv6 address (option address6)" in full.status()["proxy"]["ipv6"][
                "reason"]
            assert wait_proxy_running(full, 10)
            assert wait_for(lambda: _whoami(full, TARGET_ADDR6, 8091) == LAN_HOST6, 5, 0.2)
            assert _whoami(full, TARGET_ADDR, 8091) == SERVER_ADDR
        finally:
            full.set_options({"lab": {"address6": SERVER_ADDR6}})
        assert wait_for(lambda: full.status()["proxy"]["ipv6"]["lan"] == "proxied", 10)
        assert wait_proxy_running(full, 10)
        assert wait_for(lambda: _whoami(full, TARGET_ADDR6, 8091) == SERVER_ADDR6, 5, 0.2)


def _whoami(lab: Lab, host: str, port: int) -> str | None:
    return try_ask_from(lab, "lan", "whoami", host, port, timeout=1)


# --- the full path over the links' IPv6 (MPTCP subflows on IPv6) ------------------------------

def test_over_ipv6_one_lan_flow_uses_every_link_on_ipv6_subflows(full6: Lab) -> None:
    with Service(full6, "target", "whoami", 8092):
        assert ask_from(full6, "lan", "whoami", TARGET_ADDR6, 8092) == SERVER_ADDR6
    t = lan_transfer(full6, 7, ipv6=True)
    t.start()
    try:
        r = link_rates(full6, 2.5, 3.5)
        paths = full6.status()["paths"]
        report = t.result(timeout=25)
    finally:
        t.stop()
    for link in full6.load().links:
        # every link carries at least half its rate of this one plain TCP connection
        assert r[link.name] > 0.5 * link.rate_mbit * 1e6, (link.name, r)
        fams = paths[link.name]["families"]
        assert fams["ipv6"]["subflows"] >= 1 and fams["ipv4"]["subflows"] == 0, fams
    assert report["end"]["sum_received"]["bits_per_second"] > 60e6, report["end"]


def test_over_ipv6_a_blackholed_link_is_taken_out_and_the_flow_survives(full6: Lab) -> None:
    wan1 = full6.link("wan1")
    t = lan_transfer(full6, 14, ipv6=True)
    t.start()
    try:
        time.sleep(3)
        full6.blackhole("wan1")
        assert wait_for(lambda: path_state(full6, "wan1") == "down", 3, 0.01) is not None
        assert wait_for(lambda: wan1.router_addr6 not in ep_addresses(full6), 1) is not None
        r = link_rates(full6, 1, 3)
        assert t.running(), "the transfer died with the link"
        assert r["wan1"] < 1e6, r  # nothing (but probes) leaves by the dead link
        assert r["wan2"] + r["wan3"] > 0.5 * 50e6, r  # the others carry the flow
        full6.clear("wan1")
        report = t.result(timeout=30)
    finally:
        t.stop()
    end = report["end"]["sum_received"]
    assert end["seconds"] > 13 and end["bytes"] > 14 * 30e6 / 8, end
