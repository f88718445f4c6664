"""MPTCP in-kernel path manager over generic netlink (family "mptcp_pm").

Byte order (checked against net/mptcp/pm_netlink.c, not only the YNL spec):
ADDR4 is the raw in_addr (network order); PORT in endpoint messages is *host*
order (kernel does htons(nla_get_u16())); IF_IDX is s32; FLAGS, limits u32;
ID u8. In events SPORT/DPORT are big-endian (nla_put_be16), IF_IDX is s32.
"""

from __future__ import annotations

import asyncio
import enum
import errno
from collections.abc import Callable
from dataclasses import dataclass

from .core import (
    NETLINK_GENERIC,
    NLM_F_DUMP,
    Attrs,
    GenlFamily,
    Message,
    NetlinkClient,
    NetlinkError,
    NetlinkSocket,
    genl_payload,
    genl_split,
    nla,
    nla_nest,
    nla_s32,
    nla_u8,
    nla_u16,
    nla_u32,
    parse_messages,
    resolve_family,
    set_rcvbuf,
)
from .rtnl import AF_INET, AF_INET6, pack_addr, unpack_addr

MPTCP_PM_NAME = "mptcp_pm"
MPTCP_PM_VER = 1
MPTCP_PM_EV_GRP_NAME = "mptcp_pm_events"

# Commands.
MPTCP_PM_CMD_ADD_ADDR = 1
MPTCP_PM_CMD_DEL_ADDR = 2
MPTCP_PM_CMD_GET_ADDR = 3
MPTCP_PM_CMD_FLUSH_ADDRS = 4  # deliberately unused: we never touch endpoints not ours
MPTCP_PM_CMD_SET_LIMITS = 5
MPTCP_PM_CMD_GET_LIMITS = 6
MPTCP_PM_CMD_SET_FLAGS = 7

# Top-level attributes (MPTCP_PM_ENDPOINT_ADDR == MPTCP_PM_ATTR_ADDR == 1).
MPTCP_PM_ATTR_ADDR = 1
MPTCP_PM_ATTR_RCV_ADD_ADDRS = 2
MPTCP_PM_ATTR_SUBFLOWS = 3

# Address (nested) attributes.
MPTCP_PM_ADDR_ATTR_FAMILY = 1  # u16
MPTCP_PM_ADDR_ATTR_ID = 2  # u8
MPTCP_PM_ADDR_ATTR_ADDR4 = 3  # in_addr, network order
MPTCP_PM_ADDR_ATTR_ADDR6 = 4  # in6_addr
MPTCP_PM_ADDR_ATTR_PORT = 5  # u16, HOST order
MPTCP_PM_ADDR_ATTR_FLAGS = 6  # u32
MPTCP_PM_ADDR_ATTR_IF_IDX = 7  # s32

# Event attributes.
MPTCP_ATTR_TOKEN = 1
MPTCP_ATTR_FAMILY = 2
MPTCP_ATTR_LOC_ID = 3
MPTCP_ATTR_REM_ID = 4
MPTCP_ATTR_SADDR4 = 5
MPTCP_ATTR_SADDR6 = 6
MPTCP_ATTR_DADDR4 = 7
MPTCP_ATTR_DADDR6 = 8
MPTCP_ATTR_SPORT = 9  # be16
MPTCP_ATTR_DPORT = 10  # be16
MPTCP_ATTR_BACKUP = 11
MPTCP_ATTR_ERROR = 12
MPTCP_ATTR_IF_IDX = 15
MPTCP_ATTR_RESET_REASON = 16

EVENT_NAMES = {
    1: "created",
    2: "established",
    3: "closed",
    6: "announced",
    7: "removed",
    10: "sub_established",
    11: "sub_closed",
    13: "sub_priority",
    15: "listener_created",
    16: "listener_closed",
}


class EndpointFlag(enum.IntFlag):
    """MPTCP_PM_ADDR_FLAG_*."""

    SIGNAL = 1 << 0
    SUBFLOW = 1 << 1
    BACKUP = 1 << 2
    FULLMESH = 1 << 3
    IMPLICIT = 1 << 4
    LAMINAR = 1 << 5


