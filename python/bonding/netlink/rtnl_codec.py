# ruff: noqa: F405 (the names come from the star imports of rtnl_consts and rtnl_codec)
"""NETLINK_ROUTE messages as data: links, addresses, routes and rules, parsed and encoded."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .core import Attrs, Message, nl_align, nla, nla_nest, nla_str, nla_u32
from .rtnl_consts import *  # noqa: F403
from .rtnl_consts import _GLOBAL_UNICAST6, _IFA_UNUSABLE, _NO_CARRIER_STATES

# --- data -------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A network interface."""

    index: int
    name: str
    up: bool  # IFF_UP (administratively up)
    carrier: bool  # IFF_LOWER_UP, and not DORMANT or NOTPRESENT (rtnl_consts)
    mtu: int
    kind: str | None  # IFLA_INFO_KIND ("veth", "wireguard", ...) or None
    operstate: str
    mac: str | None


@dataclass(frozen=True)
class Addr:
    """An interface address."""

    index: int
    ifname: str | None  # IFA_LABEL (IPv4 only)
    address: str
    prefixlen: int
    scope: int
    family: int = AF_INET
    flags: int = 0  # IFA_F_* (IFA_FLAGS when the kernel sends it, else ifa_flags)

    @property
    def usable(self) -> bool:
        """Global scope, and neither tentative, deprecated nor failed DAD."""
        return self.scope == RT_SCOPE_UNIVERSE and not self.flags & _IFA_UNUSABLE


@dataclass(frozen=True)
class Nexthop:
    """One hop of a route; weight 1..256 (multipath only)."""

    gateway: str | None
    ifindex: int
    weight: int = 1
    flags: int = 0  # RTNH_F_* as reported by the kernel; ignored when sending


@dataclass(frozen=True)
class Route:
    """A route as read back from a table."""

    table: int
    dst: str  # "default" or the network address
    prefixlen: int
    nexthops: tuple[Nexthop, ...]
    metric: int | None
    protocol: int
    scope: int
    type: int
    prefsrc: str | None = None
    family: int = AF_INET
    tos: int = 0
    congctl: str | None = None  # RTAX_CC_ALGO


@dataclass(frozen=True)
class Rule:
    """A policy routing rule."""

    priority: int
    table: int
    family: int = AF_INET
    src: str | None = None
    src_len: int = 0
    dst: str | None = None
    dst_len: int = 0
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    suppress_prefixlength: int | None = None
    action: int = FR_ACT_TO_TBL
    protocol: int = 0


# --- helpers ----------------------------------------------------------------


def family_of(address: str) -> int:
    return AF_INET6 if ":" in address else AF_INET


def pack_addr(address: str, family: int | None = None) -> bytes:
    ip = ipaddress.ip_address(address)
    fam = AF_INET6 if ip.version == 6 else AF_INET
    if family is not None and fam != family:
        raise ValueError(f"{address} is not of address family {family}")
    return ip.packed


def unpack_addr(data: bytes) -> str:
    if len(data) == 4:
        return str(ipaddress.IPv4Address(data))
    if len(data) == 16:
        return str(ipaddress.IPv6Address(data))
    raise ValueError(f"address of {len(data)} bytes")


def _mac(data: bytes | None) -> str | None:
    if data is None or len(data) != 6:
        return None
    return ":".join(f"{b:02x}" for b in data)


def _split(msg: Message, hdr: struct.Struct) -> tuple[tuple[int, ...], Attrs]:
    if len(msg.payload) < hdr.size:
        raise ValueError(f"message type {msg.type} shorter than its header")
    return hdr.unpack_from(msg.payload), Attrs(msg.payload[nl_align(hdr.size) :])


