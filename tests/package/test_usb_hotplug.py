"""/etc/hotplug.d/net/30-bonding-usb under busybox ash, on a fake sysfs: a USB netdev becomes
a WAN (network, firewall zone, bonding path), named after its USB port, and its removal takes
exactly that back."""

from __future__ import annotations

import os
import shutil

import pytest

from bonding import uci

from .conftest import FIREWALL, NETWORK, PKG, SHIPPED_CONFIG, Sandbox

SCRIPT = PKG / "bonding-usb" / "files" / "bonding-usb.net"
HOST = "/devices/platform/soc/1e1c0000.xhci/usb1"


def usb_netdev(sb: Sandbox, port: str, ifname: str, driver: str, intf: int = 0,
               wdm: str | None = None) -> str:
    """A netdev on USB port `port` (like 1-1.2), interface `intf`, bound to `driver`, as the
    kernel lays it out in sysfs; returns its DEVPATH."""
    parts = port.split("-")[1].split(".")
    chain = [f"{port.split('-')[0]}-" + ".".join(parts[:i + 1]) for i in range(len(parts))]
    usb_if = f"{port}:1.{intf}"
    devpath = f"{HOST}/{'/'.join(chain)}/{usb_if}/net/{ifname}"
    sysdev = sb.root / "sys" / devpath.lstrip("/")
    sysdev.mkdir(parents=True)
    ifdir = sysdev.parent.parent
    drivers = sb.root / "sys" / "bus" / "usb" / "drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    (ifdir / "driver").symlink_to(os.path.relpath(drivers, ifdir))
    (sysdev / "device").symlink_to("../..")
    if wdm:
        (ifdir / "usbmisc" / wdm).mkdir(parents=True)
    classnet = sb.root / "sys" / "class" / "net"
    classnet.mkdir(parents=True, exist_ok=True)
    (classnet / ifname).symlink_to(os.path.relpath(sysdev, classnet))
    return devpath


def unplug(sb: Sandbox, devpath: str, ifname: str) -> None:
    """The kernel removes the sysfs entries before the remove event reaches hotplug."""
    (sb.root / "sys" / "class" / "net" / ifname).unlink()
    top = sb.root / "sys" / devpath.lstrip("/")
    shutil.rmtree(top.parent.parent)


