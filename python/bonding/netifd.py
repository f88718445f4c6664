"""What netifd knows of its logical interfaces (OpenWrt): device, address, gateway.

bondingd asks netifd over its own ubus connection (`network.interface dump`) when it starts,
after every `network.interface` event and every hotplug `iface` call, and keeps the answer in a
:class:`NetifdView`; path resolution reads the view and never blocks on ubus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Info:
    device: str | None = None
    address: str | None = None
    gateway: str | None = None
    up: bool = True


def parse_status(name: str, data: Mapping[str, Any]) -> Info | str:
    """netifd's status of one interface → Info, or why it cannot be used."""
    if not data.get("up", False):
        return f"netifd interface '{name}' is down"
    device = data.get("l3_device") or data.get("device")
    if not device:
        return f"netifd interface '{name}' has no device"
    addrs = data.get("ipv4-address") or []
    address = addrs[0].get("address") if addrs else None
    gateway = None
    for r in data.get("route") or []:
        if r.get("target") == "0.0.0.0" and r.get("mask") == 0 and r.get("nexthop"):
            gateway = r["nexthop"] if r["nexthop"] != "0.0.0.0" else None
            break
    return Info(device=device, address=address, gateway=gateway)


def _has_default(data: Mapping[str, Any]) -> bool:
    return any(r.get("target") == "0.0.0.0" and r.get("mask") == 0
               for r in data.get("route") or [])


@dataclass
class NetifdView:
    """The last `network.interface dump`, by interface name."""

    interfaces: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    known: bool = False  # a dump has been read
    error: str | None = None  # why the last dump failed
    # interfaces seen as WANs (up with a default route) that netifd still has: a WAN that goes
    # down (ifdown, a lost lease, a pulled cable) stays a path, down, until netifd drops it
    wans: set[str] = field(default_factory=set)

    def update(self, dump: Mapping[str, Any]) -> None:
        items = dump.get("interface")
        if not isinstance(items, list):
            self.error = "netifd's dump has no 'interface' list"
            return
        self.interfaces = {str(i["interface"]): i for i in items
                           if isinstance(i, dict) and "interface" in i}
        self.known = True
        self.error = None
        self.wans = {n for n in self.wans if n in self.interfaces} | {
            n for n, d in self.interfaces.items()
            if isinstance(parse_status(n, d), Info) and _has_default(d)}

    def failed(self, why: str) -> None:
        self.error = why

    def lookup(self, name: str) -> Info | str:
        if not self.known:
            why = self.error or "no answer from netifd yet"
            return (f"path uses netifd interface '{name}' but netifd cannot be asked ({why}); "
                    "where there is no netifd set 'option device' instead")
        data = self.interfaces.get(name)
        if data is None:
            return f"netifd has no interface '{name}': check `ubus list network.interface.*`"
        return parse_status(name, data)

    def wan_interfaces(self) -> list[str]:
        """The WANs by name: interfaces that are up with an IPv4 default route, or were since
        bondingd started and netifd still has (down now: their paths say why)."""
        return sorted(self.wans)

    def interface_of(self, device: str) -> str | None:
        """The interface whose (l3) device is `device`, when netifd has one."""
        for name, data in self.interfaces.items():
            if device in (data.get("l3_device"), data.get("device")):
                return name
        return None