def parse_link(msg: Message) -> Link:
    (_fam, _type, index, flags, _change), attrs = _split(msg, IFINFOMSG)
    oper_no = attrs.u8(IFLA_OPERSTATE)
    operstate = OPERSTATES[oper_no] if oper_no is not None and oper_no < len(OPERSTATES) else (
        "UNKNOWN")
    info = attrs.nested(IFLA_LINKINFO)
    kind = info.str(IFLA_INFO_KIND) if info is not None else None
    lower_up = bool(flags & IFF_LOWER_UP)
    return Link(
        index=index,
        name=attrs.str(IFLA_IFNAME) or "",
        up=bool(flags & IFF_UP),
        carrier=lower_up and operstate not in _NO_CARRIER_STATES,
        mtu=attrs.u32(IFLA_MTU) or 0,
        kind=kind,
        operstate=operstate,
        mac=_mac(attrs.raw(IFLA_ADDRESS)),
    )


def parse_addr(msg: Message) -> Addr:
    (family, prefixlen, flags8, scope, index), attrs = _split(msg, IFADDRMSG)
    raw = attrs.raw(IFA_LOCAL) or attrs.raw(IFA_ADDRESS)
    if raw is None:
        raise ValueError("address message without an address")
    flags = attrs.u32(IFA_FLAGS)
    return Addr(index, attrs.str(IFA_LABEL), unpack_addr(raw), prefixlen, scope, family,
                flags8 if flags is None else flags)


def pick_ipv6(addrs: Sequence[Addr], current: str | None = None) -> str | None:
    """The IPv6 address a path uses, among its device's addresses.

    Only usable global unicast addresses count (not link-local, ULA, tentative, deprecated or
    failed DAD: none of them reaches a server on the internet).  The current one is kept while
    it stays usable (an endpoint is not moved for nothing); otherwise a stable address before a
    privacy (temporary) one, then the first as the kernel lists them.
    """
    good = [a for a in addrs if a.family == AF_INET6 and a.usable
            and ipaddress.IPv6Address(a.address) in _GLOBAL_UNICAST6]
    if current is not None and any(a.address == current for a in good):
        return current
    good.sort(key=lambda a: bool(a.flags & IFA_F_TEMPORARY))
    return good[0].address if good else None



def parse_multipath(data: bytes) -> tuple[Nexthop, ...]:
    hops: list[Nexthop] = []
    pos = 0
    while pos + RTNEXTHOP.size <= len(data):
        length, flags, hops_minus1, ifindex = RTNEXTHOP.unpack_from(data, pos)
        if length < RTNEXTHOP.size or pos + length > len(data):
            raise ValueError(f"bad rtnexthop length {length}")
        sub = Attrs(data[pos + RTNEXTHOP.size : pos + length])
        gw = sub.raw(RTA_GATEWAY)
        hops.append(Nexthop(unpack_addr(gw) if gw else None, ifindex, hops_minus1 + 1, flags))
        pos += nl_align(length)
    return tuple(hops)


def parse_route(msg: Message) -> Route:
    fields, attrs = _split(msg, RTMSG)
    family, dst_len, _src_len, tos, table8, protocol, scope, rtype, rtm_flags = fields
    table = attrs.u32(RTA_TABLE)
    dst_raw = attrs.raw(RTA_DST)
    mp = attrs.raw(RTA_MULTIPATH)
    if mp is not None:
        nexthops = parse_multipath(mp)
    else:
        gw = attrs.raw(RTA_GATEWAY)
        oif = attrs.u32(RTA_OIF)
        if gw is None and oif is None:
            nexthops = ()
        else:
            nexthops = (Nexthop(unpack_addr(gw) if gw else None, oif or 0, 1, rtm_flags & 0xFF),)
    prefsrc = attrs.raw(RTA_PREFSRC)
    metrics = attrs.nested(RTA_METRICS)
    congctl = metrics.str(RTAX_CC_ALGO) if metrics is not None else None
    return Route(
        table=table if table is not None else table8,
        dst=unpack_addr(dst_raw) if dst_raw else "default",
        prefixlen=dst_len,
        nexthops=nexthops,
        metric=attrs.u32(RTA_PRIORITY),
        protocol=protocol,
        scope=scope,
        type=rtype,
        prefsrc=unpack_addr(prefsrc) if prefsrc else None,
        family=family,
        tos=tos,
        congctl=congctl or None,
    )


