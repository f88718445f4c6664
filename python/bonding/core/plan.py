"""What the kernel should hold, computed from the paths' state: a pure function.

The reconciler (bonding.actions) compares this plan with what the kernel has and changes only
the difference, and only what is ours: endpoints whose address is a path's address, routes in our
tables, rules at our priorities.

Routing layout (IPv4), with P = rule_priority:
- P:        fwmark <tproxy_mark>/<tproxy_mask> lookup <tproxy_table>   (only with a data plane:
                                                   packets nftables handed to the local proxy
                                                   by tproxy are delivered locally)
- P+1:      lookup main suppress_prefixlength 0   (the main table for all but default routes:
                                                   LAN, connected and netifd's specific routes)
- P+2+i:    from <path i address> lookup <path table i>   (each subflow and probe leaves by its
                                                           own link)
- P+90:     lookup <route_table>                  (our default route and the server routes)
tproxy_table: local default dev lo.
Path table i: default via the path's gateway dev its device (kept while the path has an
address, also when it is down, so probes can see it come back).
route_table: the servers over every live non-backup path (ECMP, weighted by declared upload
rate), so no single link is the master; the router's own default route on the first live path.
Every unicast route carries `congctl` when a congestion control is asked for: the kernel then
gives it to each TCP connection (MPTCP subflow) that leaves by that route, whatever the
application (the proxy) chose.  A path's own congestion control goes on its table (the
subflows that join over it); route_table (the first subflow, whichever link ECMP picks) keeps
the global one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bonding.core.health import State

RULE_TPROXY_OFFSET = 0
RULE_MAIN_OFFSET = 1
RULE_PATH_OFFSET = 2
RULE_TABLE_OFFSET = 90
ECMP_MAX_WEIGHT = 256
LOOPBACK_IFINDEX = 1  # the kernel's LOOPBACK_IFINDEX: lo is 1 in every network namespace


class RouteType(StrEnum):
    UNICAST = "unicast"
    LOCAL = "local"


@dataclass(frozen=True)
class PathView:
    """What planning needs to know of one path (config + runtime)."""

    name: str
    index: int  # position in the config: table = path_table_base + index
    device: str | None
    ifindex: int | None
    address: str | None
    gateway: str | None  # None: point-to-point link, routes go 'dev X'
    state: State
    link_ok: bool
    backup: bool  # forced or degraded
    weight_kbit: int | None = None
    congctl: str | None = None  # for subflows joining over this path; None: the plan's


@dataclass(frozen=True)
class Hop:
    ifindex: int
    gateway: str | None
    weight: int = 1


@dataclass(frozen=True)
class RouteWant:
    table: int
    dst: str  # "default" or an address
    prefixlen: int
    hops: tuple[Hop, ...]
    type: RouteType = RouteType.UNICAST
    congctl: str | None = None  # TCP congestion control of connections using the route


@dataclass(frozen=True)
class RuleWant:
    priority: int
    table: int
    src: str | None = None
    suppress_prefixlength: int | None = None
    fwmark: int | None = None
    fwmask: int | None = None


@dataclass(frozen=True)
class TproxyWant:
    """The policy routing tproxy needs: marked packets → a table that delivers them locally."""

    mark: int
    mask: int
    table: int


@dataclass(frozen=True)
class EndpointWant:
    address: str
    ifindex: int
    backup: bool


@dataclass(frozen=True)
class Plan:
    endpoints: tuple[EndpointWant, ...]
    routes: tuple[RouteWant, ...]
    rules: tuple[RuleWant, ...]
    carriers: tuple[str, ...]  # names of the paths carrying traffic
    fail_open: bool  # no path is up: every path with a link is used anyway

    def tables(self) -> set[int]:
        return {r.table for r in self.routes}


def _weights(paths: Sequence[PathView]) -> list[int]:
    rates = [p.weight_kbit for p in paths]
    if not any(rates) or len(paths) == 1:
        return [1] * len(paths)
    known = [r for r in rates if r]
    fill = sum(known) // len(known)  # a path without a declared rate counts as average
    vals = [r or fill for r in rates]
    top = max(vals)
    return [max(1, round(v * ECMP_MAX_WEIGHT / top)) for v in vals]


def plan(paths: Sequence[PathView], servers: Sequence[str], *, route_table: int,
         path_table_base: int, rule_priority: int, default_route: bool = True,
         tproxy: TproxyWant | None = None, congctl: str | None = None) -> Plan:
    """The routes, rules and endpoints that `paths` call for.  `servers`: IPv4 addresses.

    `tproxy`: the data plane's policy routing (rule first in our range, local route);
    `congctl`: congestion control put on every unicast route (None or "": the system's).
    """
    cc = congctl or None
    usable = [p for p in paths if p.address and p.ifindex and p.link_ok
              and p.state is not State.DISABLED]
    live = [p for p in usable if p.state.live]
    fail_open = not live and bool(usable)
    if fail_open:
        live = usable
    active = [p for p in live if not p.backup] or live

    rules: list[RuleWant] = []
    routes: list[RouteWant] = []
    if tproxy is not None:
        rules.append(RuleWant(rule_priority + RULE_TPROXY_OFFSET, tproxy.table,
                              fwmark=tproxy.mark, fwmask=tproxy.mask))
        routes.append(RouteWant(tproxy.table, "default", 0, (Hop(LOOPBACK_IFINDEX, None),),
                                type=RouteType.LOCAL))
    rules.append(RuleWant(rule_priority + RULE_MAIN_OFFSET, 254, suppress_prefixlength=0))
    for p in paths:
        if not (p.address and p.ifindex):
            continue
        table = path_table_base + p.index
        rules.append(RuleWant(rule_priority + RULE_PATH_OFFSET + p.index, table, src=p.address))
        routes.append(RouteWant(table, "default", 0, (Hop(p.ifindex, p.gateway),),
                                congctl=p.congctl or cc))
    rules.append(RuleWant(rule_priority + RULE_TABLE_OFFSET, route_table))

    if active:
        hops = tuple(Hop(p.ifindex or 0, p.gateway, w)
                     for p, w in zip(active, _weights(active), strict=True))
        for s in servers:
            routes.append(RouteWant(route_table, s, 32, hops, congctl=cc))
        if default_route:
            first = active[0]
            routes.append(RouteWant(route_table, "default", 0,
                                    (Hop(first.ifindex or 0, first.gateway),), congctl=cc))

    endpoints = tuple(EndpointWant(p.address or "", p.ifindex or 0, p.backup) for p in live)
    return Plan(endpoints=endpoints, routes=tuple(routes), rules=tuple(rules),
                carriers=tuple(p.name for p in live), fail_open=fail_open)
