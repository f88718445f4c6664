"""bondingd on a scratch OpenWrt router whose network OpenWrt runs: netifd brings up two DHCP
WANs (busybox udhcpd at each ISP) and a static one from /etc/config/network, fw4 is the
firewall, our packages come from `make feed` by the real opkg and bondingd runs under procd with
no path sections (tests/owrt/router_net.py builds the router; root only).

The tests run in order on one router, each from where the one before left it:
install -> discovery -> ifdown -> ifup -> lost lease -> cable pull -> double ifdown ->
the firewall's reload/restart/flush (proxied, then pinned) -> a LAN connection across a restart
and a kill -9 of bondingd, then its stop -> remove.  Times are printed; the
bars are the issue's: a DHCP WAN a path within 1 s of `ifup`, its endpoint gone within 0.2 s
of `ifdown`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.lab.model import LAB_BYPASS
from bonding.lab.topology import nsx, run

from .conftest import say
from .procs import ECHO_SERVER, STREAM_CLIENT, Helper
from .router_net import DHCP_WANS, LAN_HOST, PROBE_TARGETS, WANS, NetRouter
from .router_root import RootError, base_packages

DEVICES = {"wan": "wan1", "wanb": "wan2", "wanc": "wan3"}
SS_PORT = 65101
UP_COUNT = 5  # the shipped config: up after 5 good rounds of 150 ms
PROBE_MS = 150
FLAPPED_S = 8 * UP_COUNT * PROBE_MS / 1000 + 3  # a path that flapped waits up to 8x
EVENTS = "/tmp/iface-events"  # what netifd's iface hotplug delivered (99-record)
ECHO_PORT = 5201
STREAM_PORT = 5203
RESPAWN_TIMEOUT_S = 5  # procd's default for `procd_set_param respawn`
SS_KEY = "bmV0aWZkLXRlc3Qta2V5LW9mLXRoZS1zZXJ2ZXItLS0="
# bondingd with no path sections, probing the upstream's addresses; the LAN proxied by
# shadowsocks-libev (Debian's ss-redir) to an ss-server at the ISP side, the documentation
# ranges being the internet here (the lab's bypass list)
CONFIGURE = f"""
uci -q delete bonding.wan
uci delete bonding.globals.probe_target
{''.join(f"uci add_list bonding.globals.probe_target={t}; " for t in PROBE_TARGETS)}
uci set bonding.globals.proxy=shadowsocks-libev
uci set bonding.globals.lan_device=lan1
{''.join(f"uci add_list bonding.globals.bypass={n}; " for n in LAB_BYPASS)}
uci set bonding.vps1=server
uci set bonding.vps1.address=203.0.113.10
uci set bonding.vps1.port={SS_PORT}
uci set bonding.vps1.cipher=chacha20-ietf-poly1305
uci commit bonding
uci set bonding_secrets.vps1=server
uci set bonding_secrets.vps1.key={SS_KEY}
uci commit bonding_secrets
"""
SS_SERVER_CONF = (f'{{"server": "203.0.113.10", "server_port": {SS_PORT}, "password": '
                  f'"{SS_KEY}", "method": "chacha20-ietf-poly1305", "mode": "tcp_and_udp"}}')


class Router:
    """The router and what the tests learn on the way."""

    def __init__(self, root: NetRouter) -> None:
        self.root = root
        self.files_before: dict[str, str] = {}
        self.conffiles: list[str] = []
        self.ss: subprocess.Popen[bytes] | None = None


@pytest.fixture(scope="module")
def router(router_prereqs: Path, owrt_feed: Path, tmp_path_factory: pytest.TempPathFactory,
           worker_tag: str, request: pytest.FixtureRequest) -> Iterator[Router]:
    for tool in ("ss-server", "ss-redir", "mptcpize"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (make deps installs shadowsocks-libev and "
                        "mptcpize)")
    t0 = time.monotonic()
    work = tmp_path_factory.mktemp("netifd-root")
    root = NetRouter(router_prereqs, work / "stage", f"{worker_tag}f")
    r = Router(root)
    root.start(base_packages(owrt_feed))
    try:
        root.add_feed(owrt_feed)
        # OpenWrt's shadowsocks-libev-ss-redir, as Debian's program without its file
        # capabilities (bondingd grants them to the proxy's user)
        root.write("/usr/bin/ss-redir", Path("/usr/bin/ss-redir").read_bytes(), 0o755)
        root.start_network()
        say(request.config, f"OpenWrt router (procd, netifd: 2 DHCP WANs + 1 static, fw4) up "
            f"in {time.monotonic() - t0:.1f} s")
        r.files_before = root.files()
        conf = work / "ss-server.json"
        conf.write_text(SS_SERVER_CONF)
        r.ss = subprocess.Popen(nsx(root.up_ns, "ss-server", "-c", str(conf)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield r
    finally:
        if r.ss is not None:
            r.ss.kill()
            r.ss.wait(timeout=10)
        root.close()


# --- what bondingd says --------------------------------------------------------------------------
def status(root: NetRouter) -> dict[str, Any]:
    out = root.ubus("call", "bonding", "status")
    assert isinstance(out, dict), out
    return out


def paths(root: NetRouter) -> dict[str, dict[str, Any]]:
    try:
        return status(root)["paths"]  # type: ignore[no-any-return]
    except (AssertionError, RootError):
        return {}


def states(root: NetRouter) -> dict[str, str]:
    return {n: p["state"] for n, p in paths(root).items()}


def service(root: NetRouter) -> dict[str, Any]:
    out = root.ubus("call", "service", "list", '{"name":"bonding"}')
    assert isinstance(out, dict)
    return out.get("bonding", {}).get("instances", {}).get("bondingd", {})  # type: ignore[no-any-return]


def path_live(root: NetRouter, name: str) -> bool:
    """The path is up and its device has our MPTCP endpoint."""
    return states(root).get(name) == "up" and root.endpoint_on(DEVICES[name])


def all_live(root: NetRouter) -> bool:
    return all(path_live(root, w) for w in WANS)


def timed(root: NetRouter, pred: Callable[[], bool], timeout: float, what: str,
          step: float = 0.01) -> float:
    return root.wait(pred, timeout, what, step)


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def started_at(root: NetRouter, command: str) -> float:
    """Run `command` in the router; the CLOCK_BOOTTIME (/proc/uptime, 10 ms) at which it
    started, after nsenter's own start-up (slow on a loaded host)."""
    out = root.sh(f"cut -d' ' -f1 /proc/uptime; {command}").stdout
    return float(out.split()[0])


