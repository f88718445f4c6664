# ruff: noqa: F405 (the names come from the star imports of rtnl_consts and rtnl_codec)
"""NETLINK_ROUTE: links, addresses, routes (incl. multipath) and policy rules.

The numbers are in :mod:`.rtnl_consts`, the message codec in :mod:`.rtnl_codec`; both are
re-exported here, so ``from bonding.netlink.rtnl import Route, RTN_LOCAL`` keeps working.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TypedDict, Unpack

from .core import (
    NETLINK_ROUTE,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NetlinkClient,
    NetlinkError,
    NetlinkSocket,
    nla_str,
    nla_u32,
)
from .rtnl_codec import *  # noqa: F403
from .rtnl_codec import _delroute_payload
from .rtnl_consts import *  # noqa: F403


class RuleSelectors(TypedDict, total=False):
    """What a rule matches besides its source (keywords of Rtnl.rule_add/rule_del)."""

    family: int
    dst: str | None
    dst_len: int | None
    iif: str | None
    oif: str | None
    fwmark: int | None
    fwmask: int | None
    suppress_prefixlength: int | None


class RouteOptions(TypedDict, total=False):
    """A route's keywords besides table, destination and nexthops (of encode_route, whose
    defaults hold: metric None, protocol RTPROT_STATIC, rtype RTN_UNICAST, tos 0)."""

    metric: int | None
    protocol: int
    rtype: int
    prefsrc: str | None
    family: int | None
    scope: int | None
    congctl: str | None
    tos: int


# --- the API ----------------------------------------------------------------


class Rtnl(NetlinkClient):
    """Synchronous NETLINK_ROUTE requests in the current network namespace."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.nl = NetlinkSocket(NETLINK_ROUTE, timeout=timeout)

    # links

    def links(self) -> list[Link]:
        payload = IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + nla_u32(
            IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        msgs = self.nl.request(RTM_GETLINK, NLM_F_DUMP, payload, "dump links")
        return [parse_link(m) for m in msgs if m.type == RTM_NEWLINK]

    def link(self, key: str | int) -> Link:
        """One link by name or index; NetlinkError(ENODEV) when absent."""
        if isinstance(key, int):
            payload = IFINFOMSG.pack(AF_UNSPEC, 0, key, 0, 0)
        else:
            payload = IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + nla_str(IFLA_IFNAME, key)
        payload += nla_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        msgs = self.nl.request(RTM_GETLINK, 0, payload, f"get link {key}")
        for m in msgs:
            if m.type == RTM_NEWLINK:
                return parse_link(m)
        raise NetlinkError(errno.ENODEV, f"get link {key}")

    def link_index(self, name: str) -> int:
        return self.link(name).index

    # addresses

    def addresses(self, family: int = AF_INET, index: int | None = None) -> list[Addr]:
        payload = IFADDRMSG.pack(family, 0, 0, 0, 0)
        msgs = self.nl.request(RTM_GETADDR, NLM_F_DUMP, payload, "dump addresses")
        out = [parse_addr(m) for m in msgs if m.type == RTM_NEWADDR]
        return [a for a in out if a.family == family and (index is None or a.index == index)]

    # routes

    def route_replace(
        self,
        table: int,
        dst: str,
        prefixlen: int,
        nexthops: Sequence[Nexthop],
        **options: Unpack[RouteOptions],
    ) -> None:
        """Create or replace a route; two or more nexthops make it multipath."""
        payload = encode_route(table, dst, prefixlen, nexthops, **options)
        self.nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, payload,
                        f"replace route {dst}/{prefixlen} table {table}")

    def route_del(
        self,
        table: int,
        dst: str,
        prefixlen: int,
        metric: int | None = None,
        *,
        family: int | None = None,
        tos: int = 0,
    ) -> None:
        """Delete the route with this destination and metric from `table`."""
        if family is None:
            family = family_of(dst) if dst != "default" else AF_INET
        payload = _delroute_payload(table, dst, prefixlen, metric, family, tos)
        self.nl.request(RTM_DELROUTE, 0, payload, f"delete route {dst}/{prefixlen} table {table}")

    def routes(self, table: int, family: int = AF_INET) -> list[Route]:
        """All routes of one table (tables above 255 included)."""
        return [r for r in self.route_dump(family, f"dump routes table {table}")
                if r.table == table]

    def route_dump(self, family: int = AF_INET, operation: str = "dump routes") -> list[Route]:
        """Every route of one address family, in every table."""
        payload = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        msgs = self.nl.request(RTM_GETROUTE, NLM_F_DUMP, payload, operation)
        out = [parse_route(m) for m in msgs if m.type == RTM_NEWROUTE]
        return [r for r in out if r.family == family]

    def flush_table(self, table: int, family: int = AF_INET) -> int:
        """Delete every route of a per-path table; the system tables are refused."""
        if table in RESERVED_TABLES:
            raise ValueError(f"refusing to flush reserved table {table}")
        count = 0
        for route in self.routes(table, family):
            payload = _delroute_payload(table, route.dst, route.prefixlen, route.metric,
                                        family, route.tos)
            try:
                self.nl.request(RTM_DELROUTE, 0, payload, f"flush table {table}")
                count += 1
            except NetlinkError as exc:
                if exc.errno != errno.ESRCH:
                    raise
        return count

    # rules

    def rule_add(
        self,
        priority: int,
        table: int,
        src: str | None = None,
        src_len: int | None = None,
        *,
        protocol: int | None = None,
        exist_ok: bool = False,
        **selectors: Unpack[RuleSelectors],
    ) -> None:
        """Add a rule `priority: [from src/len] [iif] [fwmark/mask] lookup table`."""
        payload = encode_rule(priority, table, src=src, src_len=src_len, protocol=protocol,
                              **selectors)  # fmt: skip
        self._rule_request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, payload,
                           f"add rule {priority} table {table}", errno.EEXIST if exist_ok else 0)

    def rule_del(
        self,
        priority: int,
        table: int,
        src: str | None = None,
        src_len: int | None = None,
        *,
        missing_ok: bool = False,
        **selectors: Unpack[RuleSelectors],
    ) -> None:
        """Delete the rule matching all the given selectors."""
        payload = encode_rule(priority, table, src=src, src_len=src_len, **selectors)
        self._rule_request(RTM_DELRULE, 0, payload, f"delete rule {priority} table {table}",
                           errno.ENOENT if missing_ok else 0)

    def _rule_request(
        self, msg_type: int, flags: int, payload: bytes, operation: str, ok_errno: int
    ) -> None:
        try:
            self.nl.request(msg_type, flags, payload, operation)
        except NetlinkError as exc:
            if not (ok_errno and exc.errno == ok_errno):
                raise

    def rules(self, family: int = AF_INET) -> list[Rule]:
        payload = FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        msgs = self.nl.request(RTM_GETRULE, NLM_F_DUMP, payload, "dump rules")
        return [parse_rule(m) for m in msgs if m.type == RTM_NEWRULE]

