"""The netifd bridge (bonding.bondingd.netifd_bridge): `network.interface dump` read over a fake
bus into the NetifdView, one read at a time, one more when asked during a read."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bonding.bondingd.netifd_bridge import NETIFD_TIMEOUT_S, NetifdBridge
from bonding.netifd import Info, NetifdView
from bonding.ubus import UbusError, UbusStatus

# One interface of netifd's dump, with the fields tests/owrt/test_userland_parts.py checks in
# the dump of a real netifd (a static WAN: proto, l3_device, ipv4-address) and its default route.
WAN = {"interface": "wan", "up": True, "proto": "static", "l3_device": "wan1", "device": "wan1",
       "ipv4-address": [{"address": "100.64.1.2", "mask": 24}],
       "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "100.64.1.1",
                  "source": "0.0.0.0/0"}]}


class FakeBus:
    """bondingd.netifd_bridge.Bus: answers `dump` from a script, each call held until `go`."""

    def __init__(self, answers: list[dict[str, Any] | UbusError], connected: bool = True,
                 hold: bool = False) -> None:
        self.answers = answers
        self.connected = connected
        self.calls: list[tuple[str, str, float]] = []
        self.go = asyncio.Event()
        if not hold:
            self.go.set()

    async def call(self, path: str, method: str, args: Mapping[str, Any] | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:
        self.calls.append((path, method, timeout))
        await self.go.wait()
        got = self.answers.pop(0)
        if isinstance(got, UbusError):
            raise got
        return got


class Rig:
    def __init__(self, bus: FakeBus | None, bus_error: str | None = None) -> None:
        self.view = NetifdView()
        self.reads = 0
        self.bridge = NetifdBridge(self.view, lambda: bus, lambda: bus_error, self.on_read)

    def on_read(self) -> None:
        self.reads += 1

    async def settle(self) -> None:
        while self.bridge._task is not None and not self.bridge._task.done():
            await asyncio.sleep(0)


def run(rig: Rig, *refreshes: str) -> None:
    async def go() -> None:
        for _ in refreshes:
            rig.bridge.refresh()
        await rig.settle()
    asyncio.run(go())


def test_a_read_fills_the_view_and_tells_the_daemon() -> None:
    bus = FakeBus([{"interface": [WAN]}])
    rig = Rig(bus)
    run(rig, "refresh")
    assert bus.calls == [("network.interface", "dump", NETIFD_TIMEOUT_S)]
    assert rig.view.lookup("wan") == Info("wan1", "100.64.1.2", "100.64.1.1")
    assert rig.reads == 1


def test_without_a_bus_the_view_says_why() -> None:
    rig = Rig(None, bus_error="cannot connect to /var/run/ubus/ubus.sock")
    run(rig, "refresh")
    msg = rig.view.lookup("wan")
    assert isinstance(msg, str) and "cannot connect to /var/run/ubus/ubus.sock" in msg
    assert rig.reads == 1
    rig2 = Rig(FakeBus([], connected=False))
    run(rig2, "refresh")
    assert rig2.view.error == "not connected to ubusd" and rig2.reads == 1


def test_a_failed_dump_is_said_and_the_last_good_one_kept() -> None:
    bus = FakeBus([{"interface": [WAN]}, UbusError(UbusStatus.TIMEOUT, "no answer")])
    rig = Rig(bus)
    run(rig, "refresh")
    run(rig, "refresh")
    assert rig.view.error is not None and rig.view.error.startswith("network.interface dump:")
    assert "no answer" in rig.view.error
    assert rig.view.lookup("wan") == Info("wan1", "100.64.1.2", "100.64.1.1")
    assert rig.reads == 2


def test_calls_during_a_read_make_one_more_read_after_it() -> None:
    down = {**WAN, "up": False}
    bus = FakeBus([{"interface": [WAN]}, {"interface": [down]}], hold=True)
    rig = Rig(bus)

    async def go() -> None:
        rig.bridge.refresh()
        await asyncio.sleep(0)
        assert len(bus.calls) == 1  # the first read is waiting for netifd
        rig.bridge.on_event("interface.update", {"interface": "wan"})
        rig.bridge.refresh()
        rig.bridge.refresh()
        await asyncio.sleep(0)
        assert len(bus.calls) == 1  # never two at a time
        bus.go.set()
        await rig.settle()

    asyncio.run(go())
    assert len(bus.calls) == 2 and rig.reads == 2  # three asks during the read: one more read
    assert rig.view.lookup("wan") == "netifd interface 'wan' is down"  # the newer answer


def test_holding_until_netifd_first_answers() -> None:
    """At the start the daemon makes no plan until netifd's paths are known (a plan without them
    would remove what a restarted bondingd left: routes, endpoints, their connections)."""
    async def go() -> None:
        rig = Rig(FakeBus([{"interface": [WAN]}]))
        timed_out: list[int] = []
        assert not rig.bridge.holding  # not asked to
        rig.bridge.hold(30.0, lambda: timed_out.append(1))
        assert rig.bridge.holding
        rig.bridge.refresh()
        await rig.settle()
        assert not rig.bridge.holding and rig.reads == 1
        assert timed_out == []
    asyncio.run(go())


def test_holding_ends_when_netifd_cannot_be_asked_or_the_time_is_up() -> None:
    async def go() -> None:
        rig = Rig(FakeBus([UbusError(UbusStatus.TIMEOUT, "dump")]))
        rig.bridge.hold(30.0, lambda: None)
        rig.bridge.refresh()
        await rig.settle()
        assert not rig.bridge.holding  # its error is the answer
        quiet = Rig(None)
        timed_out: list[int] = []
        quiet.bridge.hold(0.05, lambda: timed_out.append(1))
        assert quiet.bridge.holding
        await asyncio.sleep(0.1)
        assert timed_out == [1] and not quiet.bridge.holding
    asyncio.run(go())