def parse_rule(msg: Message) -> Rule:
    fields, attrs = _split(msg, FIB_RULE_HDR)
    family, dst_len, src_len, _tos, table8, _r1, _r2, action, _flags = fields
    table = attrs.u32(FRA_TABLE)
    src = attrs.raw(FRA_SRC)
    dst = attrs.raw(FRA_DST)
    fwmark = attrs.u32(FRA_FWMARK)
    fwmask = attrs.u32(FRA_FWMASK) if FRA_FWMASK in attrs else 0xFFFFFFFF
    suppress = attrs.u32(FRA_SUPPRESS_PREFIXLEN)  # 0xFFFFFFFF (-1) means unset
    return Rule(
        priority=attrs.u32(FRA_PRIORITY) or 0,
        table=table if table is not None else table8,
        family=family,
        src=unpack_addr(src) if src else None,
        src_len=src_len,
        dst=unpack_addr(dst) if dst else None,
        dst_len=dst_len,
        iif=attrs.str(FRA_IIFNAME),
        oif=attrs.str(FRA_OIFNAME),
        fwmark=fwmark,
        fwmask=None if fwmark is None else fwmask,
        suppress_prefixlength=None if suppress in (None, 0xFFFFFFFF) else suppress,
        action=action,
        protocol=attrs.u8(FRA_PROTOCOL) or 0,
    )


def encode_route(
    table: int,
    dst: str,
    prefixlen: int,
    nexthops: Sequence[Nexthop],
    *,
    metric: int | None = None,
    protocol: int = RTPROT_STATIC,
    rtype: int = RTN_UNICAST,
    prefsrc: str | None = None,
    family: int | None = None,
    scope: int | None = None,
    congctl: str | None = None,
    tos: int = 0,
) -> bytes:
    """Build the RTM_NEWROUTE/RTM_DELROUTE payload (rtmsg + attributes).

    `congctl`: the TCP congestion control of connections using the route (RTAX_CC_ALGO).
    `tos`: the route matches only packets of this TOS (0: all).
    """
    if family is None:
        probe = dst if dst != "default" else next(
            (h.gateway for h in nexthops if h.gateway), prefsrc or "0.0.0.0")
        family = family_of(probe)
    maxlen = 32 if family == AF_INET else 128
    if not 0 <= prefixlen <= maxlen or (dst == "default" and prefixlen != 0):
        raise ValueError(f"bad prefix length {prefixlen} for {dst}")
    if not 0 < table < 2**32:
        raise ValueError(f"bad table {table}")
    if rtype == RTN_UNICAST and not nexthops:
        raise ValueError("a unicast route needs at least one nexthop")
    if scope is None:
        one_hop_no_gw = len(nexthops) == 1 and nexthops[0].gateway is None
        if rtype == RTN_LOCAL:
            scope = RT_SCOPE_HOST
        elif rtype == RTN_UNICAST and one_hop_no_gw:
            scope = RT_SCOPE_LINK
        else:
            scope = RT_SCOPE_UNIVERSE
    hdr, attrs = _route_head(table, dst, prefixlen, metric, family, tos, protocol, scope, rtype)
    if prefsrc is not None:
        attrs.append(nla(RTA_PREFSRC, pack_addr(prefsrc, family)))
    if congctl:
        attrs.append(nla_nest(RTA_METRICS, [nla_str(RTAX_CC_ALGO, congctl)]))
    if len(nexthops) == 1:
        hop = nexthops[0]
        if hop.gateway is not None:
            attrs.append(nla(RTA_GATEWAY, pack_addr(hop.gateway, family)))
        if hop.ifindex:
            attrs.append(nla_u32(RTA_OIF, hop.ifindex))
    elif nexthops:
        attrs.append(nla(RTA_MULTIPATH, encode_multipath(nexthops, family)))
    return hdr + b"".join(attrs)


