"""A small standard-library netlink client: rtnetlink, MPTCP path manager, monitors."""

from .core import NetlinkError, NetlinkSocket
from .monitor import AddrEvent, Event, LinkEvent, LinkMonitor, Resync, RouteEvent
from .mptcp import (
    Endpoint,
    EndpointFlag,
    EventsLost,
    Limits,
    MptcpEvent,
    MptcpEventReader,
    MptcpPM,
)
from .rtnl import Addr, Link, Nexthop, Route, Rtnl, Rule

__all__ = [
    "Addr",
    "AddrEvent",
    "Endpoint",
    "EndpointFlag",
    "Event",
    "EventsLost",
    "Limits",
    "Link",
    "LinkEvent",
    "LinkMonitor",
    "MptcpEvent",
    "MptcpEventReader",
    "MptcpPM",
    "NetlinkError",
    "NetlinkSocket",
    "Nexthop",
    "Resync",
    "Route",
    "RouteEvent",
    "Rtnl",
    "Rule",
]