def at_once(reason: str) -> bool:
    """The reason of a path taken down by a link event (netifd's, the kernel's), not by probes."""
    return any(w in reason for w in ("netifd interface", "carrier lost", "removed from",
                                     "has no IPv4 address"))


def udhcpc_pid(root: NetRouter, iface: str) -> int:
    return int(root.path(f"/var/run/udhcpc-{DEVICES[iface]}.pid").read_text())


# --- the tests -----------------------------------------------------------------------------------
def test_opkg_install_runs_bonding_without_a_reboot(router: Router,
                                                    request: pytest.FixtureRequest) -> None:
    root = router.root
    t0 = time.monotonic()
    root.sh("opkg update && opkg install bonding", timeout=180)
    router.conffiles = root.path("/usr/lib/opkg/info/bonding.conffiles").read_text().split()
    root.wait(lambda: service(root).get("running"), 10, "bondingd started by the postinst")
    # the shipped config's path 'wan' is netifd's interface 'wan': resolved from netifd
    root.wait(lambda: paths(root)["wan"]["device"] == "wan1", 10,
              "path wan on netifd's device wan1")
    say(request.config, f"opkg install bonding -> bondingd running, path wan on netifd's wan1: "
        f"{time.monotonic() - t0:.1f} s")
    assert status(root)["ubus"]["connected"] is True
    assert root.path("/usr/share/nftables.d/ruleset-post/30-bonding.nft").is_symlink()
    assert root.path("/etc/hotplug.d/iface/30-bonding").is_file()


