"""netifd's interface dump → what a path needs (device, address, gateway)."""

from __future__ import annotations

from bonding.netifd import Info, NetifdView

WAN = {"interface": "wan", "up": True, "l3_device": "eth1", "device": "eth1",
       "ipv4-address": [{"address": "100.64.1.2", "mask": 24}],
       "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "100.64.1.1", "source": "x"}]}
LTE = {"interface": "lte", "up": True, "l3_device": "wwan0", "device": "cdc-wdm0",
       "ipv4-address": [{"address": "10.1.2.3", "mask": 30}],
       "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "0.0.0.0"}]}
DOWN = {"interface": "dsl", "up": False}


def test_dump_lookup() -> None:
    v = NetifdView()
    v.update({"interface": [WAN, LTE, DOWN]})
    assert v.lookup("wan") == Info("eth1", "100.64.1.2", "100.64.1.1")
    assert v.lookup("lte") == Info("wwan0", "10.1.2.3", None)  # point-to-point: no next hop
    assert v.lookup("dsl") == "netifd interface 'dsl' is down"
    assert "has no interface 'nope'" in str(v.lookup("nope"))
    assert v.interface_of("wwan0") == "lte" and v.interface_of("eth9") is None
    # WAN discovery (no path sections): up, with an IPv4 default route
    lan = {"interface": "lan", "up": True, "l3_device": "br-lan",
           "ipv4-address": [{"address": "192.168.1.1", "mask": 24}], "route": []}
    v.update({"interface": [WAN, LTE, DOWN, lan]})
    assert v.wan_interfaces() == ["lte", "wan"]


def test_before_any_dump_the_reason_is_given() -> None:
    v = NetifdView()
    v.failed("not connected to ubusd")
    msg = v.lookup("wan")
    assert isinstance(msg, str)
    assert "not connected to ubusd" in msg and "option device" in msg


def test_a_malformed_dump_keeps_the_last_good_one() -> None:
    v = NetifdView()
    v.update({"interface": [WAN]})
    v.update({"interfaces": "garbage"})
    assert v.error is not None
    assert v.lookup("wan") == Info("eth1", "100.64.1.2", "100.64.1.1")


def test_a_wan_that_goes_down_stays_a_wan_until_netifd_drops_it() -> None:
    v = NetifdView()
    v.update({"interface": [WAN, LTE]})
    assert v.wan_interfaces() == ["lte", "wan"]
    # ifdown / a lost lease / a pulled cable: netifd lists it down, without its routes
    v.update({"interface": [{"interface": "wan", "up": False}, LTE]})
    assert v.wan_interfaces() == ["lte", "wan"]
    assert v.lookup("wan") == "netifd interface 'wan' is down"
    v.update({"interface": [LTE]})  # removed from /etc/config/network
    assert v.wan_interfaces() == ["lte"]
    # an interface that was never seen up with a default route is no WAN
    v.update({"interface": [LTE, DOWN]})
    assert v.wan_interfaces() == ["lte"]
