"""Kernel link and address events acted on at once (bonding.bondingd.linkevents): rtnetlink
datagrams built with the repo's codec, decoded by bonding.netlink.monitor as the daemon's
LinkMonitor does, fed to `on_event` over a fake Core that records what it was asked."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import rtnl_msgs as m

from bonding.bondingd.linkevents import on_event
from bonding.bondingd.runtime import FamilyRuntime, PathRuntime
from bonding.config import PathConfig
from bonding.netlink import monitor
from bonding.netlink.core import Message
from bonding.netlink.monitor import Event

Call = tuple[object, ...]


class FakeCore:
    """bondingd.linkevents.Core: records each call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def on_link(self, rt: PathRuntime, ok: bool, why: str,
                families: Sequence[FamilyRuntime] | None = None) -> None:
        fams = None if families is None else tuple(f.family for f in families)
        self.calls.append(("on_link", rt.cfg.name, ok, why, fams))

    def link_state(self, rt: PathRuntime, up: bool, carrier: bool) -> None:
        self.calls.append(("link_state", rt.cfg.name, up, carrier))

    def resolve(self) -> None:
        self.calls.append(("resolve",))

    def schedule_reconcile(self) -> None:
        self.calls.append(("reconcile",))


def paths(wan_v4: str | None = "100.64.1.2") -> list[PathRuntime]:
    """wan on wan1 (#3) with IPv4 and IPv6, lte on wwan0 (#7) with IPv4."""
    wan = PathRuntime(cfg=PathConfig(name="wan", device="wan1"), index=0, device="wan1",
                      ifindex=3)
    wan.v4.address, wan.v6.address = wan_v4, "2001:db8:64:1::2"
    lte = PathRuntime(cfg=PathConfig(name="lte", interface="lte"), index=1, device="wwan0",
                      ifindex=7)
    lte.v4.address = "10.1.2.3"
    return [wan, lte]


def events(*msgs: Message) -> list[Event]:
    evs = monitor.decode_events(m.datagram(*msgs))
    assert len(evs) == len(msgs)
    return evs


RECONCILE: Call = ("reconcile",)
RESOLVE: Call = ("resolve",)

# (id, the kernel's message, IPv6 on, the wan path has an IPv4 address, what the core is asked)
CASES: list[tuple[str, Message, bool, bool, list[Call]]] = [
    ("carrier lost", m.link(3, "wan1", carrier=False), True, True,
     [("link_state", "wan", True, False), RECONCILE]),
    ("carrier back", m.link(3, "wan1"), True, True,
     [("link_state", "wan", True, True), RECONCILE]),
    ("set administratively down", m.link(3, "wan1", up=False, carrier=False), True, True,
     [("link_state", "wan", False, False), RECONCILE]),
    ("device removed", m.link(3, "wan1", removed=True), True, True,
     [("on_link", "wan", False, "wan1 was removed", None), RECONCILE]),
    ("device removed after a rename: found by its index", m.link(3, "wan1old", removed=True),
     True, True, [("on_link", "wan", False, "wan1 was removed", None), RECONCILE]),
    ("device created again (a new index): look again", m.link(9, "wan1"), True, True,
     [RESOLVE, RECONCILE]),
    ("link news for a path without an address: look again", m.link(3, "wan1"), True, False,
     [RESOLVE, RECONCILE]),
    ("another device", m.link(2, "eth0", carrier=False), True, True, [RECONCILE]),
    ("the path's IPv4 address removed",
     m.addr(3, "100.64.1.2", 24, label="wan1", removed=True), True, True,
     [("on_link", "wan", False, "address 100.64.1.2 removed from wan1", (4,)), RESOLVE,
      RECONCILE]),
    ("another IPv4 address of the device removed",
     m.addr(3, "100.64.1.3", 24, label="wan1", removed=True), True, True, [RECONCILE]),
    ("an IPv4 address added to a path that has one", m.addr(3, "100.64.1.3", 24, label="wan1"),
     True, True, [RECONCILE]),
    ("an IPv4 address added to a path that has none", m.addr(3, "100.64.1.2", 24, label="wan1"),
     True, False, [RESOLVE, RECONCILE]),
    ("an IPv4 address on another device", m.addr(5, "192.0.2.1", 24, label="eth5"), True, False,
     [RECONCILE]),
    ("an IPv6 address (re)announced (DAD over, or deprecated): look again",
     m.addr(3, "2001:db8:64:1::5", 64), True, True, [RESOLVE, RECONCILE]),
    ("the path's IPv6 address removed", m.addr(3, "2001:db8:64:1::2", 64, removed=True),
     True, True,
     [("on_link", "wan", False, "address 2001:db8:64:1::2 removed from wan1", (6,)), RESOLVE,
      RECONCILE]),
    ("IPv6 off: its events are not looked at", m.addr(3, "2001:db8:64:1::2", 64, removed=True),
     False, True, []),
    ("link-local IPv6: not looked at", m.addr(3, "fe80::2", 64, scope=253, removed=True), True,
     True, []),
]


@pytest.mark.parametrize(("msg", "ipv6", "has_v4", "calls"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_on_event(msg: Message, ipv6: bool, has_v4: bool, calls: list[Call]) -> None:
    core = FakeCore()
    [ev] = events(msg)
    on_event(core, paths(None if not has_v4 else "100.64.1.2"), ev, ipv6=ipv6)
    assert core.calls == calls


def test_a_removed_device_forgets_its_index_and_addresses() -> None:
    core = FakeCore()
    wan, lte = paths()
    [ev] = events(m.link(3, "wan1", removed=True))
    on_event(core, [wan, lte], ev, ipv6=True)
    assert (wan.ifindex, wan.v4.address, wan.v6.address) == (None, None, None)
    assert wan.device == "wan1"  # named still: the device may come back
    assert (lte.ifindex, lte.v4.address) == (7, "10.1.2.3")


def test_a_removed_address_is_forgotten_only_in_its_family() -> None:
    core = FakeCore()
    wan, _ = paths()
    [ev] = events(m.addr(3, "2001:db8:64:1::2", 64, removed=True))
    on_event(core, [wan], ev, ipv6=True)
    assert wan.v6.address is None and wan.v4.address == "100.64.1.2"


def test_lost_events_make_the_daemon_read_everything_again() -> None:
    core = FakeCore()
    on_event(core, paths(), monitor.Resync(), ipv6=True)
    assert core.calls == [RESOLVE]


def test_one_datagram_of_several_events_is_acted_on_in_order() -> None:
    core = FakeCore()
    ps = paths()
    for ev in events(m.link(7, "wwan0", carrier=False), m.link(3, "wan1", carrier=False)):
        on_event(core, ps, ev, ipv6=True)
    assert core.calls == [("link_state", "lte", True, False), RECONCILE,
                          ("link_state", "wan", True, False), RECONCILE]
