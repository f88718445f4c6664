"""Make the kernel hold what a Plan says, touching only what is ours.

Ours: ip rules at priorities [rule_priority, rule_priority + 100), routes in route_table and in
the path tables, and MPTCP endpoints whose address we added or adopted (a path's address), in
IPv4 and IPv6 alike.  Each apply() reads the current state, changes the difference and returns
what it changed; a failing operation is logged and reported, the others still run.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bonding.core.plan import HOST_PREFIX, V4, V6, Hop, Plan, RouteType, RouteWant, RuleWant
from bonding.netlink.core import NetlinkError
from bonding.netlink.mptcp import EndpointFlag, MptcpPM
from bonding.netlink.rtnl import (
    AF_INET,
    AF_INET6,
    RTN_LOCAL,
    RTN_UNICAST,
    Nexthop,
    Route,
    Rtnl,
    Rule,
)

log = logging.getLogger(__name__)

RULE_SPAN = 100
KERNEL_TABLES = frozenset({0, 253, 254, 255})  # unspec, default, main, local: never ours
RTPROT_BONDING = 200  # routes we install carry this protocol id (shown as 'proto 200')
RTN_OF = {RouteType.UNICAST: RTN_UNICAST, RouteType.LOCAL: RTN_LOCAL}
AF = {V4: AF_INET, V6: AF_INET6}
T = TypeVar("T")


@dataclass
class Outcome:
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _hops_of(route: Route) -> tuple[Hop, ...]:
    weights = len(route.nexthops) > 1
    return tuple(Hop(n.ifindex, n.gateway, n.weight if weights else 1) for n in route.nexthops)


def _same(w: RouteWant, r: Route) -> bool:
    """The route in the kernel is what we want: type, congestion control and next hops."""
    return (r.type == RTN_OF[w.type] and (r.congctl or None) == (w.congctl or None)
            and _norm(w.hops) == _norm(_hops_of(r)))


def _v6(family: int) -> str:
    return " (IPv6)" if family == V6 else ""


def _norm(hops: Iterable[Hop]) -> tuple[Hop, ...]:
    hops = tuple(hops)
    if len(hops) == 1:
        return (Hop(hops[0].ifindex, hops[0].gateway, 1),)
    return tuple(sorted(hops, key=lambda h: (h.ifindex, h.gateway or "")))


class Reconciler:
    def __init__(self, rtnl: Rtnl, pm: MptcpPM | None, state_file: Path | None = None) -> None:
        self.rtnl = rtnl
        self.pm = pm
        self.state_file = state_file
        self.owned: set[str] = set()
        self.endpoint_ids: dict[str, int] = {}
        self.tables: set[int] = set()
        if state_file is not None:
            try:
                data = json.loads(state_file.read_text())
                self.owned = set(data.get("endpoints", []))
                self.tables = set(data.get("tables", []))
            except (FileNotFoundError, ValueError):
                pass

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoints": sorted(self.owned), "tables": sorted(self.tables)}))
        tmp.replace(self.state_file)

    def apply(self, plan: Plan, *, rule_priority: int, tables: Iterable[int],
              adopt: Iterable[str] = ()) -> Outcome:
        """Bring rules, routes and endpoints to the plan.

        `tables`: every table that is ours (route_table and the path tables in use); `adopt`:
        addresses whose existing endpoints become ours (the paths' addresses).
        """
        out = Outcome()
        self._rules(plan.rules, rule_priority, out)
        self._routes(plan.routes, set(tables), out)
        if self.pm is not None:
            self._endpoints(plan, set(adopt), out)
        self._save()
        return out

    def _try(self, out: Outcome, what: str, fn: object, *args: object, **kw: object) -> bool:
        try:
            fn(*args, **kw)  # type: ignore[operator]
        except (NetlinkError, OSError) as e:
            msg = f"{what}: {e}"
            log.warning("%s", msg)
            out.errors.append(msg)
            return False
        out.changes.append(what)
        return True

    def _dump(self, what: str, family: int, out: Outcome, dump: Callable[[int], list[T]],
              ) -> list[T] | None:
        """A rule or route dump of one family; None (reported) when the kernel refuses it.
        A kernel without IPv6 has nothing of ours in IPv6: an empty list."""
        try:
            return dump(AF[family])
        except NetlinkError as e:
            if family == V6 and e.errno == errno.EAFNOSUPPORT:
                return []
            out.errors.append(f"read {what} (IPv{family}): {e}")
            return None

    # --- rules ----------------------------------------------------------------------------------
    def _rules(self, want: Iterable[RuleWant], base: int, out: Outcome) -> None:
        wanted = set(want)
        for family in (V4, V6):
            have = self._dump("rules", family, out, self.rtnl.rules)
            if have is None:
                continue
            mine = [r for r in have
                    if r.family == AF[family] and base <= r.priority < base + RULE_SPAN]
            self._family_rules(family, [w for w in wanted if w.family == family], mine, out)

    def _family_rules(self, family: int, wanted: list[RuleWant], have: list[Rule],
                      out: Outcome) -> None:
        host = HOST_PREFIX[family]
        present = set()
        for r in have:
            key = RuleWant(r.priority, r.table, r.src if r.src_len == host else None,
                           r.suppress_prefixlength, r.fwmark, r.fwmask, family, r.iif)
            simple = r.dst is None and r.oif is None and (r.src is None or r.src_len == host)
            if key in wanted and simple and key not in present:
                present.add(key)
                continue
            self._try(out, f"delete rule {r.priority} lookup {r.table}{_v6(family)}",
                      self.rtnl.rule_del, r.priority, r.table, src=r.src,
                      src_len=r.src_len if r.src else None, iif=r.iif, fwmark=r.fwmark,
                      fwmask=r.fwmask, suppress_prefixlength=r.suppress_prefixlength,
                      family=AF[family], dst=r.dst, dst_len=r.dst_len if r.dst else None,
                      oif=r.oif, missing_ok=True)
        for w in sorted(set(wanted) - present, key=lambda x: x.priority):
            src = f" from {w.src}" if w.src else ""
            if w.iif:
                src += f" iif {w.iif}"
            if w.fwmark is not None:
                src += f" fwmark {w.fwmark:#x}/{(w.fwmask or 0xFFFFFFFF):#x}"
            self._try(out, f"add rule {w.priority}{src} lookup {w.table}{_v6(family)}",
                      self.rtnl.rule_add, w.priority, w.table, src=w.src,
                      src_len=host if w.src else None, iif=w.iif, fwmark=w.fwmark,
                      fwmask=w.fwmask, suppress_prefixlength=w.suppress_prefixlength,
                      family=AF[family], exist_ok=True)

    # --- routes ---------------------------------------------------------------------------------
    def _routes(self, want: Iterable[RouteWant], tables: set[int], out: Outcome) -> None:
        by_key = {(w.family, w.table, w.dst, w.prefixlen): w for w in want}
        tables |= {w.table for w in by_key.values()}
        if tables & KERNEL_TABLES:
            bad = sorted(tables & KERNEL_TABLES)
            out.errors.append(f"refusing to manage the kernel's tables {bad}")
        ours = (tables | self.tables) - KERNEL_TABLES
        for family in (V4, V6):
            dump = self._dump("routes", family, out, self.rtnl.route_dump)
            if dump is None:
                continue
            for table in sorted(ours):
                self._table(family, table, [r for r in dump if r.table == table], by_key, out)
        self.tables = {w.table for w in by_key.values()}

    def _table(self, family: int, table: int, have: list[Route],
               by_key: dict[tuple[int, int, str, int], RouteWant], out: Outcome) -> None:
        seen = set()
        for r in have:
            key = (family, table, r.dst, r.prefixlen)
            w = by_key.get(key)
            if w is not None and _same(w, r):
                seen.add(key)
                continue
            if w is None:
                self._try(out, f"delete route {r.dst}/{r.prefixlen} table {table}",
                          self.rtnl.route_del, table, r.dst, r.prefixlen, r.metric,
                          family=AF[family], tos=r.tos)
        for key, w in by_key.items():
            if key[:2] != (family, table) or key in seen:
                continue
            hops = [Nexthop(h.gateway, h.ifindex, h.weight) for h in w.hops]
            via = ", ".join(f"{h.gateway or 'dev'}@{h.ifindex}" for h in w.hops)
            kind = "" if w.type is RouteType.UNICAST else f"{w.type} "
            cc = f" congctl {w.congctl}" if w.congctl else ""
            self._try(out, f"route {kind}{w.dst}/{w.prefixlen} table {table}{_v6(family)} "
                      f"via {via}{cc}", self.rtnl.route_replace, table, w.dst, w.prefixlen,
                      hops, protocol=RTPROT_BONDING, rtype=RTN_OF[w.type], family=AF[family],
                      congctl=w.congctl or None)

    # --- endpoints ------------------------------------------------------------------------------
    def _endpoints(self, plan: Plan, adopt: set[str], out: Outcome) -> None:
        assert self.pm is not None
        try:
            have = self.pm.endpoints()
        except NetlinkError as e:
            out.errors.append(f"read mptcp endpoints: {e}")
            return
        want = {e.address: e for e in plan.endpoints}
        self.owned |= adopt & {e.address for e in have}
        ids: dict[str, int] = {}
        for ep in have:
            if ep.address not in self.owned and ep.address not in want:
                continue  # not ours: never touched
            w = want.get(ep.address)
            if w is None:
                if self._try(out, f"delete mptcp endpoint {ep.id} ({ep.address})",
                             self.pm.endpoint_del, ep.id):
                    self.owned.discard(ep.address)
                continue
            self.owned.add(ep.address)
            flags = EndpointFlag.SUBFLOW | (EndpointFlag.BACKUP if w.backup else 0)
            if not ep.flags & EndpointFlag.SUBFLOW or ep.ifindex not in (None, 0, w.ifindex):
                # Wrong kind of endpoint for our address: replace it.
                self._try(out, f"delete mptcp endpoint {ep.id} ({ep.address}) to re-add",
                          self.pm.endpoint_del, ep.id)
                continue
            if bool(ep.flags & EndpointFlag.BACKUP) != w.backup:
                self._try(out, f"mptcp endpoint {ep.id} ({ep.address}) backup={int(w.backup)}",
                          self.pm.endpoint_set_flags, ep.id, flags)
            ids[ep.address] = ep.id
        for addr, w in want.items():
            if addr in ids:
                continue
            flags = EndpointFlag.SUBFLOW | (EndpointFlag.BACKUP if w.backup else 0)
            try:
                ids[addr] = self.pm.endpoint_add(addr, flags, ifindex=w.ifindex)
            except NetlinkError as e:
                if e.errno == errno.EEXIST:
                    continue
                msg = f"add mptcp endpoint {addr}: {e}"
                log.warning("%s", msg)
                out.errors.append(msg)
                continue
            self.owned.add(addr)
            out.changes.append(f"add mptcp endpoint {ids[addr]} ({addr}"
                               f"{', backup' if w.backup else ''})")
        self.endpoint_ids = ids

    def cleanup(self, rule_priority: int, tables: Iterable[int]) -> Outcome:
        """Remove all that is ours (shutdown): rules, routes, endpoints."""
        empty = Plan(endpoints=(), routes=(), rules=(), carriers=(), fail_open=False)
        return self.apply(empty, rule_priority=rule_priority, tables=tables)

    def set_limits(self, subflows: int, add_addr_accepted: int) -> str | None:
        if self.pm is None:
            return "MPTCP path manager not available"
        try:
            self.pm.set_limits(subflows=subflows, add_addr_accepted=add_addr_accepted)
        except NetlinkError as e:
            return f"set mptcp limits: {e}"
        return None
