"""Where each path is in the kernel: its device, ifindex, addresses and gateways per family.

`read_view` asks rtnetlink once (links, addresses, the main table's default routes, IPv4 and
IPv6); `resolve` is pure: it fills each path's runtime from that view and netifd's, and says
what the link is for each path (`LinkNews`), which the daemon feeds to the path's health.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bonding import netifd
from bonding.bondingd.runtime import PathRuntime
from bonding.netlink.core import NetlinkError
from bonding.netlink.rtnl import AF_INET, AF_INET6, Addr, Link, Route, pick_ipv6

MAIN_TABLE = 254


class Netlink(Protocol):
    """The rtnetlink reads a view needs (bonding.netlink.rtnl.Rtnl)."""

    def links(self) -> list[Link]: ...
    def addresses(self, family: int = AF_INET, index: int | None = None) -> list[Addr]: ...
    def routes(self, table: int, family: int = AF_INET) -> list[Route]: ...


@dataclass(frozen=True)
class View:
    links: dict[str, Link] = field(default_factory=dict)
    addrs: Sequence[Addr] = ()
    defaults: Sequence[Route] = ()  # main-table default routes, IPv4
    addrs6: Sequence[Addr] = ()
    defaults6: Sequence[Route] = ()


def read_view(nl: Netlink, *, ipv6: bool) -> View:
    """One read of the kernel (no IPv6 when it is off, or the kernel has none)."""
    links = {lk.name: lk for lk in nl.links()}
    addrs = nl.addresses()
    defaults = [r for r in nl.routes(MAIN_TABLE) if r.dst == "default"]
    addrs6: list[Addr] = []
    defaults6: list[Route] = []
    if ipv6:
        try:
            addrs6 = nl.addresses(AF_INET6)
            defaults6 = [r for r in nl.routes(MAIN_TABLE, AF_INET6) if r.dst == "default"]
        except NetlinkError as e:
            if e.errno != errno.EAFNOSUPPORT:  # a kernel without IPv6 is not an error
                raise
    return View(links, addrs, defaults, addrs6, defaults6)


@dataclass(frozen=True)
class LinkNews:
    """What a path's link is now: gone (`error` says why), or there with these flags."""

    error: str | None = None
    up: bool = False
    carrier: bool = False


def gateway_of(defaults: Iterable[Route], ifindex: int) -> str | None:
    """The gateway of a default route (main table) through this device, if any."""
    return next((n.gateway for r in defaults for n in r.nexthops
                 if n.ifindex == ifindex and n.gateway), None)


def resolve(paths: Iterable[PathRuntime], view: View,
            lookup: Callable[[str], netifd.Info | str]) -> list[tuple[PathRuntime, LinkNews]]:
    """Fill every path's device, ifindex, addresses and gateways; what each link is now."""
    return [(rt, resolve_one(rt, view, lookup)) for rt in paths]


def resolve_one(rt: PathRuntime, view: View,
                lookup: Callable[[str], netifd.Info | str]) -> LinkNews:
    info = netifd.Info(device=rt.cfg.device)
    if rt.cfg.interface and not rt.cfg.device:
        got = lookup(rt.cfg.interface)
        if isinstance(got, str):
            rt.device = rt.ifindex = rt.v4.address = rt.v6.address = None
            rt.resolve_error = got
            return LinkNews(got)
        info = got
    rt.resolve_error = None
    rt.device = info.device
    link = view.links.get(info.device or "")
    if link is None:
        rt.ifindex = rt.v4.address = rt.v6.address = None
        rt.resolve_error = f"device {info.device} does not exist"
        return LinkNews(rt.resolve_error)
    rt.ifindex = link.index
    own = [a.address for a in view.addrs if a.index == link.index and a.scope == 0]
    rt.v4.address = info.address if info.address in own else (own[0] if own else None)
    rt.v4.gateway = rt.cfg.gateway or info.gateway or gateway_of(view.defaults, link.index)
    rt.v6.address = pick_ipv6([a for a in view.addrs6 if a.index == link.index],
                              rt.v6.address)
    rt.v6.gateway = rt.cfg.gateway6 or gateway_of(view.defaults6, link.index)
    return LinkNews(up=link.up, carrier=link.carrier)
