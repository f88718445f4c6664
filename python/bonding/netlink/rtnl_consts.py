"""NETLINK_ROUTE numbers: message types, groups, attribute types and the fixed headers."""

from __future__ import annotations

import ipaddress
import socket
import struct

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
AF_UNSPEC = socket.AF_UNSPEC

# Message types.
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTM_NEWRULE = 32
RTM_DELRULE = 33
RTM_GETRULE = 34

# Multicast groups (bit masks for bind()).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400

# Interface flags and attributes.
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_EXT_MASK = 29
IFLA_CARRIER = 33
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
# With IFF_LOWER_UP (the driver's carrier, set at once) these operstates mean no traffic.  DOWN
# and LOWERLAYERDOWN are not among them: the kernel derives them from a carrier that is off, so
# beside IFF_LOWER_UP they are stale (linkwatch sets the operstate later, at most once a second:
# netifd's ifup of a link it took down on ifdown showed UP + LOWER_UP with LOWERLAYERDOWN for
# 0.7 s while DHCP had already passed over it).
_NO_CARRIER_STATES = frozenset({"NOTPRESENT", "DORMANT"})

# Address attributes.
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8
IFA_F_TEMPORARY = 0x01  # an IPv6 privacy address (RFC 8981)
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20  # preferred lifetime over: not for new connections
IFA_F_TENTATIVE = 0x40  # duplicate address detection still running
IFA_F_PERMANENT = 0x80
_IFA_UNUSABLE = IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE
_GLOBAL_UNICAST6 = ipaddress.IPv6Network("2000::/3")

# Routes.
RTA_DST = 1
RTA_SRC = 2
RTA_IIF = 3
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_MULTIPATH = 9
RTA_TABLE = 15
RT_TABLE_UNSPEC = 0
RT_TABLE_COMPAT = 252
RT_TABLE_DEFAULT = 253
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RESERVED_TABLES = frozenset({RT_TABLE_UNSPEC, RT_TABLE_COMPAT, RT_TABLE_DEFAULT,
                             RT_TABLE_MAIN, RT_TABLE_LOCAL})
RTPROT_UNSPEC = 0
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RTN_UNSPEC = 0
RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
RTAX_CC_ALGO = 16  # inside RTA_METRICS: the route's TCP congestion control, by name
RTNH_F_DEAD = 1
RTNH_F_LINKDOWN = 16

# Rules.
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_SUPPRESS_PREFIXLEN = 14
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_PROTOCOL = 21
FR_ACT_TO_TBL = 1

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table protocol scope type flags
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops (weight - 1), ifindex
FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")  # family dst src tos table r1 r2 action flags

