"""MPTCP subflows per local address, read from the kernel with sock_diag (inet_diag).

A subflow is a TCP socket whose upper-layer protocol (ULP) is "mptcp"; the kernel names the ULP
in the INET_DIAG_ULP_INFO attribute of each socket in a dump (what `ss -tni` shows as
`tcp-ulp-mptcp`).  Only established subflows are counted, IPv4 and IPv6 (one dump each).
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from dataclasses import dataclass

from bonding.netlink.core import NLM_F_DUMP, Attrs, NetlinkSocket
from bonding.netlink.rtnl import unpack_addr

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCP_ESTABLISHED = 1
INET_DIAG_INFO = 2
INET_DIAG_ULP_INFO = 19
INET_ULP_INFO_NAME = 1
INET_ULP_INFO_MPTCP = 3  # nested MPTCP_SUBFLOW_ATTR_* (linux/mptcp.h)
MPTCP_SUBFLOW_ATTR_TOKEN_LOC = 2
MPTCP_SUBFLOW_ATTR_FLAGS = 8
MPTCP_SUBFLOW_FLAG_JOIN_LOC = 1 << 3  # this side opened it with MP_JOIN
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then struct inet_diag_sockid
# (sport, dport (big-endian), src[4], dst[4] (big-endian), if, cookie[2]).
REQ_V2 = struct.Struct("=BBBxI2H16s16sI8s")
# struct inet_diag_msg: family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
DIAG_MSG = struct.Struct("=BBBB2H16s16sI8sIIIII")


def request(states: int = 1 << TCP_ESTABLISHED, family: int = socket.AF_INET) -> bytes:
    """A dump request for TCP sockets of `family` in `states`, with the info that carries the
    ULP."""
    return REQ_V2.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), states,
                       0, 0, b"", b"", 0, b"")


@dataclass(frozen=True)
class Subflow:
    """One established MPTCP subflow: its local address, its connection's local token (None:
    not told) and whether this side opened it with MP_JOIN."""

    local: str
    token: int | None = None
    join: bool = False


def parse(payload: bytes) -> tuple[str, str | None] | None:
    """(local address, ULP name or None) of one inet_diag_msg; None when it is neither IPv4 nor
    IPv6."""
    got = parse_subflow(payload)
    return None if got is None else (got[0].local, got[1])


def parse_subflow(payload: bytes) -> tuple[Subflow, str | None] | None:
    """The socket of one inet_diag_msg as a Subflow, with its ULP name or None; None when it is
    neither IPv4 nor IPv6.  The token and the join flag come from the ULP's MPTCP info (the
    kernel gives it to a CAP_NET_ADMIN reader)."""
    if len(payload) < DIAG_MSG.size:
        raise ValueError(f"inet_diag_msg of {len(payload)} bytes")
    fields = DIAG_MSG.unpack_from(payload)
    if fields[0] not in (socket.AF_INET, socket.AF_INET6):
        return None
    src = unpack_addr(fields[6][:4] if fields[0] == socket.AF_INET else fields[6])
    ulp = Attrs(payload[DIAG_MSG.size:]).nested(INET_DIAG_ULP_INFO)
    if ulp is None:
        return Subflow(src), None
    info = ulp.nested(INET_ULP_INFO_MPTCP)
    token = info.u32(MPTCP_SUBFLOW_ATTR_TOKEN_LOC) if info is not None else None
    flags = (info.u32(MPTCP_SUBFLOW_ATTR_FLAGS) if info is not None else None) or 0
    return (Subflow(src, token, bool(flags & MPTCP_SUBFLOW_FLAG_JOIN_LOC)),
            ulp.str(INET_ULP_INFO_NAME))


class SubflowCounter:
    """Lists (or counts by local address) the established MPTCP subflows, one dump per
    call."""

    def __init__(self) -> None:
        self.nl = NetlinkSocket(NETLINK_SOCK_DIAG)

    def close(self) -> None:
        self.nl.close()

    def dump(self) -> list[Subflow]:
        """Every established MPTCP subflow, IPv4 then IPv6."""
        out: list[Subflow] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self.nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP,
                                       request(family=family), "sock_diag dump"):
                got = parse_subflow(msg.payload)
                if got is not None and got[1] == "mptcp":
                    out.append(got[0])
        return out

    def by_address(self) -> Counter[str]:
        return Counter(s.local for s in self.dump())
