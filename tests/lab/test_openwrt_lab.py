"""`bonding-lab up --openwrt`: the lab's router is an OpenWrt router (bonding.lab.owrt.lab), built
and removed by the command line as a user runs it (root; the OpenWrt userland of OWRT_PREFIX,
tools/owrt-userland.sh).

The tests run in order on one lab: what the router runs (procd, netifd, fw4, our feed by
opkg) -> bondingd under procd bonds netifd's WANs with a LAN host's transfer over all of them
-> a pulled cable (netifd's ifdown; a new lease when plugged in) -> LuCI (uhttpd, rpcd) serves
the app to the LAN host, with bondingd's status -> `bonding-lab down` leaves no namespace,
process or mount.  `up --openwrt`'s time is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LINKS, lab_prefix, lab_skip_reason
from steps import rates_during

from bonding.dataplane.proxyproc import start_ticks
from bonding.lab.delay import python_env
from bonding.lab.owrt.lab import MANAGERS, kind
from bonding.lab.owrt.root import OwrtRoot
from bonding.lab.topology import TARGET_ADDR, Lab, LabState, nsx, run
from bonding.lab.traffic import (
    endpoints,
    lan_transfer,
    path_state,
    wait_all_up,
    wait_for,
    wait_proxy_running,
)

PROTOS = {"wan1": "dhcp", "wan2": "dhcp", "wan3": "static"}  # every WAN but the last: DHCP


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """bonding-lab as a user runs it (this checkout's package)."""
    return subprocess.run([sys.executable, "-m", "bonding.lab.cli", *args], env=python_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


class Built:
    """The lab `up --openwrt` built, and what the tests learn on the way."""

    def __init__(self, lab: Lab, up_s: float) -> None:
        self.lab = lab
        self.up_s = up_s
        self.state: LabState = lab.load()
        self.root: OwrtRoot = lab.owrt_root()


@pytest.fixture(scope="module", params=MANAGERS)
def built(request: pytest.FixtureRequest) -> Iterator[Built]:
    """The lab, our packages installed by opkg (OpenWrt 24.10), then by apk (25.12)."""
    manager: str = request.param
    reason = lab_skip_reason(proxy="sing-box")
    if reason:
        pytest.skip(reason)
    if not os.environ.get("OWRT_PREFIX"):
        pytest.skip("OWRT_PREFIX is not set: the OpenWrt router is made of that userland "
                    "(tools/owrt-userland.sh builds it, e.g. into /opt/owrt)")
    prefix = lab_prefix("o")
    lab = Lab(prefix)
    failed = request.session.testsfailed
    t0 = time.monotonic()
    try:
        r = cli("--prefix", prefix, "up", "--links", LINKS, "--openwrt", manager)
        up_s = time.monotonic() - t0
        assert r.returncode == 0, r.stderr + r.stdout
        assert f"router: {kind(True, manager)}" in r.stdout, r.stdout
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"\n[tests/lab] bonding-lab up --openwrt ({manager}): {up_s:.1f} s")
        yield Built(lab, up_s)
    finally:
        cli("--prefix", prefix, "down")
        lab.down(purge=request.session.testsfailed == failed)  # its logs kept on a failure


def ppid_comm(pid: int) -> str:
    ppid = next(int(x.split()[1]) for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                if x.startswith("PPid:"))
    return Path(f"/proc/{ppid}/comm").read_text().strip()


def alive(pid: int) -> bool:
    return start_ticks(pid) is not None


def iface(root: OwrtRoot, name: str) -> dict[str, Any]:
    out = root.ubus("call", f"network.interface.{name}", "status")
    assert isinstance(out, dict), out
    return out


def test_the_router_runs_procd_netifd_fw4_and_our_feed_by_opkg(built: Built) -> None:
    root = built.root
    ps = root.sh("ps w").stdout
    for prog in ("/sbin/procd", "/sbin/ubusd", "/sbin/netifd"):
        assert prog in ps, ps
    if built.state.package_manager == "apk":
        names = root.sh("apk info").stdout.split()
        assert {"luci-app-bonding", "bonding", "python3-bonding"} <= set(names), names
        assert root.path("/lib/apk/packages/bonding.conffiles").is_file()
    else:
        installed = root.sh("opkg list-installed").stdout
        assert "bonding - " in installed and "python3-bonding - " in installed, installed
    assert root.sh("uci -q show bonding | grep =path", check=False).stdout == ""
    for name, proto in PROTOS.items():
        st = iface(root, name)
        assert st["up"] and st["proto"] == proto, st
    assert iface(root, "lan")["ipv4-address"][0]["address"] == "192.0.2.1"
    tables = run(nsx(built.state.namespaces["router"], "nft", "list", "tables")).stdout
    assert "table inet fw4" in tables and "table inet bonding" in tables, tables
    # fw4 loads our include (the package's link in ruleset-post, resolved)
    assert 'include "/var/run/bonding/fw4.nft"' in root.sh("fw4 print").stdout
    masq = run(nsx(built.state.namespaces["router"], "nft", "list", "chain", "inet", "fw4",
                   "srcnat_wan")).stdout
    assert "masquerade" in masq, masq


def test_bondingd_under_procd_bonds_the_netifd_wans_with_lan_traffic(built: Built) -> None:
    lab, root = built.lab, built.root
    st = built.state
    assert st.daemon_pid is not None
    assert ppid_comm(st.daemon_pid) == "procd"
    assert wait_all_up(lab, 20), lab.status().get("paths")
    assert wait_proxy_running(lab, 10), lab.status().get("proxy")
    paths = lab.status()["paths"]
    assert sorted(paths) == sorted(PROTOS), paths
    eps = {e.get("dev"): e.get("address") for e in endpoints(lab)}
    for name in PROTOS:
        lease = iface(root, name)["ipv4-address"][0]["address"]
        assert (paths[name]["device"], paths[name]["address"]) == (name, lease), paths[name]
        assert eps.get(name) == lease, eps
    # 2 s for slow start and the subflows' set-up, then 3 s measured
    wire, report = rates_during(lab, lan_transfer(lab, 6), 2.0, 3.0, timeout=30)
    # every WAN carries the one LAN connection at once (a sanity bar, on a loaded host too:
    # unbonded, two of them would carry nothing of it; the figures are the demo's)
    for link in st.links:
        assert wire[link.name] > 0.25 * link.rate_mbit * 1e6, (link.name, wire)
    got = report["end"]["sum_received"]
    total = sum(x.rate_mbit for x in st.links) * 1e6
    assert got["bits_per_second"] > 0.3 * total, got
    assert report["start"]["connected"][0]["remote_host"] == TARGET_ADDR


def test_a_pulled_cable_takes_the_path_down_and_netifd_brings_it_back(built: Built) -> None:
    lab, root = built.lab, built.root
    lab.carrier("wan2", False)
    try:
        assert wait_for(lambda: path_state(lab, "wan2") == "down", 5) is not None
        assert wait_for(lambda: not iface(root, "wan2")["up"], 5) is not None  # netifd's ifdown
        assert "wan2" not in {e.get("dev") for e in endpoints(lab)}
        assert all(path_state(lab, n) == "up" for n in ("wan1", "wan3"))
    finally:
        lab.carrier("wan2", True)
    # plugged in: udhcpc asks the ISP again, bondingd probes the path up on the new lease
    assert wait_for(lambda: path_state(lab, "wan2") == "up", 20) is not None, \
        lab.status()["paths"]["wan2"]
    lease = iface(root, "wan2")["ipv4-address"][0]["address"]
    assert lab.status()["paths"]["wan2"]["address"] == lease
    assert {e.get("dev"): e.get("address") for e in endpoints(lab)}.get("wan2") == lease


def lan_http(built: Built, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """curl from the LAN host to the router (192.0.2.1), its status code last on stdout."""
    return subprocess.run(nsx(built.state.namespaces["lan"], "curl", "-s", "-m", "20", "-w",
                              "\n%{http_code}", *args, f"http://192.0.2.1{path}"),
                          capture_output=True, text=True, timeout=30, check=True)


def test_luci_serves_the_app_to_the_lan_with_bondingds_status(built: Built,
                                                              tmp_path: Path) -> None:
    luci = built.lab.describe()["luci"]
    jar = str(tmp_path / "cookies")
    bad = lan_http(built, "/cgi-bin/luci/", "-d", "luci_username=admin&luci_password=wrong")
    assert bad.stdout.endswith("\n403"), bad.stdout[-300:]
    login = lan_http(built, "/cgi-bin/luci/", "-c", jar, "-d",
                     f"luci_username={luci['user']}&luci_password={luci['password']}")
    assert login.stdout.endswith("\n302"), login.stdout[-300:]
    page = lan_http(built, "/cgi-bin/luci/admin/services/bonding/status", "-b", jar)
    assert page.stdout.endswith("\n200")
    assert 'data-page="admin-services-bonding-status"' in page.stdout
    # the app's own call, through uhttpd's /ubus, rpcd's session and the app's ACL
    sid = next(x.split("\t")[6] for x in Path(jar).read_text().splitlines() if "sysauth" in x)
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "call",
                       "params": [sid, "bonding", "status", {}]})
    answer = lan_http(built, "/ubus", "-d", call).stdout.rsplit("\n", 1)[0]
    code, status = json.loads(answer)["result"]
    assert code == 0 and sorted(status["paths"]) == sorted(PROTOS), answer[:300]


def test_down_leaves_no_namespace_process_or_mount(built: Built) -> None:
    st = built.state
    stage = str(Path(st.state_dir) / "owrt" / "stage")
    pids = [st.pids["owrt-init"], *(p for k, p in st.pids.items() if k.startswith("udhcpd-")),
            *([st.daemon_pid] if st.daemon_pid else [])]
    assert all(alive(p) for p in pids), pids
    assert stage in Path(f"/proc/{st.pids['owrt-init']}/mountinfo").read_text()
    r = cli("--prefix", st.prefix, "down")
    assert r.returncode == 0, r.stderr
    left = [n for n in run(["ip", "netns", "list"]).stdout.split()
            if n.startswith(st.prefix + "-")]
    assert left == []
    # killed (a zombie is dead: its new parent reaps it in a moment)
    assert [p for p in pids if alive(p)] == []
    mounted, running = [], []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if stage in (proc / "mountinfo").read_text():
                mounted.append(proc.name)
            if st.state_dir.encode() in (proc / "cmdline").read_bytes():
                running.append(proc.name)
        except OSError:
            continue
    assert mounted == [] and running == [], (mounted, running)
