"""Route/rule/endpoint planning (bonding.core.plan): what the kernel must hold for given paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from bonding.core.health import State
from bonding.core.plan import (
    LOOPBACK_IFINDEX,
    EndpointWant,
    FamilyView,
    Hop,
    PathView,
    Plan,
    RouteType,
    RouteWant,
    RuleWant,
    TproxyWant,
    plan,
)

PRIO = 1000
RT = 200
BASE = 210
SERVERS = ("203.0.113.10",)

UP, DEGRADED, DOWN, DISABLED = State.UP, State.DEGRADED, State.DOWN, State.DISABLED


def pv(index: int, state: State = UP, *, addr: str | None = "", ifindex: int | None = -1,
       gw: str | None = "", link: bool = True, backup: bool = False,
       rate: int | None = None) -> PathView:
    """Path `wan<n>` (n = index+1) on eth<n>, ifindex 10+index, 100.64.<n>.2 via 100.64.<n>.1."""
    n = index + 1
    return PathView(
        name=f"wan{n}", index=index, device=f"eth{n}",
        ifindex=10 + index if ifindex == -1 else ifindex,
        address=f"100.64.{n}.2" if addr == "" else addr,
        gateway=f"100.64.{n}.1" if gw == "" else gw,
        state=state, link_ok=link, backup=backup, weight_kbit=rate)


def mk(paths: Sequence[PathView], servers: Sequence[str] = SERVERS,
       default_route: bool = True, tproxy: TproxyWant | None = None,
       congctl: str | None = None) -> Plan:
    return plan(paths, servers, route_table=RT, path_table_base=BASE, rule_priority=PRIO,
                default_route=default_route, tproxy=tproxy, congctl=congctl)


def server_hops(p: Plan, server: str = SERVERS[0]) -> tuple[Hop, ...] | None:
    r = [r for r in p.routes if r.table == RT and r.dst == server]
    assert len(r) <= 1
    if not r:
        return None
    assert r[0].prefixlen == 32
    return r[0].hops


def default_hops(p: Plan) -> tuple[Hop, ...] | None:
    r = [r for r in p.routes if r.table == RT and r.dst == "default"]
    assert len(r) <= 1
    return r[0].hops if r else None


# --- rules and per-path tables --------------------------------------------------------------------

MAIN_RULE = RuleWant(PRIO + 1, 254, suppress_prefixlength=0)
TABLE_RULE = RuleWant(PRIO + 90, RT)

# (id, paths, rules expected in order)
RULE_CASES: list[tuple[str, list[PathView], list[RuleWant]]] = [
    ("no path", [], [MAIN_RULE, TABLE_RULE]),
    ("three paths, every state", [pv(0), pv(1, DOWN), pv(2, DISABLED)],
     [MAIN_RULE, RuleWant(PRIO + 2, BASE, src="100.64.1.2"),
      RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"),
      RuleWant(PRIO + 4, BASE + 2, src="100.64.3.2"), TABLE_RULE]),
    ("priority follows the config index, not the position", [pv(4), pv(1, DOWN, link=False)],
     [MAIN_RULE, RuleWant(PRIO + 6, BASE + 4, src="100.64.5.2"),
      RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"), TABLE_RULE]),
    ("no address: no rule", [pv(0, DOWN, addr=None), pv(1)],
     [MAIN_RULE, RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"), TABLE_RULE]),
    ("no device yet: no rule", [pv(0, ifindex=None), pv(1)],
     [MAIN_RULE, RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"), TABLE_RULE]),
    ("32 paths fit below the table rule", [pv(i) for i in range(32)],
     [MAIN_RULE, *(RuleWant(PRIO + 2 + i, BASE + i, src=f"100.64.{i + 1}.2")
                   for i in range(32)), TABLE_RULE]),
]


@pytest.mark.parametrize(("paths", "rules"), [c[1:] for c in RULE_CASES],
                         ids=[c[0] for c in RULE_CASES])
def test_rules_layout(paths: list[PathView], rules: list[RuleWant]) -> None:
    p = mk(paths)
    assert list(p.rules) == rules
    assert len({r.priority for r in p.rules}) == len(p.rules)


@pytest.mark.parametrize(("path", "has_table"), [
    (pv(0), True),
    (pv(0, DEGRADED, backup=True), True),
    (pv(0, DOWN), True),
    (pv(0, DOWN, link=False), True),
    (pv(0, DISABLED), True),
    (pv(0, addr=None), False),
    (pv(0, ifindex=None), False),
], ids=["up", "degraded", "down", "no carrier", "disabled", "no address", "no device"])
def test_per_path_table_exists_whenever_the_path_has_an_address(path: PathView,
                                                                has_table: bool) -> None:
    """Also for down paths: their probes leave by their own link and see it come back."""
    p = mk([path])
    want = RouteWant(BASE, "default", 0, (Hop(10, "100.64.1.1"),))
    assert [r for r in p.routes if r.table == BASE] == ([want] if has_table else [])


def test_point_to_point_path_table_has_no_gateway() -> None:
    p = mk([pv(2, gw=None)])
    assert RouteWant(BASE + 2, "default", 0, (Hop(12, None),)) in p.routes
    assert server_hops(p) == (Hop(12, None, 1),)
    assert default_hops(p) == (Hop(12, None),)


def test_tables() -> None:
    p = mk([pv(0), pv(3, DOWN), pv(5, addr=None)])
    assert p.tables() == {RT, BASE, BASE + 3}
    assert mk([pv(0, DOWN, link=False)]).tables() == {BASE}  # nothing usable: no route table


# --- the server routes (ECMP) ---------------------------------------------------------------------

# (id, paths, hops of the server route as (ifindex, weight) or None)
ECMP_CASES: list[tuple[str, list[PathView], list[tuple[int, int]] | None]] = [
    ("one path", [pv(0)], [(10, 1)]),
    ("one path with a rate", [pv(0, rate=5000)], [(10, 1)]),
    ("equal without rates", [pv(0), pv(1), pv(2)], [(10, 1), (11, 1), (12, 1)]),
    ("weights from rates", [pv(0, rate=10000), pv(1, rate=5000)], [(10, 256), (11, 128)]),
    ("fastest gets 256 wherever it is", [pv(0, rate=2000), pv(1, rate=8000)],
     [(10, 64), (11, 256)]),
    ("rounded", [pv(0, rate=3000), pv(1, rate=7000)], [(10, 110), (11, 256)]),
    ("missing rate counts as the average", [pv(0, rate=10000), pv(1), pv(2, rate=2000)],
     [(10, 256), (11, 154), (12, 51)]),
    ("equal rates", [pv(0, rate=4000), pv(1, rate=4000)], [(10, 256), (11, 256)]),
    ("a tiny rate still gets 1", [pv(0, rate=100_000_000), pv(1, rate=1)], [(10, 256), (11, 1)]),
    ("down path left out", [pv(0), pv(1, DOWN), pv(2)], [(10, 1), (12, 1)]),
    ("down path's rate does not count", [pv(0, rate=1000), pv(1, DOWN, rate=100000),
                                         pv(2, rate=500)], [(10, 256), (12, 128)]),
    ("disabled left out", [pv(0, DISABLED), pv(1)], [(11, 1)]),
    ("no carrier left out although up", [pv(0, link=False), pv(1)], [(11, 1)]),
    ("no address left out", [pv(0, addr=None), pv(1)], [(11, 1)]),
    ("no device left out", [pv(0, ifindex=None), pv(1)], [(11, 1)]),
    ("backup left out while a non-backup is live", [pv(0, backup=True), pv(1)], [(11, 1)]),
    ("degraded (backup) left out", [pv(0), pv(1, DEGRADED, backup=True)], [(10, 1)]),
    ("degraded but not backup still used", [pv(0), pv(1, DEGRADED)], [(10, 1), (11, 1)]),
    ("only backups live: all of them", [pv(0, DOWN), pv(1, backup=True),
                                        pv(2, DEGRADED, backup=True)], [(11, 1), (12, 1)]),
    ("only backups live: weighted", [pv(0, DOWN), pv(1, backup=True, rate=1000),
                                     pv(2, backup=True, rate=4000)], [(11, 64), (12, 256)]),
    ("nothing with a link", [pv(0, DOWN, link=False), pv(1, DISABLED)], None),
]


@pytest.mark.parametrize(("paths", "hops"), [c[1:] for c in ECMP_CASES],
                         ids=[c[0] for c in ECMP_CASES])
def test_server_route_ecmp(paths: list[PathView], hops: list[tuple[int, int]] | None) -> None:
    p = mk(paths)
    got = server_hops(p)
    if hops is None:
        assert got is None
        return
    assert got is not None
    assert [(h.ifindex, h.weight) for h in got] == hops
    gws = {v.ifindex: v.gateway for v in paths}
    assert all(h.gateway == gws[h.ifindex] for h in got)
    assert all(1 <= h.weight <= 256 for h in got)


def test_every_server_gets_the_same_route() -> None:
    servers = ["203.0.113.10", "198.51.100.7"]
    p = mk([pv(0), pv(1)], servers)
    routes = [r for r in p.routes if r.table == RT and r.dst != "default"]
    assert [r.dst for r in routes] == servers
    assert routes[0].hops == routes[1].hops == (Hop(10, "100.64.1.1"), Hop(11, "100.64.2.1"))


def test_no_server_no_server_route() -> None:
    p = mk([pv(0)], servers=[])
    assert [r.dst for r in p.routes if r.table == RT] == ["default"]


# --- the router's own default route ---------------------------------------------------------------

# (id, paths, ifindex of the default route or None)
DEFAULT_CASES: list[tuple[str, list[PathView], int | None]] = [
    ("first live path", [pv(0), pv(1)], 10),
    ("first down: the next", [pv(0, DOWN), pv(1), pv(2)], 11),
    ("first is backup: the first non-backup", [pv(0, backup=True), pv(1, DOWN), pv(2)], 12),
    ("first is degraded backup", [pv(0, DEGRADED, backup=True), pv(1)], 11),
    ("only a backup is live", [pv(0, DOWN), pv(1, backup=True)], 11),
    ("first without carrier", [pv(0, link=False), pv(1)], 11),
    ("first disabled", [pv(0, DISABLED), pv(1)], 11),
    ("the fast one is not preferred: order is", [pv(0, rate=1000), pv(1, rate=90000)], 10),
    ("no usable path", [pv(0, DISABLED), pv(1, addr=None)], None),
]


@pytest.mark.parametrize(("paths", "ifindex"), [c[1:] for c in DEFAULT_CASES],
                         ids=[c[0] for c in DEFAULT_CASES])
def test_default_route(paths: list[PathView], ifindex: int | None) -> None:
    got = default_hops(mk(paths))
    if ifindex is None:
        assert got is None
    else:
        assert got == (Hop(ifindex, f"100.64.{ifindex - 9}.1"),)


@pytest.mark.parametrize("paths", [[pv(0), pv(1)], [pv(0, DOWN)]], ids=["live", "fail-open"])
def test_default_route_false_omits_it(paths: list[PathView]) -> None:
    p = mk(paths, default_route=False)
    assert default_hops(p) is None
    assert server_hops(p) is not None
    assert TABLE_RULE in p.rules  # the server routes still need the table


# --- endpoints ------------------------------------------------------------------------------------

# (id, paths, endpoints as (address, ifindex, backup), carriers, fail_open)
EP_CASES: list[tuple[str, list[PathView], list[tuple[str, int, bool]], list[str], bool]] = [
    ("all up", [pv(0), pv(1)],
     [("100.64.1.2", 10, False), ("100.64.2.2", 11, False)], ["wan1", "wan2"], False),
    ("forced backup keeps its endpoint, flagged", [pv(0), pv(1, backup=True)],
     [("100.64.1.2", 10, False), ("100.64.2.2", 11, True)], ["wan1", "wan2"], False),
    ("degraded is flagged backup", [pv(0), pv(1, DEGRADED, backup=True)],
     [("100.64.1.2", 10, False), ("100.64.2.2", 11, True)], ["wan1", "wan2"], False),
    ("down path: no endpoint", [pv(0), pv(1, DOWN)],
     [("100.64.1.2", 10, False)], ["wan1"], False),
    ("disabled: never", [pv(0), pv(1, DISABLED)], [("100.64.1.2", 10, False)], ["wan1"], False),
    ("no address: never", [pv(0), pv(1, addr=None)],
     [("100.64.1.2", 10, False)], ["wan1"], False),
    ("no device: never", [pv(0), pv(1, ifindex=None)],
     [("100.64.1.2", 10, False)], ["wan1"], False),
    ("no carrier: never", [pv(0), pv(1, link=False)],
     [("100.64.1.2", 10, False)], ["wan1"], False),
    ("only a backup live: no fail-open", [pv(0, DOWN), pv(1, backup=True)],
     [("100.64.2.2", 11, True)], ["wan2"], False),
    # fail-open: nothing is live, so every path with a link carries traffic anyway
    ("fail-open: every path with a link", [pv(0, DOWN), pv(1, DOWN, link=False), pv(2, DOWN),
                                          pv(3, DISABLED), pv(4, DOWN, addr=None)],
     [("100.64.1.2", 10, False), ("100.64.3.2", 12, False)], ["wan1", "wan3"], True),
    ("fail-open keeps the backup flag", [pv(0, DOWN, backup=True), pv(1, DOWN)],
     [("100.64.1.2", 10, True), ("100.64.2.2", 11, False)], ["wan1", "wan2"], True),
    ("nothing with a link: nothing, not fail-open",
     [pv(0, DOWN, link=False), pv(1, DISABLED), pv(2, addr=None)], [], [], False),
    ("no path at all", [], [], [], False),
]


@pytest.mark.parametrize(("paths", "eps", "carriers", "fail_open"), [c[1:] for c in EP_CASES],
                         ids=[c[0] for c in EP_CASES])
def test_endpoints_carriers_fail_open(paths: list[PathView], eps: list[tuple[str, int, bool]],
                                      carriers: list[str], fail_open: bool) -> None:
    p = mk(paths)
    assert p.endpoints == tuple(EndpointWant(a, i, b) for a, i, b in eps)
    assert p.carriers == tuple(carriers)
    assert p.fail_open is fail_open


# (id, paths, server route ifindexes, default route ifindex)
FAIL_OPEN_ROUTES: list[tuple[str, list[PathView], list[int], int]] = [
    ("all down", [pv(0, DOWN), pv(1, DOWN)], [10, 11], 10),
    ("down paths without carrier left out", [pv(0, DOWN, link=False), pv(1, DOWN)], [11], 11),
    ("backup left out while a non-backup has a link", [pv(0, DOWN, backup=True), pv(1, DOWN)],
     [11], 11),
    ("only backups", [pv(0, DOWN, backup=True), pv(1, DOWN, backup=True)], [10, 11], 10),
]


@pytest.mark.parametrize(("paths", "servers", "default"), [c[1:] for c in FAIL_OPEN_ROUTES],
                         ids=[c[0] for c in FAIL_OPEN_ROUTES])
def test_fail_open_routes(paths: list[PathView], servers: list[int], default: int) -> None:
    p = mk(paths)
    assert p.fail_open
    hops = server_hops(p)
    assert hops is not None and [h.ifindex for h in hops] == servers
    dh = default_hops(p)
    assert dh is not None and [h.ifindex for h in dh] == [default]


def test_plan_is_deterministic_and_pure() -> None:
    paths = [pv(0, rate=3000), pv(1, DEGRADED, backup=True), pv(2, DOWN)]
    before = list(paths)
    assert mk(paths) == mk(paths)
    assert paths == before


def test_whole_plan_for_a_typical_router() -> None:
    """Two links up (one forced backup), one down without carrier: the complete plan."""
    paths = [pv(0, rate=20000), pv(1, backup=True, rate=5000), pv(2, DOWN, link=False)]
    p = mk(paths)
    assert p == Plan(
        endpoints=(EndpointWant("100.64.1.2", 10, False), EndpointWant("100.64.2.2", 11, True)),
        routes=(
            RouteWant(BASE, "default", 0, (Hop(10, "100.64.1.1"),)),
            RouteWant(BASE + 1, "default", 0, (Hop(11, "100.64.2.1"),)),
            RouteWant(BASE + 2, "default", 0, (Hop(12, "100.64.3.1"),)),
            RouteWant(RT, "203.0.113.10", 32, (Hop(10, "100.64.1.1", 1),)),
            RouteWant(RT, "default", 0, (Hop(10, "100.64.1.1"),)),
        ),
        rules=(MAIN_RULE,
               RuleWant(PRIO + 2, BASE, src="100.64.1.2"),
               RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"),
               RuleWant(PRIO + 4, BASE + 2, src="100.64.3.2"),
               TABLE_RULE),
        carriers=("wan1", "wan2"),
        fail_open=False,
    )


# --- the data plane's policy routing (tproxy) and congestion control ---------------------------

TPROXY = TproxyWant(mark=0xB0, mask=0xB0, table=199)
TPROXY_RULE = RuleWant(PRIO, 199, fwmark=0xB0, fwmask=0xB0)
LOCAL_ROUTE = RouteWant(199, "default", 0, (Hop(LOOPBACK_IFINDEX, None),), type=RouteType.LOCAL)


@pytest.mark.parametrize("paths", [[], [pv(0)], [pv(0, DOWN, link=False)],
                                   [pv(0), pv(1, DEGRADED, backup=True), pv(2, DISABLED)]],
                         ids=["no path", "one up", "none usable", "mixed"])
def test_tproxy_rule_comes_first_and_its_local_route_is_always_there(
        paths: list[PathView]) -> None:
    """Whatever the paths do, marked packets are delivered locally (to the proxy)."""
    p = mk(paths, tproxy=TPROXY)
    assert p.rules[0] == TPROXY_RULE
    assert p.rules[1] == MAIN_RULE
    assert p.rules[-1] == TABLE_RULE
    assert [r for r in p.routes if r.table == 199] == [LOCAL_ROUTE]
    assert 199 in p.tables()
    # the rest of the plan is what it is without a data plane
    without = mk(paths)
    assert p.rules[1:] == without.rules
    assert [r for r in p.routes if r.table != 199] == list(without.routes)
    assert p.endpoints == without.endpoints


def test_no_tproxy_no_fwmark_rule_nor_local_route() -> None:
    p = mk([pv(0)])
    assert all(r.fwmark is None for r in p.rules)
    assert all(r.type is RouteType.UNICAST for r in p.routes)


def test_tproxy_rule_priorities_stay_unique_with_32_paths() -> None:
    p = mk([pv(i) for i in range(32)], tproxy=TPROXY)
    prios = [r.priority for r in p.rules]
    assert prios == sorted(prios) and len(set(prios)) == len(prios)
    assert prios[0] == PRIO and prios[-1] == PRIO + 90


@pytest.mark.parametrize("cc", ["bbr", "cubic"])
def test_congctl_on_every_unicast_route(cc: str) -> None:
    p = mk([pv(0), pv(1), pv(2, DOWN)], tproxy=TPROXY, congctl=cc)
    unicast = [r for r in p.routes if r.type is RouteType.UNICAST]
    assert len(unicast) == 5  # three path tables, the server route, the default route
    assert {r.congctl for r in unicast} == {cc}
    assert [r for r in p.routes if r.type is RouteType.LOCAL] == [LOCAL_ROUTE]


def test_a_path_s_own_congctl_goes_on_its_table_only() -> None:
    lte = PathView(**{**pv(1).__dict__, "congctl": "bbr"})
    p = mk([pv(0), lte], congctl="cubic")
    by_table = {(r.table, r.dst): r.congctl for r in p.routes}
    assert by_table[(BASE, "default")] == "cubic"
    assert by_table[(BASE + 1, "default")] == "bbr"  # subflows joining over the LTE link
    assert by_table[(RT, SERVERS[0])] == "cubic"  # the first subflow: the global one
    assert by_table[(RT, "default")] == "cubic"
    # and with no global one
    p = mk([pv(0), lte])
    assert {(r.table, r.congctl) for r in p.routes} == {
        (BASE, None), (BASE + 1, "bbr"), (RT, None)}


@pytest.mark.parametrize("cc", [None, ""])
def test_no_congctl_means_the_system_default(cc: str | None) -> None:
    assert {r.congctl for r in mk([pv(0)], congctl=cc).routes} == {None}


# --- IPv6 -------------------------------------------------------------------------------------
# Each family is planned on its own: rules, path tables, server routes, the default route and
# endpoints of IPv6 follow the paths' IPv6 state, whatever their IPv4 does.

SERVER6 = "2001:db8:203::10"
MAIN_RULE6 = RuleWant(PRIO + 1, 254, suppress_prefixlength=0, family=6)
TABLE_RULE6 = RuleWant(PRIO + 90, RT, family=6, iif="lo")  # the router's own traffic only


def pv6(index: int, state: State = UP, state6: State = UP, *, link6: bool = True,
        backup6: bool = False, gw6: str | None = "", backup: bool = False,
        rate: int | None = None, addr: str | None = "") -> PathView:
    """pv() with IPv6: 2001:db8:64:<n>::2 via fe80::<n> (a link-local gateway, as RAs give)."""
    n = index + 1
    v6 = FamilyView(f"2001:db8:64:{n}::2", f"fe80::{n}" if gw6 == "" else gw6, state6, link6,
                    backup6)
    return replace(pv(index, state, backup=backup, rate=rate, addr=addr), v6=v6)


def mk6(paths: Sequence[PathView], servers: Sequence[str] = (*SERVERS, SERVER6),
        tproxy: TproxyWant | None = None) -> Plan:
    return mk(paths, servers, tproxy=tproxy)


def routes6(p: Plan, table: int = RT) -> dict[str, tuple[Hop, ...]]:
    return {r.dst: r.hops for r in p.routes if r.family == 6 and r.table == table}


def test_without_ipv6_nothing_of_ipv6_is_planned() -> None:
    """A router whose paths have no IPv6 gets no IPv6 rule (IPv6 stays as the system has it)."""
    p = mk6([pv(0), pv(1)])
    assert {r.family for r in p.rules} == {4} and {r.family for r in p.routes} == {4}
    assert p.carriers6 == () and p.fail_open6 is False
    assert SERVER6 not in {r.dst for r in p.routes}  # no path can reach it


def test_dual_stack_rules_and_path_tables() -> None:
    p = mk6([pv6(0), pv6(1, DOWN, DOWN)])
    assert list(p.rules) == [
        MAIN_RULE, RuleWant(PRIO + 2, BASE, src="100.64.1.2"),
        RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"), TABLE_RULE,
        MAIN_RULE6, RuleWant(PRIO + 2, BASE, src="2001:db8:64:1::2", family=6),
        RuleWant(PRIO + 3, BASE + 1, src="2001:db8:64:2::2", family=6), TABLE_RULE6]
    # the same table numbers hold each family's default route (down paths' too: probes)
    assert [(r.table, r.hops) for r in p.routes if r.family == 6 and r.table != RT] == [
        (BASE, (Hop(10, "fe80::1"),)), (BASE + 1, (Hop(11, "fe80::2"),))]
    assert all(r.prefixlen == 0 for r in p.routes if r.family == 6 and r.dst == "default")


# (id, paths, IPv4 endpoints, IPv6 endpoints, IPv6 server route ifindexes, IPv6 default route
#  ifindex, carriers6, fail_open6)
FAMILY_CASES: list[tuple[str, list[PathView], list[str], list[str], list[int] | None,
                         int | None, list[str], bool]] = [
    ("both families up everywhere", [pv6(0), pv6(1)],
     ["100.64.1.2", "100.64.2.2"], ["2001:db8:64:1::2", "2001:db8:64:2::2"], [10, 11], 10,
     ["wan1", "wan2"], False),
    ("IPv6 dead on wan1: only its IPv6 is taken out", [pv6(0, UP, DOWN), pv6(1)],
     ["100.64.1.2", "100.64.2.2"], ["2001:db8:64:2::2"], [11], 11, ["wan2"], False),
    ("IPv4 dead on wan1: its IPv6 still carries", [pv6(0, DOWN, UP), pv6(1)],
     ["100.64.2.2"], ["2001:db8:64:1::2", "2001:db8:64:2::2"], [10, 11], 10,
     ["wan1", "wan2"], False),
    ("IPv6 degraded on wan1: backup in IPv6 only", [pv6(0, UP, DEGRADED, backup6=True), pv6(1)],
     ["100.64.1.2", "100.64.2.2"], ["2001:db8:64:1::2", "2001:db8:64:2::2"], [11], 11,
     ["wan1", "wan2"], False),
    ("an IPv6-only path", [pv6(0, addr=None), pv(1)],
     ["100.64.2.2"], ["2001:db8:64:1::2"], [10], 10, ["wan1"], False),
    ("IPv6 without a link (address gone)", [pv6(0, link6=False), pv6(1)],
     ["100.64.1.2", "100.64.2.2"], ["2001:db8:64:2::2"], [11], 11, ["wan2"], False),
    ("IPv6 fail-open: none up, every one with a link used", [pv6(0, UP, DOWN),
                                                           pv6(1, UP, DOWN, link6=False),
                                                           pv6(2, UP, DOWN)],
     ["100.64.1.2", "100.64.2.2", "100.64.3.2"], ["2001:db8:64:1::2", "2001:db8:64:3::2"],
     [10, 12], 10, ["wan1", "wan3"], True),
    ("disabled: neither family", [pv6(0, DISABLED, DISABLED), pv6(1)],
     ["100.64.2.2"], ["2001:db8:64:2::2"], [11], 11, ["wan2"], False),
    ("point-to-point IPv6 (no gateway)", [pv6(0, gw6=None)],
     ["100.64.1.2"], ["2001:db8:64:1::2"], [10], 10, ["wan1"], False),
]


@pytest.mark.parametrize(("paths", "eps4", "eps6", "server6", "default6", "carriers6",
                          "fail_open6"), [c[1:] for c in FAMILY_CASES],
                         ids=[c[0] for c in FAMILY_CASES])
def test_each_family_follows_its_own_state(paths: list[PathView], eps4: list[str],
                                           eps6: list[str], server6: list[int] | None,
                                           default6: int | None, carriers6: list[str],
                                           fail_open6: bool) -> None:
    p = mk6(paths)
    assert [e.address for e in p.endpoints if ":" not in e.address] == eps4
    assert [e.address for e in p.endpoints if ":" in e.address] == eps6
    r6 = routes6(p)
    assert [h.ifindex for h in r6.get(SERVER6, ())] == (server6 or [])
    assert [h.ifindex for h in r6.get("default", ())] == ([default6] if default6 else [])
    assert list(p.carriers6) == carriers6 and p.fail_open6 is fail_open6
    # the IPv4 server route follows the IPv4 state alone
    live4 = [v.ifindex for v in paths if v.address and v.state.live] or [
        v.ifindex for v in paths if v.address and v.state is not DISABLED]
    assert [h.ifindex for h in server_hops(p) or ()] == live4


def test_ipv6_endpoints_carry_their_own_backup_flag() -> None:
    p = mk6([pv6(0, UP, DEGRADED, backup6=True), pv6(1, backup=True)])
    flags = {e.address: e.backup for e in p.endpoints}
    assert flags == {"100.64.1.2": False, "100.64.2.2": True, "2001:db8:64:1::2": True,
                     "2001:db8:64:2::2": False}


def test_ipv6_servers_are_routed_over_ipv6_weighted_like_ipv4() -> None:
    p = mk6([pv6(0, rate=10000), pv6(1, rate=5000), pv6(2, UP, DOWN, rate=5000)],
            servers=("203.0.113.10", SERVER6, "2001:db8:203::20"))
    r6 = routes6(p)
    want = (Hop(10, "fe80::1", 256), Hop(11, "fe80::2", 128))
    assert r6[SERVER6] == r6["2001:db8:203::20"] == want
    assert [r.prefixlen for r in p.routes if r.dst == SERVER6] == [128]
    assert "2001:db8:203::20" not in {r.dst for r in p.routes if r.family == 4}


@pytest.mark.parametrize("paths", [[pv6(0)], [], [pv(0)]], ids=["dual", "no path", "IPv4 only"])
def test_tproxy_for_ipv6_when_the_lan_s_ipv6_is_proxied(paths: list[PathView]) -> None:
    """LAN IPv6 handed to the proxy is delivered locally, even with no IPv6 on the paths (the
    bonded connection to the server may well run over IPv4)."""
    tp = TproxyWant(mark=0xB0, mask=0xB0, table=199, ipv6=True)
    p = mk6(paths, tproxy=tp)
    rule6 = RuleWant(PRIO, 199, fwmark=0xB0, fwmask=0xB0, family=6)
    local6 = RouteWant(199, "default", 0, (Hop(LOOPBACK_IFINDEX, None),), type=RouteType.LOCAL,
                       family=6)
    assert rule6 in p.rules and local6 in p.routes
    assert next(r for r in p.rules if r.family == 6) == rule6  # first of the IPv6 rules
    assert TPROXY_RULE in p.rules and LOCAL_ROUTE in p.routes
    # without ipv6 the IPv6 side has no fwmark rule (LAN IPv6 is not handed to the proxy)
    q = mk6(paths, tproxy=TPROXY)
    assert not [r for r in q.rules if r.family == 6 and r.fwmark is not None]
    assert not [r for r in q.routes if r.family == 6 and r.type is RouteType.LOCAL]


def test_whole_plan_for_a_dual_stack_router() -> None:
    """wan1 dual-stack and up; wan2's IPv6 down: the complete plan."""
    p = mk6([pv6(0), pv6(1, UP, DOWN)])
    assert p == Plan(
        endpoints=(EndpointWant("100.64.1.2", 10, False), EndpointWant("100.64.2.2", 11, False),
                   EndpointWant("2001:db8:64:1::2", 10, False)),
        routes=(
            RouteWant(BASE, "default", 0, (Hop(10, "100.64.1.1"),)),
            RouteWant(BASE + 1, "default", 0, (Hop(11, "100.64.2.1"),)),
            RouteWant(RT, "203.0.113.10", 32, (Hop(10, "100.64.1.1", 1), Hop(11, "100.64.2.1", 1))),
            RouteWant(RT, "default", 0, (Hop(10, "100.64.1.1"),)),
            RouteWant(BASE, "default", 0, (Hop(10, "fe80::1"),), family=6),
            RouteWant(BASE + 1, "default", 0, (Hop(11, "fe80::2"),), family=6),
            RouteWant(RT, SERVER6, 128, (Hop(10, "fe80::1", 1),), family=6),
            RouteWant(RT, "default", 0, (Hop(10, "fe80::1"),), family=6),
        ),
        rules=(MAIN_RULE, RuleWant(PRIO + 2, BASE, src="100.64.1.2"),
               RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2"), TABLE_RULE,
               MAIN_RULE6, RuleWant(PRIO + 2, BASE, src="2001:db8:64:1::2", family=6),
               RuleWant(PRIO + 3, BASE + 1, src="2001:db8:64:2::2", family=6), TABLE_RULE6),
        carriers=("wan1", "wan2"),
        fail_open=False,
        carriers6=("wan1",),
        fail_open6=False,
    )


