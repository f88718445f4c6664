"""Asyncio-friendly rtnetlink subscriber: link, address and (optionally) route events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .core import NETLINK_ROUTE, NetlinkClient, NetlinkSocket, parse_messages
from .rtnl import (
    AF_INET,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    parse_addr,
    parse_link,
    parse_route,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkEvent:
    """RTM_NEWLINK / RTM_DELLINK (removed=True)."""

    index: int
    name: str
    up: bool
    carrier: bool
    removed: bool = False
    operstate: str = "UNKNOWN"
    mtu: int = 0


@dataclass(frozen=True)
class AddrEvent:
    """RTM_NEWADDR (added=True) / RTM_DELADDR."""

    index: int
    address: str
    prefixlen: int
    added: bool
    family: int = AF_INET
    ifname: str | None = None
    flags: int = 0  # IFA_F_*: an IPv6 address turns usable when DAD ends (NEWADDR again)


@dataclass(frozen=True)
class RouteEvent:
    """RTM_NEWROUTE (added=True) / RTM_DELROUTE."""

    table: int
    dst: str
    prefixlen: int
    added: bool
    family: int = AF_INET


@dataclass(frozen=True)
class Resync:
    """Events were lost (ENOBUFS overrun): re-dump the state."""


Event = LinkEvent | AddrEvent | RouteEvent | Resync


def decode_events(data: bytes) -> list[Event]:
    """Turn one rtnetlink datagram into events (other message types are skipped)."""
    out: list[Event] = []
    for msg in parse_messages(data):
        if msg.type in (RTM_NEWLINK, RTM_DELLINK):
            link = parse_link(msg)
            removed = msg.type == RTM_DELLINK
            out.append(LinkEvent(link.index, link.name, link.up and not removed,
                                 link.carrier and not removed, removed, link.operstate, link.mtu))
        elif msg.type in (RTM_NEWADDR, RTM_DELADDR):
            addr = parse_addr(msg)
            out.append(AddrEvent(addr.index, addr.address, addr.prefixlen,
                                 msg.type == RTM_NEWADDR, addr.family, addr.ifname, addr.flags))
        elif msg.type in (RTM_NEWROUTE, RTM_DELROUTE):
            route = parse_route(msg)
            out.append(RouteEvent(route.table, route.dst, route.prefixlen,
                                  msg.type == RTM_NEWROUTE, route.family))
    return out


class LinkMonitor(NetlinkClient):
    """Non-blocking rtnetlink listener; `start()` hooks it into an asyncio loop.

    The callback gets LinkEvent, AddrEvent, RouteEvent (with routes=True) and
    Resync after an overrun, after which the caller should re-dump links/addresses.
    """

    def __init__(
        self,
        callback: Callable[[Event], None],
        *,
        routes: bool = False,
        ipv6: bool = False,
        rcvbuf: int = 1 << 20,
    ) -> None:
        groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR
        if routes:
            groups |= RTMGRP_IPV4_ROUTE
        if ipv6:
            groups |= RTMGRP_IPV6_IFADDR | (RTMGRP_IPV6_ROUTE if routes else 0)
        self.callback = callback
        self.nl = NetlinkSocket(NETLINK_ROUTE, groups, nonblocking=True, rcvbuf=rcvbuf)
        self._loop: asyncio.AbstractEventLoop | None = None

    def read(self, max_datagrams: int = 64) -> list[Event]:
        """Everything readable now, at most `max_datagrams` datagrams."""
        out: list[Event] = []
        for data in self.nl.recv_ready(max_datagrams):
            if data is None:
                if not out or not isinstance(out[-1], Resync):
                    out.append(Resync())
                continue
            try:
                out.extend(decode_events(data))
            except ValueError as exc:  # malformed message: treat like a loss
                log.warning("bad rtnetlink message: %s", exc)
                out.append(Resync())
        return out

    def _ready(self) -> None:
        for event in self.read():
            try:
                self.callback(event)
            except Exception:
                log.exception("link monitor callback failed on %r", event)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self.fileno(), self._ready)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.fileno())
        self._loop = None
        self.nl.close()