def net_event(sb: Sandbox, action: str, devpath: str, ifname: str) -> None:
    r = sb.run(SCRIPT, {"ACTION": action, "INTERFACE": ifname, "DEVICENAME": ifname,
                        "DEVPATH": devpath, "SUBSYSTEM": "net"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def section(sb: Sandbox, package: str, ref: str) -> uci.Section | None:
    return uci.loads(sb.config(package), package).section(ref)


def wan_networks(sb: Sandbox) -> tuple[str, ...]:
    for s in uci.loads(sb.config("firewall"), "firewall").of_type("zone"):
        if s.get("name") == "wan":
            v = s.get("network", ())
            return (v,) if isinstance(v, str) else tuple(v or ())
    raise AssertionError("no wan zone")


def reloads(sb: Sandbox) -> list[str]:
    return [r[0].split("/")[1] for r in sb.records() if r[0].startswith("init.d/")
            and r[1:] == ["reload"]]


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    sandbox.write_config("network", NETWORK)
    sandbox.write_config("firewall", FIREWALL)
    sandbox.write_config("bonding", SHIPPED_CONFIG.read_text())
    return sandbox


def test_plug_makes_a_dhcp_wan_in_the_zone_and_a_path(sb: Sandbox) -> None:
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")

    iface = section(sb, "network", "usb1_1_2")
    assert iface is not None and iface.type == "interface"
    # metric 40 is wanb's: the first free one of 40..55
    assert iface.options == {"proto": "dhcp", "device": "usb0", "metric": "41",
                             "bonding_usb": "1-1.2:1.0"}
    assert wan_networks(sb) == ("wan", "wan6", "usb1_1_2")
    path = section(sb, "bonding", "usb1_1_2")
    assert path is not None and path.type == "path"
    assert path.options == {"interface": "usb1_1_2"}
    assert sorted(reloads(sb)) == ["bonding", "firewall", "network"]
    # exactly these changes, each package committed once
    writes = sb.uci_writes()
    assert sorted(w for w in writes if w[0] != "commit") == sorted([
        ["set", "network.usb1_1_2=interface"],
        ["set", "network.usb1_1_2.proto=dhcp"],
        ["set", "network.usb1_1_2.device=usb0"],
        ["set", "network.usb1_1_2.metric=41"],
        ["set", "network.usb1_1_2.bonding_usb=1-1.2:1.0"],
        ["add_list", "firewall.@zone[1].network=usb1_1_2"],
        ["set", "bonding.usb1_1_2=path"],
        ["set", "bonding.usb1_1_2.interface=usb1_1_2"],
    ])
    assert sorted(w[1] for w in writes if w[0] == "commit") == ["bonding", "firewall", "network"]
    assert any("usb0 (cdc_ether) on USB port 1-1.2: interface usb1_1_2, dhcp, metric 41" in x
               for x in sb.logs())


def test_unplug_undoes_exactly_the_plug(sb: Sandbox) -> None:
    before = sb.configs()
    dev = usb_netdev(sb, "1-1.2", "usb0", "rndis_host")
    net_event(sb, "add", dev, "usb0")
    assert sb.configs() != before
    sb.reset_logs()
    unplug(sb, dev, "usb0")
    net_event(sb, "remove", dev, "usb0")
    after = sb.configs()
    for pkg in ("network", "firewall", "bonding"):
        assert uci.loads(after[pkg], pkg) == uci.loads(before[pkg], pkg), pkg
    assert sorted(reloads(sb)) == ["bonding", "firewall", "network"]


def test_the_name_follows_the_port_not_the_plugging_order(sb: Sandbox) -> None:
    a = usb_netdev(sb, "1-1.3", "usb0", "cdc_ncm")
    net_event(sb, "add", a, "usb0")
    b = usb_netdev(sb, "1-1.2", "usb1", "ipheth")
    net_event(sb, "add", b, "usb1")
    first, second = section(sb, "network", "usb1_1_3"), section(sb, "network", "usb1_1_2")
    assert first is not None and first.options["device"] == "usb0"
    assert first.options["metric"] == "41"
    assert second is not None and second.options["device"] == "usb1"
    assert second.options["metric"] == "42"
    assert wan_networks(sb) == ("wan", "wan6", "usb1_1_3", "usb1_1_2")
    # the first goes, then comes back on the same port as another netdev: same name, its metric
    unplug(sb, a, "usb0")
    net_event(sb, "remove", a, "usb0")
    assert section(sb, "network", "usb1_1_3") is None
    assert section(sb, "network", "usb1_1_2") is not None
    c = usb_netdev(sb, "1-1.3", "usb2", "r8152")
    net_event(sb, "add", c, "usb2")
    again = section(sb, "network", "usb1_1_3")
    assert again is not None and again.options["device"] == "usb2"
    assert again.options["metric"] == "41"


def test_a_root_port_and_a_second_interface(sb: Sandbox) -> None:
    dev = usb_netdev(sb, "2-1", "usb0", "cdc_ether", intf=2)
    net_event(sb, "add", dev, "usb0")
    iface = section(sb, "network", "usb2_1_2")
    assert iface is not None and iface.options["bonding_usb"] == "2-1:1.2"


def test_replug_at_boot_with_the_config_in_place_changes_nothing(sb: Sandbox) -> None:
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    before = sb.configs()
    sb.reset_logs()
    net_event(sb, "add", dev, "usb0")
    assert sb.configs() == before
    assert sb.uci_writes() == []
    assert reloads(sb) == []


@pytest.mark.parametrize("driver", ["cdc_ether", "rndis_host", "ipheth", "r8152", "cdc_ncm"])
def test_every_listed_network_driver_is_taken(sb: Sandbox, driver: str) -> None:
    dev = usb_netdev(sb, "1-1.4", "eth9", driver)
    net_event(sb, "add", dev, "eth9")
    iface = section(sb, "network", "usb1_1_4")
    assert iface is not None and iface.options["proto"] == "dhcp"


@pytest.mark.parametrize("driver,proto", [("cdc_mbim", "mbim"), ("qmi_wwan", "qmi")])
def test_a_modem_gets_its_protocol_on_its_control_device(sb: Sandbox, driver: str,
                                                          proto: str) -> None:
    dev = usb_netdev(sb, "1-1.1", "wwan0", driver, intf=4, wdm="cdc-wdm1")
    sb.write_config("bonding", sb.config("bonding").replace(
        "config usb 'usb'\n", "config usb 'usb'\n\toption apn 'internet.example'\n"))
    net_event(sb, "add", dev, "wwan0")
    iface = section(sb, "network", "usb1_1_1_4")
    assert iface is not None
    assert iface.options == {"proto": proto, "device": "/dev/cdc-wdm1", "metric": "41",
                             "bonding_usb": "1-1.1:1.4", "apn": "internet.example"}


def test_a_modem_without_apn_is_added_and_the_apn_asked_for(sb: Sandbox) -> None:
    dev = usb_netdev(sb, "1-1.1", "wwan0", "cdc_mbim", intf=4, wdm="cdc-wdm0")
    net_event(sb, "add", dev, "wwan0")
    iface = section(sb, "network", "usb1_1_1_4")
    assert iface is not None and "apn" not in iface.options
    assert any(x.startswith("daemon.warn") and "set bonding.usb.apn" in x for x in sb.logs())


def test_a_modem_without_control_device_is_not_added(sb: Sandbox) -> None:
    dev = usb_netdev(sb, "1-1.1", "wwan0", "qmi_wwan", intf=4)
    net_event(sb, "add", dev, "wwan0")
    assert sb.uci_writes() == []
    assert any(x.startswith("daemon.err") and "no cdc-wdm" in x for x in sb.logs())


def nothing_happened(sb: Sandbox, before: dict[str, str]) -> None:
    assert sb.configs() == before
    assert sb.uci_writes() == []
    assert reloads(sb) == []


def test_virtual_devices_are_skipped(sb: Sandbox) -> None:
    before = sb.configs()
    net_event(sb, "add", "/devices/virtual/net/veth0", "veth0")
    net_event(sb, "add", "/devices/virtual/net/usb0", "usb0")
    nothing_happened(sb, before)
    assert sb.uci_calls() == []


def test_other_drivers_are_skipped(sb: Sandbox) -> None:
    before = sb.configs()
    dev = usb_netdev(sb, "1-1.2", "wlan0", "mt7601u")
    net_event(sb, "add", dev, "wlan0")
    nothing_happened(sb, before)


def test_a_netdev_not_on_usb_is_skipped(sb: Sandbox) -> None:
    before = sb.configs()
    net_event(sb, "add", "/devices/platform/soc/1e100000.ethernet/net/eth3", "eth3")
    nothing_happened(sb, before)


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_auto_dhcp_off_turns_it_off(sb: Sandbox, value: str) -> None:
    sb.write_config("bonding", sb.config("bonding").replace(
        "option auto_dhcp '1'", f"option auto_dhcp '{value}'"))
    before = sb.configs()
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    nothing_happened(sb, before)


@pytest.mark.parametrize("section", [
    # the user's own interface on the device
    "config interface 'phone'\n\toption device 'usb0'\n\toption proto 'dhcp'\n",
    # a section of the name the hotplug would give it, on another device
    "config interface 'usb1_1_2'\n\toption proto 'dhcp'\n\toption device 'usb5'\n",
], ids=["configured-device", "same-section-name"])
def test_what_the_user_made_is_left_alone(sb: Sandbox, section: str) -> None:
    sb.write_config("network", NETWORK + "\n" + section)
    before = sb.configs()
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    nothing_happened(sb, before)
    unplug(sb, dev, "usb0")
    net_event(sb, "remove", dev, "usb0")
    nothing_happened(sb, before)


def test_removing_what_was_never_added_does_nothing(sb: Sandbox) -> None:
    before = sb.configs()
    net_event(sb, "remove", f"{HOST}/1-1/1-1.2/1-1.2:1.0/net/usb0", "usb0")
    nothing_happened(sb, before)


def test_the_metric_range_comes_from_the_config_and_can_run_out(sb: Sandbox) -> None:
    sb.write_config("bonding", sb.config("bonding").replace("option metric_base '40'",
                                                             "option metric_base '70'"))
    taken = "".join(f"\nconfig interface 'x{m}'\n\toption proto 'none'\n\toption metric '{m}'\n"
                    for m in range(70, 85))
    sb.write_config("network", NETWORK + taken)
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    iface = section(sb, "network", "usb1_1_2")
    assert iface is not None and iface.options["metric"] == "85"  # the last of 70..85
    before = sb.configs()
    sb.reset_logs()
    dev2 = usb_netdev(sb, "1-1.3", "usb1", "cdc_ether")
    net_event(sb, "add", dev2, "usb1")
    nothing_happened(sb, before)
    assert any(x.startswith("daemon.err") and "70..85 are all taken" in x for x in sb.logs())


def test_without_path_sections_no_path_is_added(sb: Sandbox) -> None:
    sb.write_config("bonding", "config globals 'globals'\n\nconfig usb 'usb'\n")
    before = sb.config("bonding")
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    assert section(sb, "network", "usb1_1_2") is not None
    assert sb.config("bonding") == before
    assert sorted(reloads(sb)) == ["firewall", "network"]


def test_without_a_wan_zone_the_interface_is_added_and_that_said(sb: Sandbox) -> None:
    sb.write_config("firewall", FIREWALL.replace("option name 'wan'", "option name 'outside'"))
    before = sb.config("firewall")
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    assert sb.config("firewall") == before
    assert section(sb, "network", "usb1_1_2") is not None
    assert any("no firewall zone 'wan'" in x for x in sb.logs())


def test_events_other_than_add_and_remove_are_ignored(sb: Sandbox) -> None:
    before = sb.configs()
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    for action in ("move", "change", "bind", ""):
        net_event(sb, action, dev, "usb0")
    nothing_happened(sb, before)
    assert sb.uci_calls() == []


def test_the_files_stay_loadable_by_bonding(sb: Sandbox) -> None:
    from bonding import config
    dev = usb_netdev(sb, "1-1.2", "usb0", "cdc_ether")
    net_event(sb, "add", dev, "usb0")
    cfg, problems = config.load(sb.confdir)
    assert problems == []
    assert [p.name for p in cfg.paths] == ["wan", "usb1_1_2"]

