"""Our feed on a scratch OpenWrt root, run by the real procd: installed with the real opkg, then
enabled, started, killed, reloaded, told about netifd's ifup/ifdown, stopped and removed the way
a router does it (tests/owrt/router_root.py builds the root; root only).

The tests run in order on one root, each from where the one before left it:
install -> enable/start -> procd's view -> respawn -> reload -> iface hotplug -> stop -> remove.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bonding

from .conftest import say
from .installed import assert_installed_as_listed
from .procs import CLIENT, ECHO_SERVER, Helper
from .router_root import CONFIGURE, RootError, RouterRoot, booted, pyver, state_diff

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

ECHO_PORT = 5201
RESPAWN_TIMEOUT_S = 5  # procd's default for `procd_set_param respawn` (threshold 3600, 5 s, 5)



class Router:
    """The root and what the tests learn on the way."""

    def __init__(self, root: RouterRoot) -> None:
        self.root = root
        self.files_before: dict[str, str] = {}
        self.kernel_before: dict[str, list[str]] = {}
        self.kernel_running: dict[str, list[str]] = {}
        self.conffiles: list[str] = []


@pytest.fixture(scope="module")
def router(router_prereqs: Path, owrt_feed: Path, tmp_path_factory: pytest.TempPathFactory,
           worker_tag: str, request: pytest.FixtureRequest) -> Iterator[Router]:
    t0 = time.monotonic()
    with booted(router_prereqs, owrt_feed, tmp_path_factory.mktemp("procd-root"),
                f"{worker_tag}p") as root:
        say(request.config, f"scratch OpenWrt root with ubusd and procd up in "
            f"{time.monotonic() - t0:.1f} s")
        r = Router(root)
        r.files_before = root.files()
        r.kernel_before = root.kernel_state()
        yield r


def service(root: RouterRoot) -> dict[str, Any]:
    out = root.ubus("call", "service", "list", '{"name":"bonding"}')
    assert isinstance(out, dict)
    return out.get("bonding", {}).get("instances", {}).get("bondingd", {})  # type: ignore[no-any-return]


def status(root: RouterRoot) -> dict[str, Any]:
    out = root.ubus("call", "bonding", "status")
    assert isinstance(out, dict), out
    return out


def states(root: RouterRoot) -> dict[str, str]:
    try:
        return {n: p["state"] for n, p in status(root)["paths"].items()}
    except (AssertionError, RootError):
        return {}


def all_up(root: RouterRoot) -> bool:
    return states(root) == {"wan": "up", "wanb": "up"}


def test_opkg_installs_the_feed_and_its_postinst_starts_bondingd(
        router: Router, request: pytest.FixtureRequest) -> None:
    root = router.root
    t0 = time.monotonic()
    out = root.sh("opkg update && opkg install bonding", timeout=180).stdout
    say(request.config, f"opkg update + install bonding (postinst included): "
        f"{time.monotonic() - t0:.1f} s")
    for name in ("python3-bonding", "bonding"):
        assert f"Installing {name} ({bonding.__version__}-1) to root" in out, out
    assert "luci-app-bonding" not in out and "bonding-usb" not in out
    assert_installed_as_listed(root, ("python3-bonding", "bonding"))
    # default_postinst: uci-defaults ran (the named sections), the service enabled and started
    assert root.sh("uci get bonding.globals; uci get bonding.usb").stdout.split() == \
        ["globals", "usb"]
    assert oct(root.path("/etc/config/bonding_secrets").stat().st_mode & 0o777) == "0o600"
    assert root.path("/etc/rc.d/S95bonding").is_symlink()
    # default_postinst made the proxy's user and group (USERID): unprivileged, no login
    users = {u.split(":")[0]: u.split(":") for u in
             root.path("/etc/passwd").read_text().splitlines()}
    assert "bonding" in users and int(users["bonding"][2]) > 0, users.get("bonding")
    assert users["bonding"][6] == "/bin/false"
    assert any(g.startswith("bonding:") for g in
               root.path("/etc/group").read_text().splitlines())
    root.wait(lambda: service(root).get("running"), 10, "bondingd started by the postinst")
    # python3-bonding's postinst compiled the byte code next to the sources
    pyc = root.path(f"/usr/lib/python{pyver()}/site-packages/bonding/__pycache__")
    assert any(pyc.glob("daemon.*.pyc"))
    router.conffiles = root.path("/usr/lib/opkg/info/bonding.conffiles").read_text().split()
    assert "/etc/config/bonding" in router.conffiles


def test_enable_and_start_run_bondingd_under_procd(router: Router) -> None:
    root = router.root
    root.sh(CONFIGURE)
    root.sh("/etc/init.d/bonding enable && /etc/init.d/bonding start")
    assert root.sh("/etc/init.d/bonding enabled").returncode == 0
    # bootup order: START=95 after network, STOP=10
    assert sorted(p.name for p in root.path("/etc/rc.d").iterdir()) == \
        ["K10bonding", "S95bonding"]
    inst = service(root)
    assert inst["running"] is True
    assert inst["command"] == ["/bin/sh", "-c", "trap '' HUP; exec /usr/sbin/bondingd"]
    assert inst["respawn"] == {"threshold": 3600, "timeout": RESPAWN_TIMEOUT_S, "retry": 5}
    assert inst["term_timeout"] == 10
    # the shell became bondingd (exec: the same pid)
    cmdline = root.path(f"/proc/{inst['pid']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:2] == [b"/usr/bin/python3", b"/usr/sbin/bondingd"]
    root.wait(lambda: all_up(root), 20, "both paths up")
    st = status(root)
    assert st["ubus"]["connected"] is True and st["version"] == bonding.__version__
    # what it made in the kernel: its rules, its tables' routes, one endpoint per path
    router.kernel_running = ks = root.kernel_state()
    assert any(r.startswith("1090:") for r in ks["rules"]), ks["rules"]
    assert any("table 210" in r for r in ks["routes"]), ks["routes"]
    assert len(ks["endpoints"]) == 2 and all("subflow" in e for e in ks["endpoints"]), ks
    # procd hands bondingd's stderr to syslog
    assert f"bondingd {bonding.__version__} started: 2 paths" in \
        root.path("/tmp/log/messages").read_text()
    # boot runs reload_config once: from then on it knows each config's checksum
    root.sh("reload_config")


def test_procd_respawns_bondingd_after_kill_9(router: Router,
                                              request: pytest.FixtureRequest) -> None:
    root = router.root
    before = service(root)["pid"]
    root.sh(f"kill -9 {before}")
    t0 = time.monotonic()
    root.wait(lambda: service(root).get("running") and service(root)["pid"] != before,
              RESPAWN_TIMEOUT_S + 5, "procd to respawn bondingd")
    respawned = time.monotonic() - t0
    pid = service(root)["pid"]
    # procd sends SIGHUP on every config change, also while bondingd is still starting (the
    # postinst starts it, then the user commits a config): SIGHUPs from its first moments on
    # (0.8 s of them, while it imports and starts) must not end it
    root.sh(f"i=0; while [ $i -lt 40 ]; do kill -HUP {pid} || exit 1; sleep 0.02; "
            "i=$((i + 1)); done")
    root.wait(lambda: all_up(root), 20, "both paths up again")
    back = time.monotonic() - t0
    say(request.config, f"procd respawned bondingd {respawned:.1f} s after kill -9 (respawn "
        f"timeout {RESPAWN_TIMEOUT_S} s), paths up after {back:.1f} s")
    assert respawned <= RESPAWN_TIMEOUT_S + 3
    assert service(root)["pid"] == pid, "bondingd died of a SIGHUP while it started"
    # the new bondingd took over what the killed one left: the same rules, no duplicates
    root.wait(lambda: not state_diff(router.kernel_running, root.kernel_state()), 5,
              "the same rules, routes and endpoints as before the kill")


def test_uci_commit_and_reload_config_reload_by_sighup(router: Router,
                                                       request: pytest.FixtureRequest) -> None:
    root = router.root
    server = Helper(root.up_ns, ECHO_SERVER, "203.0.113.10", str(ECHO_PORT))
    client = None
    try:
        assert server.readline() == "listening"
        client = Helper(root.ns, CLIENT, "203.0.113.10", str(ECHO_PORT))
        assert client.readline().startswith("connected ")
        assert client.ask("before") == "before"
        pid = service(root)["pid"]
        log_before = root.path("/tmp/log/messages").read_text().count("reloading /etc/config")
        assert status(root)["paths"]["wanb"]["forced_backup"] is False
        root.sh("uci set bonding.globals.probe_interval_ms=200; "
                "uci set bonding.wanb.backup=1; uci commit bonding; reload_config")

        def reloaded() -> bool:
            text = root.path("/tmp/log/messages").read_text()
            return text.count("reloading /etc/config") > log_before

        waited = root.wait(reloaded, 10, "bondingd to log a reload (procd's trigger: 1 s)")
        assert service(root)["pid"] == pid, "bondingd was restarted, not reloaded"
        root.wait(lambda: status(root)["paths"]["wanb"]["forced_backup"] is True, 5,
                  "the new config live in status")
        assert root.sh("uci get bonding.globals.probe_interval_ms").stdout.strip() == "200"
        assert json.loads(root.path("/var/run/bonding/status.json").read_text())[
            "paths"]["wanb"]["forced_backup"] is True
        # the endpoint of the forced-backup path is a backup one now
        root.wait(lambda: any("backup" in e and "wan2" in e
                              for e in root.kernel_state()["endpoints"]), 5,
                  "wan2's endpoint flagged backup")
        assert client.ask("after") == "after", "the open connection did not survive the reload"
        assert service(root)["pid"] == pid
        say(request.config, f"uci commit + reload_config -> procd trigger -> SIGHUP: bondingd "
            f"reloaded {waited:.1f} s later, same pid, TCP connection kept")
    finally:
        if client is not None:
            client.stop()
        server.stop()
    root.sh("uci set bonding.wanb.backup=0; uci commit bonding; reload_config")
    root.wait(lambda: not status(root)["paths"]["wanb"]["forced_backup"], 10, "backup off")


def hotplug(root: RouterRoot, action: str, interface: str, device: str = "") -> None:
    """What netifd does: `hotplug-call iface` with the event in the environment."""
    env = {"ACTION": action, "INTERFACE": interface}
    if device:
        env["DEVICE"] = device
    root.sh("/sbin/hotplug-call iface", env=env, timeout=10)


def test_iface_hotplug_tells_bondingd_over_the_real_ubus(router: Router) -> None:
    root = router.root
    messages = root.path("/tmp/log/messages")
    assert all_up(root)
    hotplug(root, "ifup", "wanb", "wan2")
    assert root.path("/var/run/bonding/iface/wanb").read_text() == "wan2\n"
    t0 = time.monotonic()
    hotplug(root, "ifdown", "wanb")  # netifd gives no DEVICE on ifdown: the script remembers it
    p = status(root)["paths"]["wanb"]
    took = time.monotonic() - t0
    assert p["state"] == "down", p
    assert p["reason"] == "netifd interface 'wanb' went down"
    assert took < 2, f"the path went down {took:.2f} s after the hotplug"
    assert status(root)["paths"]["wan"]["state"] == "up"
    text = messages.read_text()
    assert "hotplug: ifdown of wanb (wan2) told to bondingd" in text
    assert "netifd ifdown of wanb (device wan2): wanb" in text
    # an interface that is no path: the script does not call bondingd
    hotplug(root, "ifdown", "lan", "br-lan")
    assert "of lan" not in messages.read_text()
    # netifd brings it up again: so does bondingd, from its probes
    hotplug(root, "ifup", "wanb", "wan2")
    root.wait(lambda: all_up(root), 20, "wanb up again")


def test_stop_removes_every_rule_route_and_endpoint(router: Router) -> None:
    root = router.root
    assert router.kernel_running["endpoints"], "nothing to remove: the start test failed"
    root.sh("/etc/init.d/bonding stop", timeout=30)
    root.wait(lambda: not service(root), 15, "procd to drop the instance")
    assert root.sh("ubus -t 2 call bonding status", check=False).returncode != 0
    assert not root.path("/var/run/bonding/status.json").exists()
    assert state_diff(router.kernel_before, root.kernel_state()) == {}
    # bondingd not running: the hotplug script says so and goes on
    hotplug(root, "ifdown", "wanb", "wan2")
    said = "ifdown of wanb (wan2) not told: bondingd is not running"
    root.wait(lambda: said in root.path("/tmp/log/messages").read_text(), 5,
              "the hotplug script's line in syslogd's file")


def test_opkg_remove_leaves_only_the_conffiles(router: Router) -> None:
    root = router.root
    root.sh("opkg remove bonding python3-bonding", timeout=120)
    after = root.files()
    left = {p: k for p, k in after.items()
            if p not in router.files_before and not p.startswith("/var/opkg-lists/")}
    # OpenWrt never deletes a package's users (USERID): the user 'bonding' stays, alone
    accounts = {"/etc/passwd", "/etc/group", "/etc/shadow"}
    for f in accounts & set(left):
        lines = root.path(f).read_text().splitlines()
        assert [x.split(":")[0] for x in lines if x.startswith("bonding:")] == ["bonding"], f
    assert set(left) - accounts <= set(router.conffiles), left
    assert "/etc/config/bonding" in left  # changed by the user: opkg keeps it
    assert not root.path("/etc/rc.d/S95bonding").is_symlink()
    assert not root.path(f"/usr/lib/python{pyver()}/site-packages/bonding").exists()
    assert root.sh("opkg list-installed").stdout.find("bonding") == -1
