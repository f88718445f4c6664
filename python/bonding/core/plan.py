"""What the kernel should hold, computed from the paths' state: a pure function.

The reconciler (bonding.actions) compares this plan with what the kernel has and changes only
the difference, and only what is ours: endpoints whose address is a path's address, routes in our
tables, rules at our priorities.

Routing layout, with P = rule_priority, for IPv4 and (when a path has an IPv6 address) IPv6
alike, each family with its own rules, routes and endpoints:
- P:        fwmark <tproxy_mark>/<tproxy_mask> lookup <tproxy_table>   (only with a data plane,
                                                   and for IPv6 only when LAN IPv6 is proxied:
                                                   packets nftables handed to the local proxy
                                                   by tproxy are delivered locally)
- P+1:      lookup main suppress_prefixlength 0   (the main table for all but default routes:
                                                   LAN, connected and netifd's specific routes)
- P+2+i:    from <path i address> lookup <path table i>   (each subflow and probe leaves by its
                                                           own link)
- P+40+i:   fwmark <pin mark of path i>/<pin mask> lookup <path table i>   (IPv4, only with
                                                   `config rule` sections: LAN traffic a rule
                                                   pins to path i, bonding.dataplane.pinning;
                                                   after P+1, so LAN and other specific routes
                                                   of the main table still win)
- P+90:     lookup <route_table>                  (our default route and the server routes;
                                                   IPv6: `iif lo`, the router's own traffic)
tproxy_table: local default dev lo (IPv4), local ::/0 dev lo (IPv6).
Path table i: default via the path's gateway dev its device (kept while the path has an
address, also when it is down, so probes can see it come back); IPv6: via its IPv6 gateway
(often link-local), in the same table number.
Role-backup paths (bonding.core.roles) stand by while a bond path is up in the family: they
keep their rule and path table (so their probes leave by their link) but get no endpoint and
no server route.
route_table: the servers over every live non-backup path (ECMP, weighted by declared upload
rate), so no single link is the master; the router's own default route on the first live path.
The IPv6 servers go over the paths whose IPv6 is live.
Every unicast route carries `congctl` when a congestion control is asked for: the kernel then
gives it to each TCP connection (MPTCP subflow) that leaves by that route, whatever the
application (the proxy) chose.  A path's own congestion control goes on its table (the
subflows that join over it); route_table (the first subflow, whichever link ECMP picks) keeps
the global one.

Why `iif lo` on the IPv6 table rule: IPv6 has no NAT.  A LAN host's IPv6 packet that is not
proxied must leave by the link whose ISP delegated its prefix, which the main table knows
(OpenWrt's source-specific default routes); only the router's own IPv6 traffic (the proxy's
connections to the server, probes, opkg) is steered by route_table.  IPv4 keeps the rule without
it: the LAN's IPv4 is masqueraded on every link.

Each family has its own state: a path whose IPv6 is dead keeps its IPv4 endpoint and routes, and
the other way round.  `fail_open` is per family too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bonding.core.health import State
from bonding.core.roles import Member, Role, standby_names

RULE_TPROXY_OFFSET = 0
RULE_MAIN_OFFSET = 1
RULE_PATH_OFFSET = 2
RULE_PIN_OFFSET = 40
RULE_TABLE_OFFSET = 90
ECMP_MAX_WEIGHT = 256
LOOPBACK_IFINDEX = 1  # the kernel's LOOPBACK_IFINDEX: lo is 1 in every network namespace
MAIN_TABLE = 254
V4 = 4
V6 = 6
HOST_PREFIX = {V4: 32, V6: 128}


class RouteType(StrEnum):
    UNICAST = "unicast"
    LOCAL = "local"


@dataclass(frozen=True)
class FamilyView:
    """One address family of a path: its address, gateway and health."""

    address: str
    gateway: str | None  # None: point-to-point link, routes go 'dev X'
    state: State
    link_ok: bool  # carrier, and the address is usable
    backup: bool  # forced or degraded (in this family)


@dataclass(frozen=True)
class PathView:
    """What planning needs to know of one path (config + runtime).

    The IPv4 side is given flat (address, gateway, state, link_ok, backup); the IPv6 side, when
    the path has a usable IPv6 address, in `v6`."""

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
    v6: FamilyView | None = None
    role: Role = Role.BOND  # bonding.core.roles: a backup stands by while a bond path is up
    rtt_ms: float | None = None  # the IPv4 probes' smoothed RTT (realtime takes the lowest)
    mptcp_blocked: bool = False  # its ISP blocks MPTCP (bonding.core.mptcpblock): no endpoint,
    # no first subflow; its table, pinned and native traffic stay

    def family(self, family: int) -> FamilyView | None:
        if family == V6:
            return self.v6
        if self.address is None:
            return None
        return FamilyView(self.address, self.gateway, self.state, self.link_ok, self.backup)


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
    family: int = V4


@dataclass(frozen=True)
class RuleWant:
    priority: int
    table: int
    src: str | None = None
    suppress_prefixlength: int | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    family: int = V4
    iif: str | None = None


@dataclass(frozen=True)
class TproxyWant:
    """The policy routing tproxy needs: marked packets → a table that delivers them locally.

    `ipv6`: LAN IPv6 is proxied too (the same rule and a local route for IPv6)."""

    mark: int
    mask: int
    table: int
    ipv6: bool = False


@dataclass(frozen=True)
class PinMarks:
    """The fwmarks of pinned traffic (bonding.dataplane.pinning): a field of MARK_BITS bits at
    `shift`, above the tproxy mask and the proxy's own bit.  Path i: value i + 1, routed by path
    table i; ANY: native by the default route (no rule of its own)."""

    shift: int

    BITS = 6
    ANY = (1 << BITS) - 1

    @classmethod
    def above(cls, tproxy_mask: int) -> PinMarks:
        return cls(tproxy_mask.bit_length() + 1)

    @property
    def mask(self) -> int:
        return self.ANY << self.shift

    def path(self, index: int) -> int:
        return (index + 1) << self.shift

    @property
    def any(self) -> int:
        return self.ANY << self.shift


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
    carriers: tuple[str, ...]  # names of the paths carrying IPv4 traffic
    fail_open: bool  # no path is up (IPv4): every path with a link is used anyway
    carriers6: tuple[str, ...] = ()  # names of the paths carrying IPv6 traffic
    fail_open6: bool = False  # the same for IPv6
    standby: tuple[str, ...] = ()  # role-backup paths standing by (IPv4)
    standby6: tuple[str, ...] = ()  # the same for IPv6

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


@dataclass(frozen=True)
class _FamilyPlan:
    endpoints: tuple[EndpointWant, ...]
    routes: tuple[RouteWant, ...]
    rules: tuple[RuleWant, ...]
    carriers: tuple[str, ...]
    fail_open: bool
    standby: tuple[str, ...] = ()


def _family(family: int, paths: Sequence[PathView], servers: Sequence[str], *,
            route_table: int, path_table_base: int, rule_priority: int, default_route: bool,
            tproxy: TproxyWant | None, cc: str | None) -> _FamilyPlan:
    """Rules, routes and endpoints of one address family."""
    views = [(p, f) for p in paths if (f := p.family(family)) is not None and p.ifindex]
    usable = [(p, f) for p, f in views if f.link_ok and f.state is not State.DISABLED]
    live = [(p, f) for p, f in usable if f.state.live]
    fail_open = not live and bool(usable)
    if fail_open:
        live = usable
    resting = standby_names([Member(p.name, p.role, f.state) for p, f in live])
    live = [(p, f) for p, f in live if p.name not in resting]
    # first subflows (the server routes) and endpoints: not through a path whose ISP blocks
    # MPTCP, unless no other is live
    bondable = [(p, f) for p, f in live if not p.mptcp_blocked] or live
    active = [(p, f) for p, f in bondable if not f.backup] or bondable

    rules: list[RuleWant] = []
    routes: list[RouteWant] = []
    if tproxy is not None:
        rules.append(RuleWant(rule_priority + RULE_TPROXY_OFFSET, tproxy.table,
                              fwmark=tproxy.mark, fwmask=tproxy.mask, family=family))
        routes.append(RouteWant(tproxy.table, "default", 0, (Hop(LOOPBACK_IFINDEX, None),),
                                type=RouteType.LOCAL, family=family))
    rules.append(RuleWant(rule_priority + RULE_MAIN_OFFSET, MAIN_TABLE, suppress_prefixlength=0,
                          family=family))
    for p, f in views:
        table = path_table_base + p.index
        rules.append(RuleWant(rule_priority + RULE_PATH_OFFSET + p.index, table, src=f.address,
                              family=family))
        routes.append(RouteWant(table, "default", 0, (Hop(p.ifindex or 0, f.gateway),),
                                congctl=p.congctl or cc, family=family))
    rules.append(RuleWant(rule_priority + RULE_TABLE_OFFSET, route_table, family=family,
                          iif="lo" if family == V6 else None))

    if active:
        hops = tuple(Hop(p.ifindex or 0, f.gateway, w)
                     for (p, f), w in zip(active, _weights([p for p, _ in active]), strict=True))
        for s in servers:
            routes.append(RouteWant(route_table, s, HOST_PREFIX[family], hops, congctl=cc,
                                    family=family))
        if default_route:
            first, ff = active[0]
            routes.append(RouteWant(route_table, "default", 0,
                                    (Hop(first.ifindex or 0, ff.gateway),), congctl=cc,
                                    family=family))

    endpoints = tuple(EndpointWant(f.address, p.ifindex or 0, f.backup) for p, f in live
                      if not p.mptcp_blocked)
    return _FamilyPlan(endpoints, tuple(routes), tuple(rules), tuple(p.name for p, _ in live),
                       fail_open, tuple(p.name for p in paths if p.name in resting))


def plan(paths: Sequence[PathView], servers: Sequence[str], *, route_table: int,
         path_table_base: int, rule_priority: int, default_route: bool = True,
         tproxy: TproxyWant | None = None, congctl: str | None = None,
         pins: PinMarks | None = None) -> Plan:
    """The routes, rules and endpoints that `paths` call for.

    `servers`: the servers' IP addresses (IPv4 and IPv6; each family is routed over the paths
    where that family is live); `tproxy`: the data plane's policy routing (rule first in our
    range, local route); `congctl`: congestion control put on every unicast route (None or "":
    the system's); `pins`: the fwmark rules that send pinned LAN traffic to each path's table.
    The IPv6 part is planned only when a path has an IPv6 address or LAN IPv6
    is proxied: a router without IPv6 gets no IPv6 rule.
    """
    cc = congctl or None
    family = functools.partial(_family, paths=paths, route_table=route_table,
                               path_table_base=path_table_base, rule_priority=rule_priority,
                               default_route=default_route, cc=cc)
    v4 = family(V4, servers=[s for s in servers if ":" not in s], tproxy=tproxy)
    if pins is not None:
        v4 = replace(v4, rules=v4.rules + tuple(
            RuleWant(rule_priority + RULE_PIN_OFFSET + p.index, path_table_base + p.index,
                     fwmark=pins.path(p.index), fwmask=pins.mask)
            for p in paths if p.address is not None and p.ifindex))
    tproxy6 = tproxy if tproxy is not None and tproxy.ipv6 else None
    if not (tproxy6 or any(p.v6 is not None and p.ifindex for p in paths)):
        return Plan(endpoints=v4.endpoints, routes=v4.routes, rules=v4.rules,
                    carriers=v4.carriers, fail_open=v4.fail_open, standby=v4.standby)
    v6 = family(V6, servers=[s for s in servers if ":" in s], tproxy=tproxy6)
    return Plan(endpoints=v4.endpoints + v6.endpoints, routes=v4.routes + v6.routes,
                rules=v4.rules + v6.rules, carriers=v4.carriers, fail_open=v4.fail_open,
                carriers6=v6.carriers, fail_open6=v6.fail_open, standby=v4.standby,
                standby6=v6.standby)