def flags_from_names(names: set[str] | frozenset[str]) -> EndpointFlag:
    """{'subflow', 'backup'} -> EndpointFlag.SUBFLOW | EndpointFlag.BACKUP."""
    out = EndpointFlag(0)
    for name in names:
        out |= EndpointFlag[name.upper()]
    return out


def flag_names(flags: int) -> frozenset[str]:
    return frozenset(f.name.lower() for f in EndpointFlag if f.name and flags & f)


@dataclass(frozen=True)
class Endpoint:
    """An MPTCP endpoint of the in-kernel path manager."""

    id: int
    address: str
    port: int
    flags: EndpointFlag
    ifindex: int | None
    family: int = AF_INET


@dataclass(frozen=True)
class Limits:
    """Per-namespace limits."""

    subflows: int
    add_addr_accepted: int


@dataclass(frozen=True)
class MptcpEvent:
    """One mptcp_pm_events notification."""

    type: int
    name: str
    token: int | None = None
    family: int | None = None
    saddr: str | None = None
    daddr: str | None = None
    sport: int | None = None
    dport: int | None = None
    loc_id: int | None = None
    rem_id: int | None = None
    backup: bool | None = None
    ifindex: int | None = None
    error: int | None = None


@dataclass(frozen=True)
class EventsLost:
    """The socket overran (ENOBUFS): events were dropped."""


FlagsArg = EndpointFlag | int | set[str] | frozenset[str]


def _flags(value: FlagsArg) -> EndpointFlag:
    if isinstance(value, set | frozenset):
        return flags_from_names(value)
    return EndpointFlag(value)


def encode_address(
    *,
    address: str | None = None,
    id: int | None = None,
    flags: int | None = None,
    ifindex: int | None = None,
    port: int | None = None,
) -> bytes:
    """The nested MPTCP_PM_ATTR_ADDR attribute."""
    children: list[bytes] = []
    if address is not None:
        family = AF_INET6 if ":" in address else AF_INET
        children.append(nla_u16(MPTCP_PM_ADDR_ATTR_FAMILY, family))
        addr_type = MPTCP_PM_ADDR_ATTR_ADDR4 if family == AF_INET else MPTCP_PM_ADDR_ATTR_ADDR6
        children.append(nla(addr_type, pack_addr(address, family)))
    if id is not None:
        if not 0 < id < 256:
            raise ValueError(f"endpoint id {id} outside 1..255")
        children.append(nla_u8(MPTCP_PM_ADDR_ATTR_ID, id))
    if port:
        children.append(nla_u16(MPTCP_PM_ADDR_ATTR_PORT, port))  # host order
    if flags is not None:
        children.append(nla_u32(MPTCP_PM_ADDR_ATTR_FLAGS, flags))
    if ifindex:
        children.append(nla_s32(MPTCP_PM_ADDR_ATTR_IF_IDX, ifindex))
    return nla_nest(MPTCP_PM_ATTR_ADDR, children)


def parse_endpoint(attrs: Attrs) -> Endpoint:
    nest = attrs.nested(MPTCP_PM_ATTR_ADDR)
    if nest is None:
        raise ValueError("endpoint message without an address nest")
    family = nest.u16(MPTCP_PM_ADDR_ATTR_FAMILY) or AF_INET
    raw = nest.raw(MPTCP_PM_ADDR_ATTR_ADDR4 if family == AF_INET else MPTCP_PM_ADDR_ATTR_ADDR6)
    ifindex = nest.s32(MPTCP_PM_ADDR_ATTR_IF_IDX)
    return Endpoint(
        id=nest.u8(MPTCP_PM_ADDR_ATTR_ID) or 0,
        address=unpack_addr(raw) if raw else "",
        port=nest.u16(MPTCP_PM_ADDR_ATTR_PORT) or 0,
        flags=EndpointFlag(nest.u32(MPTCP_PM_ADDR_ATTR_FLAGS) or 0),
        ifindex=ifindex or None,
        family=family,
    )