def test_with_no_path_sections_bondingd_bonds_the_wans_netifd_has(
        router: Router, request: pytest.FixtureRequest) -> None:
    root = router.root
    root.sh(CONFIGURE)
    assert root.sh("uci -q show bonding | grep =path", check=False).stdout == ""
    root.sh("/etc/init.d/bonding restart", timeout=30)
    took = timed(root, lambda: all_live(root), 20, "the three WANs up as paths with endpoints")
    say(request.config, f"bondingd restarted with no path sections: wan, wanb (DHCP) and wanc "
        f"(static) up with endpoints {took:.2f} s later")
    got = paths(root)
    assert sorted(got) == sorted(WANS), got
    for name, p in got.items():
        assert p["device"] == DEVICES[name], p
    assert paths(root)["wanb"]["address"] == root.iface("wanb")["ipv4-address"][0]["address"]
    assert "no path sections: bonding the WAN interfaces netifd has: wan, wanb, wanc" in \
        root.path("/tmp/log/messages").read_text()


def test_ifdown_removes_the_endpoint_within_0_2_s(router: Router,
                                                  request: pytest.FixtureRequest) -> None:
    root = router.root
    assert all_live(root)
    t0 = started_at(root, "ifdown wanb")
    timed(root, lambda: not root.endpoint_on("wan2"), 5, "wan2's endpoint removed")
    took = boottime() - t0
    say(request.config, f"ifdown wanb -> wan2's MPTCP endpoint gone in {took:.3f} s")
    # a sanity limit on a loaded host (a CI run with other work saw 0.375 s); the bar of 0.2 s
    # is a figure for bench/, not for a test
    assert took < 1.5, f"wan2's endpoint went {took:.3f} s after ifdown"
    p = paths(root)["wanb"]
    assert p["state"] == "down", p
    assert path_live(root, "wan") and path_live(root, "wanc")


def test_a_dhcp_wan_becomes_a_path_within_1_s_of_ifup(router: Router,
                                                      request: pytest.FixtureRequest) -> None:
    root = router.root
    assert paths(root)["wanb"]["state"] == "down"
    assert paths(root)["wanb"]["address"] is None
    t0 = started_at(root, "ifup wanb")
    timed(root, lambda: root.iface("wanb")["up"], 5, "netifd's wanb up")
    dhcp = boottime() - t0
    lease = root.iface("wanb")["ipv4-address"][0]["address"]

    def probing() -> bool:
        # on its lease, no longer held down by netifd's state: probed, up after UP_COUNT rounds
        p = paths(root)["wanb"]
        return bool(p["address"] == lease and "netifd" not in p["reason"])

    timed(root, probing, 5, "path wanb probing on its new lease")
    became = boottime() - t0
    timed(root, lambda: path_live(root, "wanb"), 5, "path wanb up with its endpoint")
    took = boottime() - t0
    say(request.config, f"ifup wanb -> netifd up (DHCP lease) {dhcp:.2f} s, a path probing "
        f"on {lease} {became:.2f} s, up with its endpoint {took:.2f} s (after {UP_COUNT} good "
        f"probe rounds of {PROBE_MS} ms)")
    assert became < 1.0, f"path wanb took {became:.2f} s after ifup to take its lease"
    # bondingd follows netifd at once (it is told over ubus; it does not wait for the kernel's
    # linkwatch to update the link's operstate, up to 1 s later)
    assert became - dhcp < 0.3, f"path wanb probing {became - dhcp:.2f} s after netifd's up"
    # up after UP_COUNT rounds (with room for a loaded host)
    assert took - became < 2 * UP_COUNT * PROBE_MS / 1000, f"up {took - became:.2f} s later"
    assert paths(root)["wanb"]["device"] == "wan2"
    assert all_live(root)


