"""Netlink codec: attribute/message encoding, known byte strings, request loop (no root)."""

from __future__ import annotations

import errno
import socket
import struct
import sys
from typing import Any

import pytest

from bonding.netlink import core, monitor, mptcp, rtnl
from bonding.netlink.core import (
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    Attrs,
    Message,
    NetlinkError,
    NetlinkSocket,
)
from bonding.netlink.mptcp import EndpointFlag
from bonding.netlink.rtnl import Nexthop

little_endian_only = pytest.mark.skipif(
    sys.byteorder != "little", reason="literal byte strings are written for little-endian hosts"
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# --- attributes ---------------------------------------------------------------


def test_nla_alignment_and_padding() -> None:
    assert core.nla_u8(2, 5) == h("0500 0200 05 000000")  # len 5, padded to 8
    assert core.nla_u16(1, 2) == h("0600 0100 0200 0000")
    assert core.nla_str(3, "eth0") == h("0900 0300") + b"eth0\0" + b"\0\0\0"
    assert len(core.nla(1, b"")) == 4
    for n in range(0, 9):
        assert len(core.nla(1, b"x" * n)) % 4 == 0


def test_nest_sets_flag_and_decodes() -> None:
    nest = core.nla_nest(1, [core.nla_u8(2, 7), core.nla_u32(6, 0xDEADBEEF)])
    length, typ = struct.unpack_from("=HH", nest)
    assert typ == 1 | NLA_F_NESTED
    assert length == 4 + 8 + 8 == len(nest)
    outer = Attrs(nest)
    assert 1 in outer  # flag bits are masked off
    inner = outer.nested(1)
    assert inner is not None
    assert inner.u8(2) == 7
    assert inner.u32(6) == 0xDEADBEEF
    assert inner.u32(99) is None


def test_attr_round_trip_values() -> None:
    data = b"".join([
        core.nla_u16(1, 0xBEEF), core.nla_be16(2, 0x1234), core.nla_s32(3, -5),
        core.nla_str(4, "hello"), core.nla_u8(5, 255),
    ])
    a = Attrs(data)
    assert (a.u16(1), a.be16(2), a.s32(3), a.str(4), a.u8(5)) == (0xBEEF, 0x1234, -5, "hello", 255)
    assert a.raw(2) == b"\x12\x34"  # be16 is network order on every host


def test_truncated_attributes_rejected() -> None:
    with pytest.raises(ValueError):
        list(core.iter_attrs(struct.pack("=HH", 40, 1) + b"\0" * 4))  # claims more than there is
    with pytest.raises(ValueError):
        list(core.iter_attrs(struct.pack("=HH", 2, 1) + b"\0" * 4))  # shorter than a header
    with pytest.raises(ValueError):
        Attrs(core.nla(1, b"\x01")).u32(1)  # one byte where a u32 is expected


def test_messages_split_and_encode() -> None:
    m1 = Message(16, NLM_F_MULTI, 7, 99, b"\x01\x02\x03")
    m2 = Message(NLMSG_DONE, NLM_F_MULTI, 7, 99, struct.pack("=i", 0))
    data = m1.encode() + m2.encode()
    assert len(m1.encode()) == 20  # 16 + 3 padded
    assert struct.unpack_from("=I", data)[0] == 19  # nlmsg_len excludes the padding
    out = core.parse_messages(data)
    assert out == [m1, m2]
    with pytest.raises(ValueError):
        core.parse_messages(data[:-4])


def test_error_with_extack_message() -> None:
    orig = struct.pack("=IHHII", 40, 24, 0x505, 12, 0)
    tlv = core.nla_str(core.NLMSGERR_ATTR_MSG, "Nexthop has invalid gateway")
    flags = core.NLM_F_CAPPED | core.NLM_F_ACK_TLVS
    msg = Message(NLMSG_ERROR, flags, 12, 1, struct.pack("=i", -errno.EINVAL) + orig + tlv)
    assert core.parse_error(msg) == (errno.EINVAL, "Nexthop has invalid gateway")
    ack = Message(NLMSG_ERROR, core.NLM_F_CAPPED, 12, 1, struct.pack("=i", 0) + orig)
    assert core.parse_error(ack) == (0, None)


def test_netlink_error_is_oserror() -> None:
    err = NetlinkError(errno.EEXIST, "add rule 100", "exists")
    assert isinstance(err, OSError)
    assert err.errno == errno.EEXIST
    assert err.operation == "add rule 100"
    assert "add rule 100" in str(err) and "exists" in str(err)


# --- known byte strings -------------------------------------------------------

# RTM_NEWROUTE, table 1000, default via 192.0.2.2 dev #3 weight 1 and
# 198.51.100.2 dev #2 weight 3, proto static; built by hand from rtnetlink.h.
MULTIPATH_ROUTE = h(
    # nlmsghdr: len 72, type 24 RTM_NEWROUTE, flags REQUEST|ACK|REPLACE|CREATE, seq 0x11, pid 0
    "48000000 1800 0505 11000000 00000000"
    # rtmsg: AF_INET, dst_len 0, src_len 0, tos 0, table 0 (>255 -> RTA_TABLE),
    # proto 4 static, scope 0 universe, type 1 unicast, flags 0
    "02 00 00 00 00 04 00 01 00000000"
    # RTA_TABLE (15) u32 1000
    "0800 0f00 e8030000"
    # RTA_MULTIPATH (9), 36 bytes
    "2400 0900"
    # rtnexthop len 16, flags 0, hops 0 (weight 1), ifindex 3; RTA_GATEWAY 192.0.2.2
    "1000 00 00 03000000 0800 0500 c0000202"
    # rtnexthop len 16, flags 0, hops 2 (weight 3), ifindex 2; RTA_GATEWAY 198.51.100.2
    "1000 00 02 02000000 0800 0500 c6336402"
)


@little_endian_only
def test_multipath_route_bytes() -> None:
    payload = rtnl.encode_route(
        1000, "default", 0, [Nexthop("192.0.2.2", 3, 1), Nexthop("198.51.100.2", 2, 3)]
    )
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | NLM_F_CREATE
    assert Message(rtnl.RTM_NEWROUTE, flags, 0x11, 0, payload).encode() == MULTIPATH_ROUTE


def test_multipath_route_decodes() -> None:
    (msg,) = core.parse_messages(MULTIPATH_ROUTE)
    route = rtnl.parse_route(msg)
    assert route.table == 1000
    assert route.dst == "default" and route.prefixlen == 0
    assert route.protocol == rtnl.RTPROT_STATIC
    assert [(n.gateway, n.ifindex, n.weight) for n in route.nexthops] == [
        ("192.0.2.2", 3, 1), ("198.51.100.2", 2, 3)]


def test_single_hop_route_round_trip() -> None:
    payload = rtnl.encode_route(100, "203.0.113.0", 24, [Nexthop("192.0.2.2", 4)], metric=7,
                                protocol=200, prefsrc="192.0.2.1")
    route = rtnl.parse_route(Message(rtnl.RTM_NEWROUTE, 0, 0, 0, payload))
    assert route == rtnl.Route(table=100, dst="203.0.113.0", prefixlen=24,
                               nexthops=(Nexthop("192.0.2.2", 4),), metric=7, protocol=200,
                               scope=rtnl.RT_SCOPE_UNIVERSE, type=rtnl.RTN_UNICAST,
                               prefsrc="192.0.2.1")
    dev_only = rtnl.encode_route(5, "default", 0, [Nexthop(None, 9)])
    assert dev_only[6] == rtnl.RT_SCOPE_LINK  # a route without gateway is scope link
    tos = rtnl.encode_route(254, "default", 0, [Nexthop(None, 1)], tos=0x1C)
    assert tos[3] == 0x1C and dev_only[3] == 0  # rtm_tos: only packets of that TOS match
    assert rtnl.parse_route(Message(rtnl.RTM_NEWROUTE, 0, 0, 0, tos)).tos == 0x1C
    v6 = rtnl.encode_route(300, "2001:db8::", 32, [Nexthop("fe80::1", 2), Nexthop("fe80::2", 3)])
    r6 = rtnl.parse_route(Message(rtnl.RTM_NEWROUTE, 0, 0, 0, v6))
    assert r6.family == socket.AF_INET6 and r6.dst == "2001:db8::" and len(r6.nexthops) == 2


def test_route_validation() -> None:
    with pytest.raises(ValueError):
        rtnl.encode_route(100, "default", 0, [Nexthop("192.0.2.2", 1, 0), Nexthop("192.0.2.3", 1)])
    with pytest.raises(ValueError):
        rtnl.encode_route(100, "192.0.2.0", 33, [Nexthop("192.0.2.2", 1)])
    with pytest.raises(ValueError):
        rtnl.encode_route(0, "default", 0, [Nexthop("192.0.2.2", 1)])
    with pytest.raises(ValueError):
        rtnl.encode_route(100, "192.0.2.0", 24, [Nexthop("2001:db8::1", 1)])


# MPTCP_PM_CMD_ADD_ADDR 192.0.2.1 id 5 port 1234 flags signal|backup dev #3, family id 0x1c,
# built by hand from mptcp_pm.yaml / pm_netlink.c. PORT is host order (the YNL spec said
# big-endian until 2024; pm_netlink.c does htons(nla_get_u16())), ADDR4 network order,
# IF_IDX s32, ID u8 (padded to 8).
MPTCP_ADD_ADDR = h(
    # nlmsghdr: len 72, type 0x1c, flags REQUEST|ACK, seq 0x22, pid 0
    "48000000 1c00 0500 22000000 00000000"
    # genlmsghdr: cmd 1 ADD_ADDR, version 1, reserved
    "01 01 0000"
    # MPTCP_PM_ENDPOINT_ADDR (1) | NLA_F_NESTED, len 4 + 6 * 8 = 52
    "3400 0180"
    "0600 0100 0200 0000"  # FAMILY u16 AF_INET
    "0800 0300 c0000201"  # ADDR4 192.0.2.1 (network order)
    "0500 0200 05 000000"  # ID u8 5
    "0600 0500 d204 0000"  # PORT u16 1234, host order
    "0800 0600 05000000"  # FLAGS u32 signal|backup
    "0800 0700 03000000"  # IF_IDX s32 3
)


@little_endian_only
def test_mptcp_add_addr_bytes() -> None:
    nest = mptcp.encode_address(address="192.0.2.1", id=5, port=1234,
                                flags=int(EndpointFlag.SIGNAL | EndpointFlag.BACKUP), ifindex=3)
    payload = core.genl_payload(mptcp.MPTCP_PM_CMD_ADD_ADDR, 1, [nest])
    assert Message(0x1C, NLM_F_REQUEST | NLM_F_ACK, 0x22, 0, payload).encode() == MPTCP_ADD_ADDR


def test_mptcp_endpoint_decode_and_byte_order() -> None:
    (msg,) = core.parse_messages(MPTCP_ADD_ADDR)
    _cmd, attrs = core.genl_split(msg)
    ep = mptcp.parse_endpoint(attrs)
    assert ep == mptcp.Endpoint(id=5, address="192.0.2.1", port=1234,
                                flags=EndpointFlag.SIGNAL | EndpointFlag.BACKUP, ifindex=3)
    nest = attrs.nested(mptcp.MPTCP_PM_ATTR_ADDR)
    assert nest is not None
    assert nest.raw(mptcp.MPTCP_PM_ADDR_ATTR_ADDR4) == socket.inet_aton("192.0.2.1")
    assert nest.raw(mptcp.MPTCP_PM_ADDR_ATTR_PORT) == struct.pack("=H", 1234)
    v6 = mptcp.encode_address(address="2001:db8::1", flags=2)
    ep6 = mptcp.parse_endpoint(Attrs(v6))
    assert (ep6.address, ep6.family, ep6.ifindex, ep6.port) == ("2001:db8::1", 10, None, 0)


def test_mptcp_flags() -> None:
    assert mptcp.flags_from_names({"subflow", "backup"}) == EndpointFlag.SUBFLOW | 4
    assert mptcp.flag_names(0b1011) == {"signal", "subflow", "fullmesh"}
    assert EndpointFlag(1 << 9) & (1 << 9)  # unknown future bits are kept
    with pytest.raises(ValueError):
        mptcp.encode_address(id=0)
    with pytest.raises(KeyError):
        mptcp.flags_from_names({"bogus"})


def test_mptcp_event_decode() -> None:
    attrs = b"".join([
        core.nla_u32(mptcp.MPTCP_ATTR_TOKEN, 0xCAFE),
        core.nla_u16(mptcp.MPTCP_ATTR_FAMILY, socket.AF_INET),
        core.nla(mptcp.MPTCP_ATTR_SADDR4, socket.inet_aton("192.0.2.1")),
        core.nla(mptcp.MPTCP_ATTR_DADDR4, socket.inet_aton("203.0.113.9")),
        core.nla(mptcp.MPTCP_ATTR_SPORT, b"\x9c\x40"),  # 40000, big-endian on the wire
        core.nla(mptcp.MPTCP_ATTR_DPORT, b"\x01\xbb"),  # 443
        core.nla_u8(mptcp.MPTCP_ATTR_LOC_ID, 2),
        core.nla_u8(mptcp.MPTCP_ATTR_REM_ID, 0),
        core.nla_u8(mptcp.MPTCP_ATTR_BACKUP, 1),
        core.nla_s32(mptcp.MPTCP_ATTR_IF_IDX, 4),
    ])
    msg = Message(0x1C, 0, 0, 0, core.genl_payload(10, 1, [attrs]))
    ev = mptcp.parse_event(msg)
    assert ev == mptcp.MptcpEvent(type=10, name="sub_established", token=0xCAFE, family=2,
                                  saddr="192.0.2.1", daddr="203.0.113.9", sport=40000,
                                  dport=443, loc_id=2, rem_id=0, backup=True, ifindex=4)


def test_family_reply_parse() -> None:
    grp = core.nla_nest(1, [core.nla_str(core.CTRL_ATTR_MCAST_GRP_NAME, "mptcp_pm_events"),
                            core.nla_u32(core.CTRL_ATTR_MCAST_GRP_ID, 9)])
    attrs = b"".join([core.nla_u16(core.CTRL_ATTR_FAMILY_ID, 28),
                      core.nla_str(core.CTRL_ATTR_FAMILY_NAME, "mptcp_pm"),
                      core.nla_u32(core.CTRL_ATTR_VERSION, 1),
                      core.nla_nest(core.CTRL_ATTR_MCAST_GROUPS, [grp])])
    fam = core.parse_family(Attrs(attrs))
    assert fam == core.GenlFamily("mptcp_pm", 28, 1, {"mptcp_pm_events": 9})


# --- links, addresses, rules, events ------------------------------------------


def link_msg(msg_type: int, index: int, name: str, flags: int, oper: int) -> Message:
    payload = rtnl.IFINFOMSG.pack(0, 1, index, flags, 0) + b"".join([
        core.nla_str(rtnl.IFLA_IFNAME, name), core.nla_u32(rtnl.IFLA_MTU, 1500),
        core.nla_u8(rtnl.IFLA_OPERSTATE, oper),
        core.nla_nest(rtnl.IFLA_LINKINFO, [core.nla_str(rtnl.IFLA_INFO_KIND, "veth")]),
    ])
    return Message(msg_type, 0, 0, 0, payload)


def test_link_parse_carrier() -> None:
    up = rtnl.IFF_UP | rtnl.IFF_RUNNING | rtnl.IFF_LOWER_UP
    link = rtnl.parse_link(link_msg(rtnl.RTM_NEWLINK, 3, "wan1", up, 6))
    assert link == rtnl.Link(3, "wan1", True, True, 1500, "veth", "UP", None)
    no_carrier = rtnl.parse_link(link_msg(rtnl.RTM_NEWLINK, 3, "wan1", rtnl.IFF_UP, 3))
    assert (no_carrier.up, no_carrier.carrier, no_carrier.operstate) == (
        True, False, "LOWERLAYERDOWN")
    dormant = rtnl.parse_link(link_msg(rtnl.RTM_NEWLINK, 3, "wan1", up, 5))
    assert not dormant.carrier
    # the carrier back (IFF_LOWER_UP) before linkwatch has updated the operstate: a carrier
    for stale in (2, 3):  # DOWN, LOWERLAYERDOWN
        came_up = rtnl.parse_link(link_msg(rtnl.RTM_NEWLINK, 3, "wan1",
                                           rtnl.IFF_UP | rtnl.IFF_LOWER_UP, stale))
        assert came_up.carrier, came_up.operstate


def test_rule_round_trip() -> None:
    payload = rtnl.encode_rule(100, 1000, src="192.0.2.1", src_len=32, iif="lo", fwmark=0x10,
                               fwmask=0xF0, suppress_prefixlength=0)
    assert payload[4] == 0  # table > 255 goes in FRA_TABLE only
    rule = rtnl.parse_rule(Message(rtnl.RTM_NEWRULE, 0, 0, 0, payload))
    assert rule == rtnl.Rule(priority=100, table=1000, src="192.0.2.1", src_len=32, iif="lo",
                             fwmark=0x10, fwmask=0xF0, suppress_prefixlength=0)
    unset = rtnl.encode_rule(5, 254) + core.nla_u32(rtnl.FRA_SUPPRESS_PREFIXLEN, 0xFFFFFFFF)
    assert rtnl.parse_rule(Message(rtnl.RTM_NEWRULE, 0, 0, 0, unset)).suppress_prefixlength is None
    host = rtnl.parse_rule(Message(0, 0, 0, 0, rtnl.encode_rule(7, 7, src="198.51.100.4")))
    assert host.src_len == 32


def test_monitor_decode_events() -> None:
    addr = rtnl.IFADDRMSG.pack(socket.AF_INET, 24, 0, 0, 3) + core.nla(
        rtnl.IFA_LOCAL, socket.inet_aton("192.0.2.1")) + core.nla(
        rtnl.IFA_ADDRESS, socket.inet_aton("192.0.2.1"))
    data = (link_msg(rtnl.RTM_NEWLINK, 3, "wan1", rtnl.IFF_UP, 2).encode()
            + link_msg(rtnl.RTM_DELLINK, 4, "wan2", rtnl.IFF_UP | rtnl.IFF_LOWER_UP, 6).encode()
            + Message(rtnl.RTM_DELADDR, 0, 0, 0, addr).encode()
            + Message(rtnl.RTM_NEWRULE, 0, 0, 0, rtnl.encode_rule(1, 2)).encode())
    events = monitor.decode_events(data)
    assert events == [
        monitor.LinkEvent(3, "wan1", True, False, False, "DOWN", 1500),
        monitor.LinkEvent(4, "wan2", False, False, True, "UP", 1500),
        monitor.AddrEvent(3, "192.0.2.1", 24, False),
    ]


# --- IPv6: known byte strings, addresses, rules ------------------------------

# RTM_NEWROUTE table 200, 2001:db8:203::10/128 via fe80::1 dev #3 weight 1 and fe80::2 dev #4
# weight 2, proto 200 (the server route over two paths' IPv6), built by hand from rtnetlink.h.
MULTIPATH_ROUTE6 = h(
    # nlmsghdr: len 116, type 24 RTM_NEWROUTE, flags REQUEST|ACK|REPLACE|CREATE, seq 0x33, pid 0
    "74000000 1800 0505 33000000 00000000"
    # rtmsg: AF_INET6, dst_len 128, src_len 0, tos 0, table 200, proto 200, scope universe,
    # type unicast, flags 0
    "0a 80 00 00 c8 c8 00 01 00000000"
    "0800 0f00 c8000000"  # RTA_TABLE u32 200
    "1400 0100 20010db8 02030000 00000000 00000010"  # RTA_DST 2001:db8:203::10
    "3c00 0900"  # RTA_MULTIPATH, two rtnexthops of 28 bytes
    "1c00 00 00 03000000 1400 0500 fe800000 00000000 00000000 00000001"
    "1c00 00 01 04000000 1400 0500 fe800000 00000000 00000000 00000002"
)


@little_endian_only
def test_ipv6_multipath_route_bytes_and_back() -> None:
    payload = rtnl.encode_route(200, "2001:db8:203::10", 128,
                                [Nexthop("fe80::1", 3, 1), Nexthop("fe80::2", 4, 2)],
                                protocol=200)
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | NLM_F_CREATE
    assert Message(rtnl.RTM_NEWROUTE, flags, 0x33, 0, payload).encode() == MULTIPATH_ROUTE6
    (msg,) = core.parse_messages(MULTIPATH_ROUTE6)
    route = rtnl.parse_route(msg)
    assert (route.family, route.table, route.dst, route.prefixlen, route.protocol) == (
        socket.AF_INET6, 200, "2001:db8:203::10", 128, 200)
    assert [(n.gateway, n.ifindex, n.weight) for n in route.nexthops] == [
        ("fe80::1", 3, 1), ("fe80::2", 4, 2)]


# RTM_NEWRULE 1090: iif lo lookup 200, IPv6 (the router's own traffic to route_table)
RULE6_IIF_LO = h(
    # nlmsghdr: len 52, type 32 RTM_NEWRULE, flags REQUEST|ACK|EXCL|CREATE, seq 0x44, pid 0
    "34000000 2000 0506 44000000 00000000"
    # fib_rule_hdr: AF_INET6, dst_len 0, src_len 0, tos 0, table 200, res 0 0, action 1
    # (to table), flags 0
    "0a 00 00 00 c8 00 00 01 00000000"
    "0800 0600 42040000"  # FRA_PRIORITY 1090
    "0800 0f00 c8000000"  # FRA_TABLE 200
    "0700 0300 6c6f00 00"  # FRA_IIFNAME "lo"
)


@little_endian_only
def test_ipv6_rule_bytes_and_back() -> None:
    payload = rtnl.encode_rule(1090, 200, family=socket.AF_INET6, iif="lo")
    flags = NLM_F_REQUEST | NLM_F_ACK | core.NLM_F_EXCL | NLM_F_CREATE
    assert Message(rtnl.RTM_NEWRULE, flags, 0x44, 0, payload).encode() == RULE6_IIF_LO
    rule = rtnl.parse_rule(core.parse_messages(RULE6_IIF_LO)[0])
    assert rule == rtnl.Rule(priority=1090, table=200, family=socket.AF_INET6, iif="lo")
    # a path's source rule: the family comes from the address, the prefix is a whole /128
    src = rtnl.parse_rule(Message(0, 0, 0, 0, rtnl.encode_rule(1002, 210,
                                                                src="2001:db8:64:1::2")))
    assert (src.family, src.src, src.src_len) == (socket.AF_INET6, "2001:db8:64:1::2", 128)
    with pytest.raises(ValueError):
        rtnl.encode_rule(1, 2, src="2001:db8::1", src_len=129)


def test_ipv6_local_route_for_tproxy_needs_its_family() -> None:
    """'default' says no family: the local route of IPv6 tproxy is asked for as IPv6."""
    payload = rtnl.encode_route(199, "default", 0, [Nexthop(None, 1)], rtype=rtnl.RTN_LOCAL,
                                family=socket.AF_INET6)
    r = rtnl.parse_route(Message(rtnl.RTM_NEWROUTE, 0, 0, 0, payload))
    assert (r.family, r.dst, r.type, r.scope) == (socket.AF_INET6, "default", rtnl.RTN_LOCAL,
                                                  rtnl.RT_SCOPE_HOST)
    v4 = rtnl.encode_route(199, "default", 0, [Nexthop(None, 1)], rtype=rtnl.RTN_LOCAL)
    assert v4[0] == socket.AF_INET


# MPTCP_PM_CMD_ADD_ADDR 2001:db8:64:1::2 flags subflow dev #3 (a path's IPv6 endpoint)
MPTCP_ADD_ADDR6 = h(
    "44000000 1c00 0500 55000000 00000000"  # nlmsghdr: len 68, type 0x1c, REQUEST|ACK
    "01 01 0000"  # genlmsghdr: cmd 1 ADD_ADDR, version 1
    "3000 0180"  # MPTCP_PM_ENDPOINT_ADDR | NLA_F_NESTED, len 48
    "0600 0100 0a00 0000"  # FAMILY u16 AF_INET6
    "1400 0400 20010db8 00640001 00000000 00000002"  # ADDR6
    "0800 0600 02000000"  # FLAGS u32 subflow
    "0800 0700 03000000"  # IF_IDX s32 3
)


@little_endian_only
def test_mptcp_add_addr_ipv6_bytes() -> None:
    nest = mptcp.encode_address(address="2001:db8:64:1::2", flags=int(EndpointFlag.SUBFLOW),
                                ifindex=3)
    payload = core.genl_payload(mptcp.MPTCP_PM_CMD_ADD_ADDR, 1, [nest])
    assert Message(0x1C, NLM_F_REQUEST | NLM_F_ACK, 0x55, 0, payload).encode() == MPTCP_ADD_ADDR6
    _cmd, attrs = core.genl_split(core.parse_messages(MPTCP_ADD_ADDR6)[0])
    assert mptcp.parse_endpoint(attrs) == mptcp.Endpoint(
        id=0, address="2001:db8:64:1::2", port=0, flags=EndpointFlag.SUBFLOW, ifindex=3,
        family=socket.AF_INET6)


def addr_msg(address: str, *, flags8: int = 0, flags: int | None = None, scope: int = 0,
             index: int = 3, msg_type: int = rtnl.RTM_NEWADDR) -> Message:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    payload = rtnl.IFADDRMSG.pack(family, 64, flags8, scope, index) + core.nla(
        rtnl.IFA_ADDRESS, socket.inet_pton(family, address))
    if flags is not None:
        payload += core.nla_u32(rtnl.IFA_FLAGS, flags)
    return Message(msg_type, 0, 0, 0, payload)


def test_address_flags_come_from_ifa_flags_when_sent() -> None:
    # IFA_FLAGS (u32) carries what the 8-bit ifa_flags cannot; when present it wins
    a = rtnl.parse_addr(addr_msg("2001:db8::2", flags8=0, flags=rtnl.IFA_F_DEPRECATED | 0x100))
    assert a.flags == rtnl.IFA_F_DEPRECATED | 0x100 and not a.usable
    b = rtnl.parse_addr(addr_msg("2001:db8::2", flags8=rtnl.IFA_F_TENTATIVE))
    assert b.flags == rtnl.IFA_F_TENTATIVE and not b.usable
    c = rtnl.parse_addr(addr_msg("2001:db8::2", flags8=rtnl.IFA_F_PERMANENT))
    assert c.usable and c.family == socket.AF_INET6 and c.address == "2001:db8::2"
    assert not rtnl.parse_addr(addr_msg("fe80::2", scope=rtnl.RT_SCOPE_LINK)).usable


A6 = rtnl.Addr  # index, ifname, address, prefixlen, scope, family, flags
TEMP, TENT, DEPR, DADF = (rtnl.IFA_F_TEMPORARY, rtnl.IFA_F_TENTATIVE, rtnl.IFA_F_DEPRECATED,
                          rtnl.IFA_F_DADFAILED)


def a6(address: str, flags: int = 0, scope: int = 0) -> rtnl.Addr:
    return A6(3, None, address, 64, scope, socket.AF_INET6, flags)


# (id, the device's addresses, the path's current address, the one it uses)
PICK_CASES: list[tuple[str, list[rtnl.Addr], str | None, str | None]] = [
    ("none", [], None, None),
    ("the global one", [a6("fe80::2", scope=253), a6("2001:db8:64:1::2")], None,
     "2001:db8:64:1::2"),
    ("link-local only: none", [a6("fe80::2", scope=253)], None, None),
    ("unique local only: none (not reachable over the internet)", [a6("fd00::2")], None, None),
    ("tentative (DAD running): not yet", [a6("2001:db8::2", TENT)], None, None),
    ("deprecated: not for new subflows", [a6("2001:db8::2", DEPR), a6("2001:db8::3")], None,
     "2001:db8::3"),
    ("failed DAD: never", [a6("2001:db8::2", DADF)], None, None),
    ("a stable address before a privacy one", [a6("2001:db8::aaaa", TEMP), a6("2001:db8::2")],
     None, "2001:db8::2"),
    ("a privacy address when it is all there is", [a6("2001:db8::aaaa", TEMP)], None,
     "2001:db8::aaaa"),
    ("the current one is kept while usable", [a6("2001:db8::2"), a6("2001:db8::3")],
     "2001:db8::3", "2001:db8::3"),
    ("the current one deprecated: moved", [a6("2001:db8::2"), a6("2001:db8::3", DEPR)],
     "2001:db8::3", "2001:db8::2"),
    ("IPv4 addresses are not looked at", [A6(3, "wan1", "100.64.1.2", 24, 0)], None, None),
]


@pytest.mark.parametrize(("addrs", "current", "want"), [c[1:] for c in PICK_CASES],
                         ids=[c[0] for c in PICK_CASES])
def test_pick_ipv6(addrs: list[rtnl.Addr], current: str | None, want: str | None) -> None:
    assert rtnl.pick_ipv6(addrs, current) == want


def test_monitor_decodes_ipv6_address_events_with_their_flags() -> None:
    data = (addr_msg("2001:db8:64:1::2", flags8=rtnl.IFA_F_TENTATIVE).encode()
            + addr_msg("2001:db8:64:1::2", flags=rtnl.IFA_F_PERMANENT).encode()
            + addr_msg("2001:db8:64:1::2", msg_type=rtnl.RTM_DELADDR).encode())
    assert monitor.decode_events(data) == [
        monitor.AddrEvent(3, "2001:db8:64:1::2", 64, True, socket.AF_INET6, None,
                          rtnl.IFA_F_TENTATIVE),
        monitor.AddrEvent(3, "2001:db8:64:1::2", 64, True, socket.AF_INET6, None,
                          rtnl.IFA_F_PERMANENT),
        monitor.AddrEvent(3, "2001:db8:64:1::2", 64, False, socket.AF_INET6, None, 0),
    ]


# --- the request loop, against a scripted socket -------------------------------


class FakeSock:
    """Stands in for the kernel: answers each sendto with scripted datagrams."""

    def __init__(self, script: list[list[list[Message]]]) -> None:
        self.script = script  # per request: list of datagrams, each a list of messages
        self.queue: list[bytes] = []
        self.sent: list[Message] = []

    def sendto(self, data: bytes, _addr: Any) -> int:
        (msg,) = core.parse_messages(data)
        self.sent.append(msg)
        for datagram in self.script.pop(0):
            self.queue.append(b"".join(
                Message(m.type, m.flags, msg.seq if m.seq == -1 else m.seq, m.pid,
                        m.payload).encode() for m in datagram))
        return len(data)

    def recv_into(self, buf: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if not self.queue:
            raise TimeoutError
        data = self.queue[0]
        n = min(len(data), len(buf))
        buf[:n] = data[:n]
        if flags & socket.MSG_PEEK:
            return len(data) if flags & socket.MSG_TRUNC else n
        self.queue.pop(0)
        return n

    def gettimeout(self) -> float:
        return 1.0


def fake_socket(script: list[list[list[Message]]]) -> tuple[NetlinkSocket, FakeSock]:
    nl = NetlinkSocket.__new__(NetlinkSocket)
    fake = FakeSock(script)
    nl.sock = fake  # type: ignore[assignment]
    nl.pid = 4242
    nl._buf = bytearray(64)  # tiny, to exercise the peek-and-grow path
    return nl, fake


def reply(payload: bytes, flags: int = NLM_F_MULTI, seq: int = -1) -> Message:
    return Message(rtnl.RTM_NEWLINK, flags, seq, 4242, payload)


def done() -> Message:
    return Message(NLMSG_DONE, NLM_F_MULTI, -1, 4242, struct.pack("=i", 0))


def test_dump_spans_datagrams_skips_stale_and_grows_buffer() -> None:
    big = b"B" * 300
    nl, fake = fake_socket([[
        [reply(b"stale", seq=1)],
        [reply(b"one"), reply(big)],
        [reply(b"three"), done()],
    ]])
    out = nl.request(rtnl.RTM_GETLINK, NLM_F_DUMP, b"", "dump")
    assert [m.payload for m in out] == [b"one", big, b"three"]
    assert fake.sent[0].flags == NLM_F_REQUEST | NLM_F_DUMP  # no ACK on dumps
    assert len(nl._buf) >= 300 + 16


def test_interrupted_dump_is_retried() -> None:
    nl, fake = fake_socket([
        [[reply(b"old", NLM_F_MULTI | NLM_F_DUMP_INTR), done()]],
        [[reply(b"new"), done()]],
    ])
    out = nl.request(rtnl.RTM_GETLINK, NLM_F_DUMP, b"", "dump")
    assert [m.payload for m in out] == [b"new"]
    assert len(fake.sent) == 2 and fake.sent[0].seq != fake.sent[1].seq


def test_ack_and_error() -> None:
    ack = Message(NLMSG_ERROR, 0, -1, 4242, struct.pack("=i", 0) + b"\0" * 16)
    nl, fake = fake_socket([[[ack]]])
    assert nl.request(rtnl.RTM_NEWROUTE, NLM_F_CREATE, b"x", "add") == []
    assert fake.sent[0].flags & NLM_F_ACK
    err = Message(NLMSG_ERROR, core.NLM_F_ACK_TLVS | core.NLM_F_CAPPED, -1, 4242,
                  struct.pack("=i", -errno.ESRCH) + b"\0" * 16
                  + core.nla_str(core.NLMSGERR_ATTR_MSG, "no such route"))
    nl, _ = fake_socket([[[err]]])
    with pytest.raises(NetlinkError) as info:
        nl.request(rtnl.RTM_DELROUTE, 0, b"x", "delete route x")
    assert info.value.errno == errno.ESRCH
    assert info.value.operation == "delete route x"
    assert info.value.ext_message == "no such route"


def test_no_answer_times_out() -> None:
    nl, _ = fake_socket([[]])
    with pytest.raises(NetlinkError) as info:
        nl.request(rtnl.RTM_GETLINK, 0, b"", "get")
    assert info.value.errno == errno.ETIMEDOUT


def test_flush_refuses_system_tables() -> None:
    r = rtnl.Rtnl.__new__(rtnl.Rtnl)
    for table in (0, 253, 254, 255):
        with pytest.raises(ValueError):
            r.flush_table(table)


def test_endpoint_del_refuses_id_zero() -> None:
    pm = mptcp.MptcpPM.__new__(mptcp.MptcpPM)
    with pytest.raises(ValueError):
        pm.endpoint_del(0)


def test_no_flush_of_endpoints_exists() -> None:
    assert not [name for name in dir(mptcp.MptcpPM) if "flush" in name.lower()]