def test_ipv6_rules_and_routes_keep_unique_keys_with_32_paths() -> None:
    p = mk6([pv6(i) for i in range(32)], tproxy=TproxyWant(0xB0, 0xB0, 199, ipv6=True))
    for family in (4, 6):
        prios = [r.priority for r in p.rules if r.family == family]
        assert len(set(prios)) == len(prios) and prios == sorted(prios)
    keys = [(r.family, r.table, r.dst) for r in p.routes]
    assert len(set(keys)) == len(keys)


# --- paths whose ISP blocks MPTCP (bonding.core.mptcpblock) ------------------------------------


def test_an_mptcp_blocked_path_gets_no_endpoint_and_no_first_subflow() -> None:
    from dataclasses import replace
    blocked = replace(pv(1), mptcp_blocked=True)
    p = mk([pv(0), blocked, pv(2)])
    assert [e.address for e in p.endpoints] == ["100.64.1.2", "100.64.3.2"]
    assert server_hops(p) == (Hop(10, "100.64.1.1"), Hop(12, "100.64.3.1"))
    # what needs no MPTCP still goes through it: its own table and rule, and it carries
    assert RouteWant(BASE + 1, "default", 0, (Hop(11, "100.64.2.1"),)) in p.routes
    assert RuleWant(PRIO + 3, BASE + 1, src="100.64.2.2") in p.rules
    assert "wan2" in p.carriers


def test_when_every_live_path_is_mptcp_blocked_they_still_carry_first_subflows() -> None:
    from dataclasses import replace
    p = mk([replace(pv(0), mptcp_blocked=True), pv(1, DOWN)])
    assert p.endpoints == ()
    assert server_hops(p) == (Hop(10, "100.64.1.1"),)
    assert default_hops(p) == (Hop(10, "100.64.1.1"),)