def encode_multipath(nexthops: Sequence[Nexthop], family: int) -> bytes:
    """RTA_MULTIPATH payload: rtnexthop entries, weight-1 in rtnh_hops."""
    out = b""
    for hop in nexthops:
        if not 1 <= hop.weight <= 256:
            raise ValueError(f"nexthop weight {hop.weight} outside 1..256")
        sub = nla(RTA_GATEWAY, pack_addr(hop.gateway, family)) if hop.gateway else b""
        length = RTNEXTHOP.size + len(sub)
        out += RTNEXTHOP.pack(length, 0, hop.weight - 1, hop.ifindex) + sub
        out += b"\0" * (nl_align(length) - length)
    return out


def encode_rule(
    priority: int,
    table: int,
    *,
    family: int = AF_INET,
    src: str | None = None,
    src_len: int | None = None,
    dst: str | None = None,
    dst_len: int | None = None,
    iif: str | None = None,
    oif: str | None = None,
    fwmark: int | None = None,
    fwmask: int | None = None,
    suppress_prefixlength: int | None = None,
    protocol: int | None = None,
) -> bytes:
    """Build the RTM_NEWRULE/RTM_DELRULE payload (fib_rule_hdr + attributes)."""
    if src is not None:
        family = family_of(src)
    elif dst is not None:
        family = family_of(dst)
    maxlen = 32 if family == AF_INET else 128
    s_len = (maxlen if src_len is None else src_len) if src is not None else 0
    d_len = (maxlen if dst_len is None else dst_len) if dst is not None else 0
    if not (0 <= s_len <= maxlen and 0 <= d_len <= maxlen):
        raise ValueError("bad rule prefix length")
    hdr = FIB_RULE_HDR.pack(family, d_len, s_len, 0, table if table < 256 else RT_TABLE_UNSPEC,
                            0, 0, FR_ACT_TO_TBL, 0)
    attrs = [nla_u32(FRA_PRIORITY, priority), nla_u32(FRA_TABLE, table)]
    if src is not None:
        attrs.append(nla(FRA_SRC, pack_addr(src, family)))
    if dst is not None:
        attrs.append(nla(FRA_DST, pack_addr(dst, family)))
    if iif is not None:
        attrs.append(nla_str(FRA_IIFNAME, iif))
    if oif is not None:
        attrs.append(nla_str(FRA_OIFNAME, oif))
    if fwmark is not None:
        attrs.append(nla_u32(FRA_FWMARK, fwmark))
        if fwmask is not None:
            attrs.append(nla_u32(FRA_FWMASK, fwmask))
    if suppress_prefixlength is not None:
        attrs.append(nla_u32(FRA_SUPPRESS_PREFIXLEN, suppress_prefixlength))
    if protocol is not None:
        attrs.append(nla(FRA_PROTOCOL, bytes([protocol])))
    return hdr + b"".join(attrs)



def _delroute_payload(
    table: int, dst: str, prefixlen: int, metric: int | None, family: int, tos: int
) -> bytes:
    hdr, attrs = _route_head(table, dst, prefixlen, metric, family, tos, RTPROT_UNSPEC,
                             RT_SCOPE_NOWHERE, RTN_UNSPEC)
    return hdr + b"".join(attrs)


def _route_head(table: int, dst: str, prefixlen: int, metric: int | None, family: int,
                tos: int, protocol: int, scope: int, rtype: int) -> tuple[bytes, list[bytes]]:
    """A route's rtmsg and the attributes that name it: table, destination, metric."""
    hdr = RTMSG.pack(family, prefixlen, 0, tos, table if table < 256 else RT_TABLE_UNSPEC,
                     protocol, scope, rtype, 0)
    attrs = [nla_u32(RTA_TABLE, table)]
    if dst != "default":
        attrs.append(nla(RTA_DST, pack_addr(dst, family)))
    if metric is not None:
        attrs.append(nla_u32(RTA_PRIORITY, metric))
    return hdr, attrs