def parse_event(msg: Message) -> MptcpEvent:
    cmd, a = genl_split(msg)
    family = a.u16(MPTCP_ATTR_FAMILY)
    s4, d4 = a.raw(MPTCP_ATTR_SADDR4), a.raw(MPTCP_ATTR_DADDR4)
    s6, d6 = a.raw(MPTCP_ATTR_SADDR6), a.raw(MPTCP_ATTR_DADDR6)
    saddr = s4 if s4 is not None else (s6[:16] if s6 is not None else None)
    daddr = d4 if d4 is not None else (d6[:16] if d6 is not None else None)
    backup = a.u8(MPTCP_ATTR_BACKUP)
    return MptcpEvent(
        type=cmd,
        name=EVENT_NAMES.get(cmd, f"event{cmd}"),
        token=a.u32(MPTCP_ATTR_TOKEN),
        family=family,
        saddr=unpack_addr(saddr) if saddr is not None else None,
        daddr=unpack_addr(daddr) if daddr is not None else None,
        sport=a.be16(MPTCP_ATTR_SPORT),
        dport=a.be16(MPTCP_ATTR_DPORT),
        loc_id=a.u8(MPTCP_ATTR_LOC_ID),
        rem_id=a.u8(MPTCP_ATTR_REM_ID),
        backup=None if backup is None else bool(backup),
        ifindex=a.s32(MPTCP_ATTR_IF_IDX),
        error=a.u8(MPTCP_ATTR_ERROR),
    )