def test_a_lost_dhcp_lease_takes_the_path_down_and_back(router: Router,
                                                        request: pytest.FixtureRequest) -> None:
    root = router.root
    assert all_live(root)
    # the ISP's DHCP server goes away and the lease is lost (udhcpc releases it: its script
    # deconfigures wan1 as at the lease's expiry)
    root.stop_udhcpd(DHCP_WANS["wan"])
    t0 = time.monotonic()
    root.sh(f"kill -USR2 {udhcpc_pid(root, 'wan')}")
    timed(root, lambda: not root.endpoint_on("wan1"), 5, "wan1's endpoint removed")
    lost = time.monotonic() - t0
    root.wait(lambda: not root.iface("wan")["up"], 5, "netifd's wan down")
    p = paths(root)["wan"]
    assert p["state"] == "down", p
    assert at_once(p["reason"]), p  # not by failed probes: netifd or the kernel said it
    assert path_live(root, "wanb") and path_live(root, "wanc")
    root.sh(f"kill -USR1 {udhcpc_pid(root, 'wan')}")  # udhcpc asks again: nobody answers
    root.sh("sleep 1")
    assert paths(root)["wan"]["state"] == "down" and not root.endpoint_on("wan1")
    root.start_udhcpd(DHCP_WANS["wan"])
    t1 = time.monotonic()
    timed(root, lambda: path_live(root, "wan"), 20, "path wan back with a new lease", step=0.05)
    say(request.config, f"wan's lease lost: its endpoint gone {lost:.3f} s later; udhcpd "
        f"back: path up again {time.monotonic() - t1:.1f} s later (udhcpc asks every 3 s)")
    assert lost < 2


def test_a_cable_pull_takes_the_path_down_and_back(router: Router,
                                                   request: pytest.FixtureRequest) -> None:
    root = router.root
    assert all_live(root)
    t0 = time.monotonic()
    run(nsx(root.up_ns, "ip", "link", "set", "isp2", "down"))
    timed(root, lambda: not root.endpoint_on("wan2"), 5, "wan2's endpoint removed")
    gone = time.monotonic() - t0
    p = paths(root)["wanb"]
    assert p["state"] == "down", p
    assert at_once(p["reason"]), p
    run(nsx(root.up_ns, "ip", "link", "set", "isp2", "up"))
    t1 = time.monotonic()
    timed(root, lambda: path_live(root, "wanb"), 20, "path wanb back after the cable")
    say(request.config, f"cable pulled: wan2's endpoint gone {gone:.3f} s later; plugged in: "
        f"path up again {time.monotonic() - t1:.2f} s later")
    assert gone < 2
    assert all_live(root)


def hotplug(root: NetRouter, action: str, interface: str, device: str = "") -> None:
    env = {"ACTION": action, "INTERFACE": interface}
    if device:
        env["DEVICE"] = device
    root.sh("/sbin/hotplug-call iface", env=env, timeout=10)


def test_netifd_s_double_ifdown_leaves_the_state_right(router: Router,
                                                        request: pytest.FixtureRequest) -> None:
    root = router.root
    assert all_live(root)
    # what netifd delivers in an ifup cycle now and then: ifdown with the device, ifdown
    # without, then ifup
    hotplug(root, "ifdown", "wanb", "wan2")
    hotplug(root, "ifdown", "wanb")
    assert paths(root)["wanb"]["state"] == "down"
    assert not root.endpoint_on("wan2")
    hotplug(root, "ifup", "wanb", "wan2")
    timed(root, lambda: path_live(root, "wanb"), FLAPPED_S, "path wanb back after the double "
          "ifdown")
    assert root.path("/var/run/bonding/iface/wanb").read_text() == "wan2\n"
    # and the real thing: ifup of an interface that is up (netifd takes it down first)
    events = root.path(EVENTS)
    events.write_text("")
    root.sh("ifup wanb")
    timed(root, lambda: root.iface("wanb")["up"], 10, "netifd's wanb up again")
    timed(root, lambda: path_live(root, "wanb"), FLAPPED_S, "path wanb back after ifup")
    root.sh("sleep 1")  # a late ifdown would show now
    seen = [x for x in events.read_text().splitlines() if " wanb " in x + " "]
    say(request.config, f"ifup of the up wanb: netifd's hotplug events {seen}")
    assert seen[-1] == "ifup wanb wan2", seen
    assert all_live(root)
    lease = root.iface("wanb")["ipv4-address"][0]["address"]
    assert paths(root)["wanb"]["address"] == lease
    on_wan2 = [e for e in root.endpoints() if " dev wan2 " in e + " "]
    assert len(on_wan2) == 1 and on_wan2[0].startswith(lease + " "), root.endpoints()
    assert root.path("/var/run/bonding/iface/wanb").read_text() == "wan2\n"


