"""The full path in the lab (root): LAN host → router (nftables tproxy, the proxy, bondingd) → 3
shaped links of 50/30/20 Mbit/s (+20/40/80 ms RTT) → bonding-server → target; every test runs
with sing-box on both ends, then with ss-redir/ss-server under mptcpize."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from steps import rates_during, reload_with

from bonding.lab.topology import SERVER_ADDR, TARGET_ADDR, Lab, LabError
from bonding.lab.traffic import (
    DNS_ANSWER,
    Service,
    Stream,
    ask_from,
    lan_transfer,
    link_rates,
    longest_silence,
    path_state,
    wait_all_up,
    wait_for,
)

pytestmark = pytest.mark.lab


def test_the_target_sees_the_server_not_the_router(full: Lab) -> None:
    with Service(full, "target", "whoami", 8080):
        assert ask_from(full, "lan", "whoami", TARGET_ADDR, 8080) == SERVER_ADDR
        # the router's own traffic is not proxied: it leaves by its own address
        assert ask_from(full, "router", "whoami", TARGET_ADDR, 8080) == "100.64.1.2"


def test_one_tcp_flow_from_the_lan_host_uses_every_link(full: Lab) -> None:
    r, report = rates_during(full, lan_transfer(full, 7), 2.5, 3.5, timeout=25)
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
        r = link_rates(full, 2, 3)
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
    program = {"sing-box": "sing-box", "shadowsocks-libev": "ss-redir"}[full.load().backend]
    assert f"{program} killed by signal 9" in after["error"]
    with Service(full, "target", "whoami", 8082):
        assert wait_for(lambda: _whoami(full) == SERVER_ADDR, 5, 0.2) is not None


def _whoami(lab: Lab) -> str | None:
    try:
        return ask_from(lab, "lan", "whoami", TARGET_ADDR, 8082, timeout=1)
    except LabError:
        return None


def _has_table(lab: Lab) -> bool:
    st = lab.load()
    r = subprocess.run(["ip", "netns", "exec", st.namespaces["router"], "nft", "list", "table",
                        "inet", "bonding"], capture_output=True, text=True, check=False)
    return r.returncode == 0


def test_a_missing_proxy_program_is_reported_and_routing_goes_on(full: Lab) -> None:
    st = full.load()
    cfg = Path(st.config_dir) / "bonding"
    original = cfg.read_text()
    assert f"option proxy '{st.backend}'" in original
    try:
        reload_with(full, original.replace(f"option proxy '{st.backend}'", "option proxy 'xray'"))
        assert wait_for(lambda: full.status()["proxy"]["state"] == "failed", 5) is not None
        p = full.status()["proxy"]
        assert p["backend"] == "xray" and p["pid"] is None
        assert "xray not found" in p["error"] and "opkg/apk add xray-core" in p["error"]
        assert not _has_table(full)  # LAN traffic is no longer handed to a missing proxy
        # bondingd goes on: paths probed and up, the router's own MPTCP routes in place
        assert all(path_state(full, x.name) == "up" for x in st.links)
    finally:
        reload_with(full, original)
    assert wait_for(lambda: full.status()["proxy"]["state"] == "running", 10) is not None
    assert wait_for(lambda: _has_table(full), 2) is not None
    with Service(full, "target", "whoami", 8083):
        assert ask_from(full, "lan", "whoami", TARGET_ADDR, 8083) == SERVER_ADDR


def test_a_lan_device_nft_cannot_name_is_refused_and_the_lan_stays_proxied(full: Lab) -> None:
    """A '"' in lan_device once passed the checks; the nft table then failed to load while
    status said all was well, and the LAN went unproxied."""
    st = full.load()
    cfg = Path(st.config_dir) / "bonding"
    original = cfg.read_text()
    assert "option lan_device 'lan0'" in original
    bad = original.replace("option lan_device 'lan0'", "list lan_device 'lan0'\n"
                           "\tlist lan_device 'br\"lan'")
    try:
        reload_with(full, bad)
        assert wait_for(lambda: any("lan_device" in p
                                    for p in full.status()["config_problems"]), 5) is not None
        problem = next(p for p in full.status()["config_problems"] if "lan_device" in p)
        assert "not a network device name" in problem, problem
        r = subprocess.run([sys.executable, "-m", "bonding.daemon", "--check-config",
                            "--config-dir", st.config_dir], capture_output=True, text=True,
                           check=False)
        assert r.returncode == 1 and "lan_device" in r.stdout, r.stdout
        p = full.status()["proxy"]
        assert (p["state"], p["error"]) == ("running", ""), p
        assert _has_table(full)
        with Service(full, "target", "whoami", 8084):
            assert ask_from(full, "lan", "whoami", TARGET_ADDR, 8084) == SERVER_ADDR
    finally:
        reload_with(full, original)


def test_the_proxy_runs_as_its_own_user_with_network_capabilities_only(full: Lab) -> None:
    """It parses what LAN hosts and the internet send: not as root (it was)."""
    pid = full.status()["proxy"]["pid"]
    # ss-redir's two (IPv4, IPv6) run under the twin, which stays root to start them
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    proxies = [int(c) for c in children] if full.load().backend == "shadowsocks-libev" else [pid]
    assert proxies
    for p in proxies:
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{p}/status").read_text().splitlines())
        assert fields["Uid"].split() == ["65534"] * 4, fields["Uid"]  # proxy_user nobody here
        assert int(fields["CapEff"], 16) == (1 << 10) | (1 << 12) | (1 << 13)
        assert fields["NoNewPrivs"].strip() == "1"
        environ = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
        names = {v.split(b"=")[0] for v in environ if v}
        # LD_PRELOAD: mptcpize; LC_CTYPE: the twin's Python (PEP 538)
        assert names <= {b"GODEBUG", b"PATH", b"LD_PRELOAD", b"LC_CTYPE"}, environ


def _router(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "-n", lab.load().namespaces["router"], *args],
                          capture_output=True, text=True, check=check)


def _transfer_while_the_first_default_route_changes(lab: Lab) -> tuple[bool, str]:
    """A transfer LAN host → target while the first default route of the router's main table
    moves from wan1 to wan2 (netifd does that when wan1 loses carrier): did it survive?"""
    _router(lab, "route", "replace", "default", "via", "100.64.1.1", "dev", "wan1", "metric",
            "10")
    _router(lab, "route", "replace", "default", "via", "100.64.2.1", "dev", "wan2", "metric",
            "20")
    time.sleep(1.5)  # sing-box's monitor looks again 1 s after a change
    t = lan_transfer(lab, 6)
    t.start()
    try:
        time.sleep(2)
        _router(lab, "route", "del", "default", "via", "100.64.1.1", "dev", "wan1", "metric",
                "10")
        try:
            end = t.result(timeout=30)["end"]["sum_received"]
        except LabError as e:
            return False, str(e)
    finally:
        t.stop()
        _router(lab, "route", "del", "default", "dev", "wan2", "metric", "20", check=False)
    return end["seconds"] > 5.5, str(end)


def test_connections_survive_a_wan_default_route_going_away(full: Lab) -> None:
    """sing-box closes every connection when the main table's first default route changes
    device; bondingd's route 'default dev lo tos 0x1c' (bonding.dataplane.anchor) stays first,
    so nothing is closed.  Shown both ways: without that route the transfer is cut.

    The transfer with the route runs first, while sing-box has long seen 'lo' as its default
    interface: putting the route back is itself a change, which sing-box acts on 1 s after the
    last netlink event (later on a busy host) by closing what is open then."""
    anchor = ["default", "dev", "lo", "tos", "0x1c", "metric", "0", "proto", "200"]
    main = _router(full, "route", "show", "table", "main").stdout
    sing_box = full.load().backend == "sing-box"
    assert ("default tos 0x1c dev lo proto 200 scope link" in main) == sing_box, main
    survived, detail = _transfer_while_the_first_default_route_changes(full)
    assert survived, detail
    if sing_box:
        _router(full, "route", "del", *anchor)
        try:
            time.sleep(1.5)
            survived, detail = _transfer_while_the_first_default_route_changes(full)
            assert not survived, f"without the route sing-box kept its connections: {detail}"
        finally:
            _router(full, "route", "replace", *anchor, "scope", "link")
            time.sleep(3)  # sing-box's reaction to the route's return, before the next test


STREAM_S = 7.0
FAULT_AT_S = 3.0
USED_BPS = 3000  # bytes/s a link sends beyond its probes when it carries part of the stream


def test_udp_flows_survive_the_death_of_a_link(full: Lab) -> None:
    """A 50 pps "voice" stream LAN host → UDP echo at the target, and DNS, while each link in
    turn is blackholed: at most 1 s without echoes (and no more than 1 s of packets lost) when a
    link the stream uses dies, none when a link it does not use dies.  wan3 is a forced backup
    for the test, so the stream does not use it.

    sing-box sends UDP inside the bonded MPTCP connection (UDP over TCP), which the kernel
    spreads over wan1 and wan2: nothing is lost, the echoes stall until bondingd removes the
    dead link's endpoint and MPTCP resends on the others.  ss-redir relays each flow over one
    link, and from an unbound socket, so its packets take another link once bondingd moved the
    server's route: those sent meanwhile are lost."""
    st = full.load()
    full.set_options({"wan3": {"backup": "1"}})
    try:
        assert wait_for(lambda: full.status()["paths"]["wan3"]["backup"] is True, 5)
        with Service(full, "target", "udp-echo", 7007), Service(full, "target", "dns", 53):
            results = {}
            for link in st.links:
                s = Stream(full, "lan", TARGET_ADDR, 7007, STREAM_S)
                try:
                    time.sleep(FAULT_AT_S - 1.0)
                    c0 = full.counters()
                    time.sleep(1.0)
                    c1 = full.counters()
                    t0 = time.time()
                    full.blackhole(link.name)
                    down = wait_for(lambda n=link.name: path_state(full, n) == "down", 3, 0.01)
                    # a DNS query after bondingd noticed: answered over the links left
                    dns = ask_from(full, "lan", "dns", TARGET_ADDR, 53, timeout=1.0)
                    report = s.result()
                finally:
                    s.stop()
                    full.clear(link.name)
                used = c1[link.name]["tx"] - c0[link.name]["tx"] > USED_BPS
                gap = longest_silence(report, start=t0)
                results[link.name] = (used, gap, report["lost"], down, dns)
                assert wait_all_up(full, 20)
    finally:
        full.set_options({"wan3": {"backup": "0"}})
    print(f"\n{st.backend}: " + ", ".join(
        f"{n} {'used' if u else 'unused'}: gap {g:.2f} s, lost {lo}" for n, (u, g, lo, _, _)
        in results.items()))
    assert not results["wan3"][0], results  # the forced backup carries none of it
    assert results["wan1"][0] or results["wan2"][0], results
    for name, (used, gap, lost, down, dns) in results.items():
        assert down is not None, f"{name} not declared down"
        assert dns == DNS_ANSWER, (name, dns)
        if used:
            assert gap <= 1.0 and lost <= 50, (name, results)
        else:
            assert gap <= 0.25 and lost == 0, (name, results)
