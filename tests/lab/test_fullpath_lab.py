"""The full path in the lab (root): LAN host → router (nftables tproxy, ss-redir under mptcpize,
bondingd) → 3 shaped links of 50/30/20 Mbit/s (+20/40/80 ms RTT) → bonding-server → target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bonding.lab.topology import SERVER_ADDR, TARGET_ADDR, Lab, LabError
from bonding.lab.traffic import (
    DNS_ANSWER,
    Rates,
    Service,
    ask_from,
    lan_transfer,
    path_state,
    wait_for,
)

pytestmark = pytest.mark.lab


def test_the_target_sees_the_server_not_the_router(full: Lab) -> None:
    with Service(full, "target", "whoami", 8080):
        assert ask_from(full, "lan", "whoami", TARGET_ADDR, 8080) == SERVER_ADDR
        # the router's own traffic is not proxied: it leaves by its own address
        assert ask_from(full, "router", "whoami", TARGET_ADDR, 8080) == "100.64.1.2"


def test_one_tcp_flow_from_the_lan_host_uses_every_link(full: Lab) -> None:
    t = lan_transfer(full, 7)
    t.start()
    try:
        time.sleep(2.5)
        rates = Rates(full)
        time.sleep(3.5)
        r = rates.sample()
        report = t.result(timeout=25)
    finally:
        t.stop()
    for link in full.load().links:
        # every link carries at least half its rate of this one plain TCP connection
        assert r[link.name] > 0.5 * link.rate_mbit * 1e6, (link.name, r)
    # one flow, through the proxy, more than any single link could carry
    assert report["end"]["sum_received"]["bits_per_second"] > 60e6, report["end"]


def test_udp_echo_and_dns_through_the_router(full: Lab) -> None:
    with Service(full, "target", "udp-echo", 7007), Service(full, "target", "dns", 53):
        # the echo names the sender it saw: the server (relayed over Shadowsocks UDP)
        assert ask_from(full, "lan", "udp-echo", TARGET_ADDR, 7007) == f"{SERVER_ADDR} ping"
        assert ask_from(full, "lan", "dns", TARGET_ADDR, 53) == DNS_ANSWER
        for _ in range(3):  # again: the UDP association is kept
            assert ask_from(full, "lan", "dns", TARGET_ADDR, 53) == DNS_ANSWER


def test_destinations_of_the_bypass_list_and_the_router_are_not_proxied(full: Lab) -> None:
    st = full.load()
    with Service(full, "router", "whoami", 8081):
        # addressed to the router itself: answered by the router, seen from the LAN
        assert ask_from(full, "lan", "whoami", "192.0.2.1", 8081) == "192.0.2.10"
    r = subprocess.run(["ip", "netns", "exec", st.namespaces["router"], "nft", "-j", "list",
                        "set", "inet", "bonding", "servers"], capture_output=True, text=True,
                       check=True)
    assert json.loads(r.stdout)["nftables"][1]["set"]["elem"] == [SERVER_ADDR]


def test_a_link_blackholed_mid_transfer_the_transfer_survives(full: Lab) -> None:
    t = lan_transfer(full, 14)
    t.start()
    try:
        time.sleep(3)
        full.blackhole("wan1")  # the fastest link, silently
        assert wait_for(lambda: path_state(full, "wan1") == "down", 3, 0.01) is not None
        time.sleep(2)
        rates = Rates(full)
        time.sleep(3)
        r = rates.sample()
        assert t.running(), "the transfer died with the link"
        # the others carry it: at least 80% of their rates
        assert r["wan2"] + r["wan3"] > 0.8 * 50e6, r
        full.clear("wan1")
        report = t.result(timeout=40)
    finally:
        t.stop()
        full.clear("wan1")
    end = report["end"]["sum_received"]
    assert end["seconds"] > 13.5, end  # it ran to its end
    assert end["bytes"] > 14 * 40e6 / 8, end


def test_proxy_killed_is_restarted_and_reported(full: Lab) -> None:
    before = full.status()["proxy"]
    pid = before["pid"]
    assert before["state"] == "running" and isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: full.status()["proxy"]["restarts"] == before["restarts"] + 1
                    and full.status()["proxy"]["state"] == "running", 10) is not None
    after = full.status()["proxy"]
    assert after["pid"] != pid
    assert "ss-redir killed by signal 9" in after["error"]
    with Service(full, "target", "whoami", 8082):
        assert wait_for(lambda: _whoami(full) == SERVER_ADDR, 5, 0.2) is not None


def _whoami(lab: Lab) -> str | None:
    try:
        return ask_from(lab, "lan", "whoami", TARGET_ADDR, 8082, timeout=1)
    except LabError:
        return None


def _reload(lab: Lab, text: str) -> None:
    st = lab.load()
    (Path(st.config_dir) / "bonding").write_text(text)
    assert st.daemon_pid is not None
    os.kill(st.daemon_pid, signal.SIGHUP)


def _has_table(lab: Lab) -> bool:
    st = lab.load()
    r = subprocess.run(["ip", "netns", "exec", st.namespaces["router"], "nft", "list", "table",
                        "inet", "bonding"], capture_output=True, text=True, check=False)
    return r.returncode == 0


def test_a_missing_proxy_program_is_reported_and_routing_goes_on(full: Lab) -> None:
    st = full.load()
    cfg = Path(st.config_dir) / "bonding"
    original = cfg.read_text()
    assert "option proxy 'shadowsocks-libev'" in original
    try:
        _reload(full, original.replace("option proxy 'shadowsocks-libev'",
                                       "option proxy 'sing-box'"))
        assert wait_for(lambda: full.status()["proxy"]["state"] == "failed", 5) is not None
        p = full.status()["proxy"]
        assert p["backend"] == "sing-box" and p["pid"] is None
        assert "sing-box not found" in p["error"] and "opkg/apk add sing-box" in p["error"]
        assert not _has_table(full)  # LAN traffic is no longer handed to a missing proxy
        # bondingd goes on: paths probed and up, the router's own MPTCP routes in place
        assert all(path_state(full, x.name) == "up" for x in st.links)
    finally:
        _reload(full, original)
    assert wait_for(lambda: full.status()["proxy"]["state"] == "running", 10) is not None
    assert wait_for(lambda: _has_table(full), 2) is not None
    with Service(full, "target", "whoami", 8083):
        assert ask_from(full, "lan", "whoami", TARGET_ADDR, 8083) == SERVER_ADDR