# --- the firewall --------------------------------------------------------------------------------
PEER_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
s.settimeout(300)
print("listening", flush=True)
while True:
    try:
        c, peer = s.accept()
    except TimeoutError:
        break
    with c:
        c.sendall(("peer %s\n" % peer[0]).encode())
"""

PEER_CLIENT = r"""
import socket, sys
for line in sys.stdin:
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
            print(c.makefile().readline().strip() or "closed", flush=True)
    except OSError as e:
        print("error", e, flush=True)
"""


def tproxy_rules(root: NetRouter) -> list[str]:
    r = root.sh("nft list table inet bonding", check=False)
    return [x.strip() for x in r.stdout.splitlines() if "tproxy" in x] if r.returncode == 0 \
        else []


def test_the_lan_stays_proxied_through_fw4_reload_restart_and_flush(
        router: Router, request: pytest.FixtureRequest) -> None:
    root = router.root
    try:
        timed(root, lambda: status(root)["proxy"]["state"] == "running", 10, "the proxy")
    except RootError as e:
        raise AssertionError(f"the proxy is not running: {status(root)['proxy']}") from e
    server = Helper(root.up_ns, PEER_SERVER, "198.51.100.10", str(ECHO_PORT))
    client = Helper(root.lan_ns, PEER_CLIENT, "198.51.100.10", str(ECHO_PORT))
    try:
        assert server.readline() == "listening"

        def proxied(when: str) -> None:
            # the LAN host's connection reaches the target from the server (ss-server, in the
            # upstream namespace: one of its own addresses), not masqueraded from a WAN's
            assert len(tproxy_rules(root)) >= 1, f"no tproxy rule {when}"
            assert "lan1" in root.sh("nft list table inet bonding").stdout
            got = client.ask("go")
            assert got in {f"peer {a}" for a in PROBE_TARGETS}, f"{when}: {got}"

        proxied("before")
        rules = tproxy_rules(root)
        # fw4 ran on every ifup of the tests before (its iface hotplug): the rules are there
        t0 = time.monotonic()
        root.sh("fw4 reload")
        proxied("after fw4 reload")
        root.sh("/etc/init.d/firewall restart")
        proxied("after /etc/init.d/firewall restart")
        root.sh("fw4 flush")
        assert tproxy_rules(root) == []  # fw4 flush deletes every table, ours too
        root.sh("fw4 start")
        proxied("after fw4 flush; fw4 start")
        assert tproxy_rules(root) == rules
        # fw4's own table is back too, with the zones' masquerade
        fw = root.sh("nft list table inet fw4").stdout
        assert "masquerade" in fw and '"wan1"' in fw and '"lan1"' in fw
        say(request.config, f"fw4 reload, firewall restart, fw4 flush + start: the LAN stayed "
            f"proxied (tproxy rules and a connection through ss-server), "
            f"{time.monotonic() - t0:.1f} s")
    finally:
        client.stop()
        server.stop()


PIN_PORT = 5202
PIN = f"""
uci set bonding.pin=rule
uci set bonding.pin.src_ip={LAN_HOST}
uci set bonding.pin.proto=tcp
uci add_list bonding.pin.dest_port={PIN_PORT}
uci set bonding.pin.action=path:wanb
uci commit bonding
"""


def rules_table(root: NetRouter) -> str:
    """table inet bonding_rules as the kernel has it ("" when it has none)."""
    r = root.sh("nft list table inet bonding_rules", check=False)
    return r.stdout if r.returncode == 0 else ""


def test_a_pinned_flow_stays_pinned_through_fw4_reload_restart_and_flush(
        router: Router, request: pytest.FixtureRequest) -> None:
    """fw4 reload and restart leave table inet bonding_rules alone; fw4 flush (the firewall
    service's stop) deletes it with every table, and fw4 start brings it back from its
    ruleset-post include: bondingd does not re-apply it (its text did not change)."""
    root = router.root
    assert root.path("/usr/share/nftables.d/ruleset-post/31-bonding-rules.nft").is_symlink()
    root.sh(PIN + "/etc/init.d/bonding reload")
    server = Helper(root.up_ns, PEER_SERVER, "198.51.100.10", str(PIN_PORT))
    client = Helper(root.lan_ns, PEER_CLIENT, "198.51.100.10", str(PIN_PORT))
    try:
        timed(root, lambda: [r.get("effective") for r in status(root).get("rules", [])]
              == ["path:wanb"], 10, "rule pin on wanb in status")
        assert server.readline() == "listening"
        wanb = root.iface("wanb")["ipv4-address"][0]["address"]

        def pinned(when: str) -> None:
            assert f"ip saddr {LAN_HOST}" in rules_table(root), f"no rule in the table {when}"
            got = client.ask("go")
            assert got == f"peer {wanb}", f"{when}: {got} (wanb is {wanb})"

        pinned("before")
        table = rules_table(root)
        loads = root.path("/tmp/log/messages").read_text().count("table inet bonding_rules loaded")
        root.sh("fw4 reload")
        pinned("after fw4 reload")
        root.sh("/etc/init.d/firewall restart")
        pinned("after /etc/init.d/firewall restart")
        root.sh("fw4 flush")
        assert rules_table(root) == ""  # fw4 flush deletes every table, ours too
        root.sh("fw4 start")
        pinned("after fw4 flush; fw4 start")
        assert rules_table(root) == table
        assert root.path("/tmp/log/messages").read_text().count(
            "table inet bonding_rules loaded") == loads, "the include brought it back, not bondingd"
        say(request.config, "fw4 reload, firewall restart, fw4 flush + start: the pinned flow "
            f"left by wanb ({wanb}) each time")
    finally:
        client.stop()
        server.stop()
        root.sh("uci -q delete bonding.pin; uci commit bonding; /etc/init.d/bonding reload")
    timed(root, lambda: rules_table(root) == "", 10, "the rules table gone with the rule")


def report(client: Helper, when: str) -> tuple[int, int]:
    """The stream client's echoes and longest wait (ms) since its last report; AssertionError
    when its connection broke."""
    try:
        got = client.ask("report")
    except BrokenPipeError:  # it ended: its last line says why
        got = client.readline()
    assert got.startswith("ok "), f"the LAN connection {when}: {got or 'client gone'}"
    n, longest = got.split()[1:]
    return int(n), int(longest)


def flowing(client: Helper, when: str) -> int:
    """The connection works after `when`: echoes since the last report and a second more; the
    longest wait between two echoes across it (ms)."""
    n, longest = report(client, when)
    time.sleep(1)
    n2, longest2 = report(client, f"a second after {when}")
    assert n > 0 and n2 > 10, f"{when}: {n}, then {n2} echoes"
    return max(longest, longest2)


def proxy_files(root: NetRouter) -> list[str]:
    run_dir = root.path("/var/run/bonding")
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith(("ss-redir", "proxy")))


def test_a_lan_connection_survives_a_restart_and_a_kill_9_of_bondingd(
        router: Router, request: pytest.FixtureRequest) -> None:
    """`/etc/init.d/bonding restart` hands the proxy, its nftables table, the routes and the
    endpoints to the next bondingd, and a bondingd respawned after kill -9 adopts the proxy the
    dead one left: the LAN host's connection through the proxy goes on, bytes flowing; `stop`
    still ends the proxy and removes its files (its config holds the key)."""
    root = router.root
    timed(root, lambda: status(root)["proxy"]["state"] == "running", 10, "the proxy")
    proxy = status(root)["proxy"]["pid"]
    server = Helper(root.up_ns, ECHO_SERVER, "198.51.100.10", str(STREAM_PORT), "greet")
    client = None
    try:
        assert server.readline() == "listening"
        client = Helper(root.lan_ns, STREAM_CLIENT, "198.51.100.10", str(STREAM_PORT))
        peer = client.readline()
        assert peer in {f"peer {a}" for a in PROBE_TARGETS}, f"not proxied: {peer}"
        time.sleep(0.5)
        flowing(client, "the start")

        def replaced(pid: int) -> Callable[[], bool]:
            return lambda: (service(root).get("pid") not in (None, pid)
                            and status(root)["proxy"]["state"] == "running")

        pid = service(root)["pid"]
        t0 = time.monotonic()
        root.sh("/etc/init.d/bonding restart", timeout=30)
        timed(root, replaced(pid), 20, "a new bondingd with the proxy running", step=0.05)
        back = time.monotonic() - t0
        gap = flowing(client, "/etc/init.d/bonding restart")
        assert status(root)["proxy"]["pid"] == proxy, "the proxy was restarted, not adopted"
        timed(root, lambda: all_live(root), 20, "the paths up again")
        log = root.path("/tmp/log/messages").read_text()
        assert "restart: leaving the proxy" in log and f"adopted proxy pid {proxy}" in log

        pid = service(root)["pid"]
        t1 = time.monotonic()
        root.sh(f"kill -9 {pid}")
        timed(root, replaced(pid), RESPAWN_TIMEOUT_S + 20, "procd to respawn bondingd", step=0.05)
        respawned = time.monotonic() - t1
        gap9 = flowing(client, "kill -9 of bondingd and procd's respawn")
        assert status(root)["proxy"]["pid"] == proxy, "the proxy was restarted, not adopted"
        timed(root, lambda: all_live(root), 20, "the paths up again")
        say(request.config, f"a LAN connection through ss-redir: bondingd restarted by procd "
            f"(back in {back:.1f} s), kill -9 and respawned ({respawned:.1f} s): the same proxy, "
            f"the connection kept, longest wait between echoes {gap} and {gap9} ms")

        assert proxy_files(root) == ["proxy.out", "proxy.pid", "ss-redir.json"]
        root.sh("/etc/init.d/bonding stop", timeout=30)
        root.wait(lambda: not service(root), 15, "procd to drop the instance")
        assert not root.running(proxy), "stop left the proxy running"
        assert proxy_files(root) == []
        assert root.sh("nft list table inet bonding", check=False).returncode != 0
        assert root.endpoints() == []
        with pytest.raises(AssertionError, match="broken"):
            report(client, "after stop")
    finally:
        if client is not None:
            client.stop()
        server.stop()
    root.sh("/etc/init.d/bonding start")
    timed(root, lambda: all_live(root), 20, "bondingd started again")


def test_opkg_remove_leaves_only_the_conffiles(router: Router) -> None:
    root = router.root
    root.sh("opkg remove bonding python3-bonding", timeout=120)
    root.wait(lambda: not service(root), 15, "procd to drop the instance")
    left = {p: k for p, k in root.files().items()
            if p not in router.files_before and not p.startswith("/var/opkg-lists/")}
    accounts = {"/etc/passwd", "/etc/group", "/etc/shadow"}  # OpenWrt keeps USERID users
    assert set(left) - accounts <= set(router.conffiles), left
    assert root.endpoints() == []
    assert root.sh("nft list table inet bonding", check=False).returncode != 0
    # the firewall without our include
    root.sh("fw4 reload")
    assert "bonding" not in root.sh("nft list tables").stdout
    assert root.iface("wan")["up"]

