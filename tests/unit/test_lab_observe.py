"""What the lab shows of itself: per-link counters from `ip -s -j link`, and `describe`
(no root)."""

from __future__ import annotations

from pathlib import Path

from bonding.lab.build import plan_state
from bonding.lab.model import SERVER2_ADDR, SERVER_ADDR, parse_links
from bonding.lab.observe import describe_state, link_counters


def test_link_counters_by_router_device() -> None:
    st = plan_state("bx", parse_links("50,30"), 1, Path("/s"))
    ip = [{"ifname": "lo", "stats64": {"rx": {"bytes": 1}, "tx": {"bytes": 1}}},
          {"ifname": "wan1", "stats64": {"rx": {"bytes": 100}, "tx": {"bytes": 200}}},
          {"ifname": "wan2", "stats64": {"rx": {"bytes": 300}, "tx": {"bytes": 400}}},
          {"ifname": "lan0", "stats64": {"rx": {"bytes": 9}, "tx": {"bytes": 9}}}]
    assert link_counters(ip, st.links) == {"wan1": {"rx": 100, "tx": 200},
                                           "wan2": {"rx": 300, "tx": 400}}


def test_describe() -> None:
    st = plan_state("bx", parse_links("50/10ms"), 2, Path("/s/bx"))
    st.proxy = True
    st.client_ports = {"server": 40001, "server2": 40002}
    st.pids["bonding-server2"] = 77
    d = describe_state(st, ["server", "server2"])
    assert d["links"][0]["rtt_added_ms"] == 20
    assert d["links"][0]["gateway"] == "100.64.1.1"
    assert [(s["role"], s["address"], s["section"], s["port"], s["pid"]) for s in d["servers"]] \
        == [("server", SERVER_ADDR, "lab", 40001, None),
            ("server2", SERVER2_ADDR, "lab2", 40002, 77)]
    assert d["proxy"]["secrets"] == "/s/bx/etc/bonding_secrets"
    assert d["bondingd"]["status"] == "/s/bx/run/status.json"
    st.proxy = False
    assert describe_state(st, ["server"])["proxy"] is None
