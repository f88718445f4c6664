"""/etc/hotplug.d/iface/30-bonding under busybox ash: which netifd events reach bondingd, with
what, and what happens when bondingd is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FIREWALL, NETWORK, PKG, SHIPPED_CONFIG, Sandbox

SCRIPT = PKG / "bonding" / "files" / "bonding.iface"

BONDING_TWO_PATHS = """
config globals 'globals'
	option enabled '1'

config path 'wan'
	option interface 'wan'

config path
	option interface 'wanb'

config usb 'usb'
"""


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    sandbox.write_config("network", NETWORK)
    sandbox.write_config("firewall", FIREWALL)
    sandbox.write_config("bonding", BONDING_TWO_PATHS)
    sandbox.env["REC_OUT_ubus"] = '{"handled": true, "path": "wan"}\n'
    return sandbox


def ubus_calls(sb: Sandbox) -> list[dict[str, str]]:
    out = []
    for r in sb.records("ubus"):
        assert r[1:5] == ["-t", "2", "call", "bonding"], r
        assert r[5] == "iface", r
        out.append(json.loads(r[6]))
    return out


def event(sb: Sandbox, **env: str) -> None:
    r = sb.run(SCRIPT, env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def cache(sb: Sandbox, iface: str) -> Path:
    return sb.root / "var" / "run" / "bonding" / "iface" / iface


def test_ifup_of_a_path_is_told_with_its_device_and_remembered(sb: Sandbox) -> None:
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE="eth1")
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifup", "device": "eth1"}]
    assert cache(sb, "wan").read_text() == "eth1\n"
    assert any("ifup of wan (eth1) told to bondingd" in x for x in sb.logs())


def test_ifdown_without_device_uses_the_cached_one_and_forgets_it(sb: Sandbox) -> None:
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE="eth1")
    sb.reset_logs()
    event(sb, ACTION="ifdown", INTERFACE="wan")
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifdown", "device": "eth1"}]
    assert not cache(sb, "wan").exists()


def test_ifdown_with_nothing_cached_is_told_without_device(sb: Sandbox) -> None:
    event(sb, ACTION="ifdown", INTERFACE="wan")
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifdown"}]


def test_anonymous_path_sections_count(sb: Sandbox) -> None:
    event(sb, ACTION="ifup", INTERFACE="wanb", DEVICE="eth2")
    assert ubus_calls(sb) == [{"interface": "wanb", "action": "ifup", "device": "eth2"}]


def test_ifupdate_without_changes_does_nothing(sb: Sandbox) -> None:
    event(sb, ACTION="ifupdate", INTERFACE="wan", DEVICE="eth1")
    assert sb.records() == []
    assert sb.uci_calls() == []
    assert not cache(sb, "wan").exists()


@pytest.mark.parametrize("flag", ["IFUPDATE_ADDRESSES", "IFUPDATE_ROUTES", "IFUPDATE_DATA"])
def test_ifupdate_with_a_change_is_told(sb: Sandbox, flag: str) -> None:
    event(sb, ACTION="ifupdate", INTERFACE="wan", DEVICE="eth1", **{flag: "1"})
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifupdate", "device": "eth1"}]


def test_ifupdate_of_prefixes_only_is_not_told(sb: Sandbox) -> None:
    event(sb, ACTION="ifupdate", INTERFACE="wan", DEVICE="eth1", IFUPDATE_PREFIXES="1")
    assert ubus_calls(sb) == []


@pytest.mark.parametrize("iface", ["lan", "loopback", "wan6"])
def test_interfaces_that_are_no_path_are_not_told(sb: Sandbox, iface: str) -> None:
    event(sb, ACTION="ifup", INTERFACE=iface, DEVICE="br-lan")
    assert ubus_calls(sb) == []
    assert not cache(sb, iface).exists()


@pytest.mark.parametrize("action", ["ifup-failed", "free", "update", "add", ""])
def test_other_actions_are_ignored(sb: Sandbox, action: str) -> None:
    event(sb, ACTION=action, INTERFACE="wan", DEVICE="eth1")
    assert sb.records() == [] and sb.uci_calls() == []


def test_without_path_sections_the_wan_zone_counts(sb: Sandbox) -> None:
    sb.write_config("bonding", "config globals 'globals'\n\nconfig usb 'usb'\n")
    event(sb, ACTION="ifup", INTERFACE="wan6", DEVICE="eth1")
    event(sb, ACTION="ifup", INTERFACE="lan", DEVICE="br-lan")
    event(sb, ACTION="ifup", INTERFACE="wanb", DEVICE="eth2")  # not in the wan zone
    assert ubus_calls(sb) == [{"interface": "wan6", "action": "ifup", "device": "eth1"}]


def test_the_shipped_config_makes_wan_a_path(sb: Sandbox) -> None:
    sb.write_config("bonding", SHIPPED_CONFIG.read_text())
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE="eth1")
    event(sb, ACTION="ifup", INTERFACE="wanb", DEVICE="eth2")
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifup", "device": "eth1"}]


def test_bondingd_not_running_is_logged_and_not_an_error(sb: Sandbox) -> None:
    sb.env["REC_RC_ubus"] = "4"
    sb.env["REC_OUT_ubus"] = "Command failed: Not found\n"
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE="eth1")
    assert len(ubus_calls(sb)) == 1
    assert any(x.startswith("daemon.notice") and "bondingd is not running" in x
               and "Not found" in x for x in sb.logs()), sb.logs()
    # the device is remembered all the same, for the ifdown
    assert cache(sb, "wan").read_text() == "eth1\n"


def test_a_malformed_interface_name_is_refused(sb: Sandbox) -> None:
    event(sb, ACTION="ifup", INTERFACE='wan","x":"1', DEVICE="eth1")
    assert ubus_calls(sb) == []
    assert any(x.startswith("daemon.warn") and "not a netifd interface name" in x
               for x in sb.logs())


def test_a_malformed_device_is_left_out_of_the_json(sb: Sandbox) -> None:
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE='eth1"}')
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifup"}]
    assert not cache(sb, "wan").exists()


def test_no_bonding_config_at_all_falls_back_to_the_wan_zone(sb: Sandbox) -> None:
    (sb.confdir / "bonding").unlink()
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE="eth1")
    assert ubus_calls(sb) == [{"interface": "wan", "action": "ifup", "device": "eth1"}]


def test_it_only_reads_uci(sb: Sandbox) -> None:
    event(sb, ACTION="ifup", INTERFACE="wan", DEVICE="eth1")
    event(sb, ACTION="ifdown", INTERFACE="wan")
    assert sb.uci_calls() and sb.uci_writes() == []
