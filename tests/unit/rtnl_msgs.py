"""rtnetlink messages as the kernel sends them, built with the repo's own codec
(bonding.netlink.core / rtnl): the attributes a RTM_NEWLINK, RTM_NEWADDR or RTM_NEWROUTE of a
link dump, an address dump or a route dump carry.  Parsed back with rtnl.parse_*, they are the
Link, Addr and Route objects the daemon's parts get from bonding.netlink.rtnl.Rtnl."""

from __future__ import annotations

import socket

from bonding.netlink import core, rtnl
from bonding.netlink.core import Message
from bonding.netlink.rtnl import Nexthop

ARPHRD_ETHER = 1
OPER_DOWN, OPER_UP = 2, 6


def link(index: int, name: str, *, up: bool = True, carrier: bool = True,
         removed: bool = False) -> Message:
    """RTM_NEWLINK (RTM_DELLINK when `removed`) of an Ethernet device."""
    flags = (rtnl.IFF_UP if up else 0) | (rtnl.IFF_RUNNING | rtnl.IFF_LOWER_UP if carrier else 0)
    payload = rtnl.IFINFOMSG.pack(socket.AF_UNSPEC, ARPHRD_ETHER, index, flags, 0) + b"".join([
        core.nla_str(rtnl.IFLA_IFNAME, name),
        core.nla_u32(rtnl.IFLA_MTU, 1500),
        core.nla_u8(rtnl.IFLA_OPERSTATE, OPER_UP if carrier else OPER_DOWN),
        core.nla(rtnl.IFLA_ADDRESS, bytes([0x02, 0, 0, 0, 0, index])),
        core.nla_u8(rtnl.IFLA_CARRIER, int(carrier)),
    ])
    return Message(rtnl.RTM_DELLINK if removed else rtnl.RTM_NEWLINK, 0, 0, 0, payload)


def addr(index: int, address: str, prefixlen: int, *, label: str | None = None,
         scope: int = rtnl.RT_SCOPE_UNIVERSE, flags: int = rtnl.IFA_F_PERMANENT,
         removed: bool = False) -> Message:
    """RTM_NEWADDR (RTM_DELADDR when `removed`): IPv4 with IFA_LOCAL and IFA_LABEL, IPv6 with
    IFA_ADDRESS and IFA_FLAGS, as the kernel fills them."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    payload = rtnl.IFADDRMSG.pack(family, prefixlen, flags & 0xFF, scope, index)
    payload += core.nla(rtnl.IFA_ADDRESS, packed)
    if family == socket.AF_INET:
        payload += core.nla(rtnl.IFA_LOCAL, packed) + core.nla_str(rtnl.IFA_LABEL, label or "")
    payload += core.nla_u32(rtnl.IFA_FLAGS, flags)
    return Message(rtnl.RTM_DELADDR if removed else rtnl.RTM_NEWADDR, 0, 0, 0, payload)


def route(dst: str, prefixlen: int, hops: list[Nexthop], *, table: int = rtnl.RT_TABLE_MAIN,
          family: int | None = None, metric: int | None = None,
          protocol: int = rtnl.RTPROT_STATIC) -> Message:
    """RTM_NEWROUTE, encoded by rtnl.encode_route (the same payload the kernel dumps)."""
    return Message(rtnl.RTM_NEWROUTE, 0, 0, 0, rtnl.encode_route(
        table, dst, prefixlen, hops, metric=metric, protocol=protocol, family=family))


def datagram(*msgs: Message) -> bytes:
    return b"".join(m.encode() for m in msgs)