class MptcpPM(NetlinkClient):
    """Endpoints and limits of the in-kernel MPTCP path manager (current netns)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.nl = NetlinkSocket(NETLINK_GENERIC, timeout=timeout)
        try:
            self.family: GenlFamily = resolve_family(self.nl, MPTCP_PM_NAME)
        except BaseException:
            self.nl.close()
            raise

    def _call(self, cmd: int, attrs: list[bytes], operation: str, flags: int = 0) -> list[Attrs]:
        payload = genl_payload(cmd, MPTCP_PM_VER, attrs)
        msgs = self.nl.request(self.family.id, flags, payload, operation)
        return [genl_split(m)[1] for m in msgs if m.type == self.family.id]

    def endpoints(self) -> list[Endpoint]:
        replies = self._call(MPTCP_PM_CMD_GET_ADDR, [], "dump mptcp endpoints", NLM_F_DUMP)
        return [parse_endpoint(a) for a in replies]

    def endpoint(self, id: int) -> Endpoint | None:
        """One endpoint by id, or None when there is none."""
        try:
            replies = self._call(MPTCP_PM_CMD_GET_ADDR, [encode_address(id=id)],
                                 f"get mptcp endpoint {id}")
        except NetlinkError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return None
            raise
        return parse_endpoint(replies[0]) if replies else None

    def endpoint_add(
        self,
        address: str,
        flags: FlagsArg,
        ifindex: int | None = None,
        id: int | None = None,
        port: int | None = None,
    ) -> int:
        """Add an endpoint; return the id the kernel gave it (read back by a dump)."""
        fl = _flags(flags)
        op = f"add mptcp endpoint {address}"
        self._call(MPTCP_PM_CMD_ADD_ADDR,
                   [encode_address(address=address, id=id, flags=int(fl), ifindex=ifindex,
                                   port=port)], op)
        if id is not None:
            return id
        canon = unpack_addr(pack_addr(address))
        for ep in self.endpoints():
            if ep.address == canon and ep.port == (port or 0):
                return ep.id
        raise NetlinkError(errno.ENOENT, op, "added endpoint not found in the dump")

    def endpoint_del(self, id: int, address: str | None = None) -> None:
        """Delete endpoint `id`; with `address`, only if the id still carries it."""
        if not 0 < id < 256:
            raise ValueError(f"endpoint id {id} outside 1..255 (id 0 is never ours)")
        op = f"delete mptcp endpoint {id}"
        if address is not None:
            ep = self.endpoint(id)
            canon = unpack_addr(pack_addr(address))
            if ep is None or ep.address != canon:
                found = "none" if ep is None else ep.address
                raise NetlinkError(errno.ENOENT, op, f"id {id} is {found}, not {canon}")
        self._call(MPTCP_PM_CMD_DEL_ADDR, [encode_address(id=id)], op)

    def endpoint_set_flags(self, key: int | str, flags: FlagsArg, port: int | None = None) -> None:
        """Set the changeable flags (backup, fullmesh) of an endpoint by id or address."""
        fl = int(_flags(flags))
        if isinstance(key, int):
            nest = encode_address(id=key, flags=fl)
        else:
            nest = encode_address(address=key, flags=fl, port=port)
        self._call(MPTCP_PM_CMD_SET_FLAGS, [nest], f"set flags of mptcp endpoint {key}")

    def endpoint_set_backup(self, key: int | str, backup: bool) -> None:
        """Turn the backup flag on or off, keeping the other flags."""
        canon: int | str = key if isinstance(key, int) else unpack_addr(pack_addr(key))
        ep = next((e for e in self.endpoints()
                   if (e.id if isinstance(key, int) else e.address) == canon), None)
        if ep is None:
            raise NetlinkError(errno.ENOENT, f"set backup of mptcp endpoint {key}")
        new = ep.flags | EndpointFlag.BACKUP if backup else ep.flags & ~EndpointFlag.BACKUP
        # by address: the lookup every kernel with SET_FLAGS supports
        self.endpoint_set_flags(ep.address, new, port=ep.port or None)

    def limits(self) -> Limits:
        replies = self._call(MPTCP_PM_CMD_GET_LIMITS, [], "get mptcp limits")
        if not replies:
            raise NetlinkError(errno.ENODATA, "get mptcp limits")
        a = replies[0]
        return Limits(subflows=a.u32(MPTCP_PM_ATTR_SUBFLOWS) or 0,
                      add_addr_accepted=a.u32(MPTCP_PM_ATTR_RCV_ADD_ADDRS) or 0)

    def set_limits(self, subflows: int | None = None,
                   add_addr_accepted: int | None = None) -> None:
        attrs = []
        if add_addr_accepted is not None:
            attrs.append(nla_u32(MPTCP_PM_ATTR_RCV_ADD_ADDRS, add_addr_accepted))
        if subflows is not None:
            attrs.append(nla_u32(MPTCP_PM_ATTR_SUBFLOWS, subflows))
        self._call(MPTCP_PM_CMD_SET_LIMITS, attrs, "set mptcp limits")


class MptcpEventReader(NetlinkClient):
    """Non-blocking reader of the mptcp_pm_events group; use with loop.add_reader."""

    def __init__(self, rcvbuf: int = 1 << 20) -> None:
        with NetlinkSocket(NETLINK_GENERIC) as ctl:
            self.family = resolve_family(ctl, MPTCP_PM_NAME)
        group = self.family.mcast_groups.get(MPTCP_PM_EV_GRP_NAME)
        if group is None:
            raise NetlinkError(errno.ENOENT, "join mptcp_pm_events", "no such group")
        self.nl = NetlinkSocket(NETLINK_GENERIC, nonblocking=True)
        try:
            set_rcvbuf(self.nl.sock, rcvbuf)
            self.nl.add_membership(group)
        except BaseException:
            self.nl.close()
            raise

    def read(self, max_datagrams: int = 64) -> list[MptcpEvent | EventsLost]:
        """Everything readable now (bounded); EventsLost marks an overrun."""
        out: list[MptcpEvent | EventsLost] = []
        for data in self.nl.recv_ready(max_datagrams):
            if data is None:
                out.append(EventsLost())
            else:
                out.extend(_events(data, self.family.id))
        return out

    def attach(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[MptcpEvent | EventsLost], None]
    ) -> None:
        """Call `callback` for each event from the asyncio loop."""

        def ready() -> None:
            for ev in self.read():
                callback(ev)

        loop.add_reader(self.fileno(), ready)


def _events(data: bytes, family_id: int) -> list[MptcpEvent]:
    return [parse_event(m) for m in parse_messages(data) if m.type == family_id]
