"""The reconciler (bonding.actions) against a kernel held in memory: IPv4 and IPv6 side by side.

The fake keeps rules, routes and endpoints as the kernel reports them (canonical addresses,
IPv6 route metric 1024, host prefix lengths) so that what apply() reads back is compared as it
would be on a real router.  The lab tests do the same against the real kernel.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bonding.actions import Reconciler
from bonding.core.health import State
from bonding.core.plan import FamilyView, PathView, TproxyWant, plan
from bonding.netlink.core import NetlinkError
from bonding.netlink.mptcp import Endpoint, EndpointFlag
from bonding.netlink.rtnl import RTN_LOCAL, RTN_UNICAST, Nexthop, Route, Rule

AF4, AF6 = socket.AF_INET, socket.AF_INET6


class FakeRtnl:
    def __init__(self) -> None:
        self.rule_list: list[Rule] = []
        self.route_list: list[Route] = []
        self.calls: list[str] = []

    def rules(self, family: int = AF4) -> list[Rule]:
        return [r for r in self.rule_list if r.family == family]

    def rule_add(self, priority: int, table: int, src: str | None = None,
                 src_len: int | None = None, iif: str | None = None, fwmark: int | None = None,
                 fwmask: int | None = None, suppress_prefixlength: int | None = None, *,
                 family: int = AF4, exist_ok: bool = False, **_: Any) -> None:
        if src is not None:
            family = AF6 if ":" in src else AF4
        rule = Rule(priority, table, family, src, src_len or 0, iif=iif, fwmark=fwmark,
                    fwmask=None if fwmark is None else (fwmask or 0xFFFFFFFF),
                    suppress_prefixlength=suppress_prefixlength)
        self.calls.append(f"rule+ {family} {priority}")
        self.rule_list.append(rule)

    def rule_del(self, priority: int, table: int, src: str | None = None, *_: Any,
                 family: int = AF4, iif: str | None = None, missing_ok: bool = False,
                 **__: Any) -> None:
        self.calls.append(f"rule- {family} {priority}")
        for r in self.rule_list:
            if (r.family, r.priority, r.table, r.src, r.iif) == (family, priority, table, src,
                                                                  iif):
                self.rule_list.remove(r)
                return
        if not missing_ok:
            raise NetlinkError(errno.ENOENT, "delete rule")

    def route_dump(self, family: int = AF4, operation: str = "") -> list[Route]:
        return [r for r in self.route_list if r.family == family]

    def route_replace(self, table: int, dst: str, prefixlen: int, nexthops: Sequence[Nexthop],
                      metric: int | None = None, protocol: int = 4, *, rtype: int = RTN_UNICAST,
                      family: int | None = None, congctl: str | None = None,
                      **_: Any) -> None:
        assert family in (AF4, AF6)
        self._drop(family, table, dst, prefixlen)
        weights = len(nexthops) > 1
        hops = tuple(Nexthop(h.gateway, h.ifindex, h.weight if weights else 1) for h in nexthops)
        self.calls.append(f"route {family} {table} {dst}")
        self.route_list.append(Route(table, dst, prefixlen, hops,
                                     1024 if family == AF6 else None, protocol, 0, rtype,
                                     family=family, congctl=congctl))

    def route_del(self, table: int, dst: str, prefixlen: int, metric: int | None = None, *,
                  family: int | None = None, tos: int = 0) -> None:
        self.calls.append(f"route- {family} {table} {dst}")
        assert family is not None
        self._drop(family, table, dst, prefixlen)

    def _drop(self, family: int, table: int, dst: str, prefixlen: int) -> None:
        self.route_list = [r for r in self.route_list
                           if (r.family, r.table, r.dst, r.prefixlen) != (family, table, dst,
                                                                          prefixlen)]


class FakePM:
    def __init__(self) -> None:
        self.eps: list[Endpoint] = []
        self.next_id = 1

    def endpoints(self) -> list[Endpoint]:
        return list(self.eps)

    def endpoint_add(self, address: str, flags: EndpointFlag, ifindex: int | None = None,
                     **_: Any) -> int:
        i = self.next_id
        self.next_id += 1
        self.eps.append(Endpoint(i, address, 0, flags, ifindex,
                                 AF6 if ":" in address else AF4))
        return i

    def endpoint_del(self, id: int, address: str | None = None) -> None:
        self.eps = [e for e in self.eps if e.id != id]

    def endpoint_set_flags(self, key: int | str, flags: EndpointFlag, port: int | None = None,
                           ) -> None:
        self.eps = [replace(e, flags=flags) if e.id == key else e for e in self.eps]


def path(i: int, state: State = State.UP, state6: State = State.UP) -> PathView:
    n = i + 1
    return PathView(f"wan{n}", i, f"wan{n}", 10 + i, f"100.64.{n}.2", f"100.64.{n}.1", state,
                    True, False, v6=FamilyView(f"2001:db8:64:{n}::2", f"fe80::{n}", state6, True,
                                               False))


def mkplan(paths: Sequence[PathView]) -> Any:
    return plan(paths, ["203.0.113.10", "2001:db8:203::10"], route_table=200,
                path_table_base=210, rule_priority=1000,
                tproxy=TproxyWant(0xB0, 0xB0, 199, ipv6=True))


TABLES = {199, 200, 210, 211}


def setup() -> tuple[Reconciler, FakeRtnl, FakePM]:
    rtnl, pm = FakeRtnl(), FakePM()
    return Reconciler(rtnl, pm), rtnl, pm  # type: ignore[arg-type]


def test_a_second_apply_changes_nothing_in_either_family() -> None:
    rec, rtnl, pm = setup()
    out = rec.apply(mkplan([path(0), path(1)]), rule_priority=1000, tables=TABLES,
                    adopt=["100.64.1.2", "2001:db8:64:1::2"])
    assert out.errors == []
    assert {r.family for r in rtnl.rule_list} == {AF4, AF6}
    six = sorted((r.priority, r.table, r.src, r.iif, r.fwmark) for r in rtnl.rules(AF6))
    assert six == [(1000, 199, None, None, 0xB0), (1001, 254, None, None, None),
                   (1002, 210, "2001:db8:64:1::2", None, None),
                   (1003, 211, "2001:db8:64:2::2", None, None), (1090, 200, None, "lo", None)]
    assert sorted(e.address for e in pm.eps) == ["100.64.1.2", "100.64.2.2",
                                                 "2001:db8:64:1::2", "2001:db8:64:2::2"]
    local6 = [r for r in rtnl.route_list if r.family == AF6 and r.table == 199]
    assert [(r.dst, r.type) for r in local6] == [("default", RTN_LOCAL)]
    rtnl.calls.clear()
    again = rec.apply(mkplan([path(0), path(1)]), rule_priority=1000, tables=TABLES)
    assert (again.changes, again.errors, rtnl.calls) == ([], [], [])


def test_ipv6_down_on_one_path_touches_only_its_ipv6() -> None:
    rec, rtnl, pm = setup()
    rec.apply(mkplan([path(0), path(1)]), rule_priority=1000, tables=TABLES)
    rtnl.calls.clear()
    out = rec.apply(mkplan([path(0), path(1, State.UP, State.DOWN)]), rule_priority=1000,
                    tables=TABLES)
    assert out.errors == []
    eps = [c for c in out.changes if "mptcp endpoint" in c]
    assert eps == ["delete mptcp endpoint 4 (2001:db8:64:2::2)"]
    assert sorted(e.address for e in pm.eps) == ["100.64.1.2", "100.64.2.2", "2001:db8:64:1::2"]
    assert all(c.startswith("route 10 ") for c in rtnl.calls), rtnl.calls  # IPv6 routes only
    server6 = next(r for r in rtnl.route_list if r.dst == "2001:db8:203::10")
    assert [h.ifindex for h in server6.nexthops] == [10]
    server4 = next(r for r in rtnl.route_list if r.dst == "203.0.113.10")
    assert [h.ifindex for h in server4.nexthops] == [10, 11]


def test_cleanup_removes_ours_in_both_families_and_nothing_else() -> None:
    rec, rtnl, pm = setup()
    foreign_rule = Rule(1050, 300, AF6, "2001:db8::99", 128)  # in our range, but ...
    other_rule = Rule(500, 100, AF6, "2001:db8::98", 128)
    other_route = Route(254, "default", 0, (Nexthop("fe80::9", 2),), 1024, 9, 0, RTN_UNICAST,
                        family=AF6)
    rtnl.rule_list += [other_rule]
    rtnl.route_list += [other_route]
    pm.eps.append(Endpoint(99, "2001:db8::99", 0, EndpointFlag.SIGNAL, None, AF6))
    pm.next_id = 100
    rec.apply(mkplan([path(0)]), rule_priority=1000, tables=TABLES)
    rtnl.rule_list.append(foreign_rule)
    out = rec.cleanup(1000, TABLES)
    assert out.errors == []
    assert rtnl.rule_list == [other_rule]  # a rule at our priorities is ours to remove
    assert rtnl.route_list == [other_route]
    assert [e.id for e in pm.eps] == [99]  # never an endpoint that is not a path's
