"""Link roles (bonding.core.roles) and what the plan does with them (bonding.core.plan): a
`backup` path stands by (no endpoint, no server route, its own table kept) while a `bond`
path is up in the family, and carries traffic while none is."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bonding.core.health import State
from bonding.core.plan import FamilyView, PathView, Plan, plan
from bonding.core.roles import Member, Role, standby_names, standings

UP, DEGRADED, DOWN, DISABLED = State.UP, State.DEGRADED, State.DOWN, State.DISABLED
BOND, BACKUP = Role.BOND, Role.BACKUP
SERVER = "203.0.113.10"


# (the paths as (role, state); the names standing by)
CASES: list[tuple[list[tuple[Role, State]], set[str]]] = [
    ([(BOND, UP), (BOND, UP), (BACKUP, UP)], {"wan3"}),
    ([(BOND, UP), (BOND, DOWN), (BACKUP, UP)], {"wan3"}),
    ([(BOND, DOWN), (BOND, DOWN), (BACKUP, UP)], set()),
    ([(BOND, DEGRADED), (BOND, DOWN), (BACKUP, UP)], set()),  # degraded is not up
    ([(BOND, DISABLED), (BACKUP, UP)], set()),
    ([(BACKUP, UP), (BACKUP, UP)], set()),  # only backups: all of them are used
    ([(BOND, UP), (BACKUP, DOWN), (BACKUP, UP)], {"wan2", "wan3"}),
    ([(BOND, UP), (BOND, UP)], set()),
]


@pytest.mark.parametrize(("paths", "resting"), CASES)
def test_standby_names(paths: list[tuple[Role, State]], resting: set[str]) -> None:
    members = [Member(f"wan{i + 1}", r, s) for i, (r, s) in enumerate(paths)]
    assert standby_names(members) == resting


def test_reasons_say_which_bond_paths_are_up() -> None:
    st = standings([Member("wan1", BOND, UP), Member("wan2", BOND, UP),
                    Member("lte", BACKUP, UP)])
    assert st["lte"].standby and st["lte"].reason == "standing by: bond path wan1, wan2 are up"
    assert not st["wan1"].standby
    st = standings([Member("wan1", BOND, DOWN), Member("lte", BACKUP, UP)])
    assert not st["lte"].standby and st["lte"].reason == "in use: no bond path is up"
    st = standings([Member("wan1", BOND, UP), Member("lte", BACKUP, UP)])
    assert st["lte"].reason == "standing by: bond path wan1 is up"


# --- in the plan ---------------------------------------------------------------------------------

def pv(index: int, state: State = UP, role: Role = BOND, *, v6: State | None = None,
       backup: bool = False) -> PathView:
    n = index + 1
    fam6 = (FamilyView(f"2001:db8:{n}::2", "fe80::1", v6, True, False)
            if v6 is not None else None)
    return PathView(name=f"wan{n}", index=index, device=f"eth{n}", ifindex=10 + index,
                    address=f"100.64.{n}.2", gateway=f"100.64.{n}.1", state=state,
                    link_ok=True, backup=backup, role=role, v6=fam6)


def mk(paths: list[PathView]) -> Plan:
    return plan(paths, [SERVER, "2001:db8:203::10"], route_table=200, path_table_base=210,
                rule_priority=1000)


def server_ifindexes(p: Plan, server: str = SERVER) -> set[int]:
    return {h.ifindex for r in p.routes if r.table == 200 and r.dst == server for h in r.hops}


def test_a_backup_path_stands_by_while_a_bond_path_is_up() -> None:
    p = mk([pv(0), pv(1), pv(2, role=BACKUP)])
    assert p.carriers == ("wan1", "wan2") and p.standby == ("wan3",)
    assert {e.address for e in p.endpoints} == {"100.64.1.2", "100.64.2.2"}
    assert server_ifindexes(p) == {10, 11}
    # its own table and source rule stay: its probes still leave by its link
    assert any(r.table == 212 and r.dst == "default" for r in p.routes)
    assert any(r.src == "100.64.3.2" and r.table == 212 for r in p.rules)


def test_the_backup_takes_over_when_every_bond_path_is_down_and_stands_by_again() -> None:
    p = mk([pv(0, DOWN), pv(1, DOWN), pv(2, role=BACKUP)])
    assert p.carriers == ("wan3",) and p.standby == () and not p.fail_open
    assert [(e.address, e.backup) for e in p.endpoints] == [("100.64.3.2", False)]
    assert server_ifindexes(p) == {12}
    assert [r.hops[0].ifindex for r in p.routes if r.table == 200 and r.dst == "default"] == [12]
    back = mk([pv(0), pv(1, DOWN), pv(2, role=BACKUP)])
    assert back.carriers == ("wan1",) and back.standby == ("wan3",)


def test_degraded_bond_paths_let_the_backup_in_as_the_preferred_path() -> None:
    p = mk([pv(0, DEGRADED, backup=True), pv(2, role=BACKUP)])
    assert set(p.carriers) == {"wan1", "wan3"}
    assert {(e.address, e.backup) for e in p.endpoints} == {("100.64.1.2", True),
                                                            ("100.64.3.2", False)}
    assert server_ifindexes(p) == {12}


def test_fail_open_uses_the_backup_too() -> None:
    p = mk([pv(0, DOWN), pv(1, DOWN, BACKUP)])
    assert p.fail_open and set(p.carriers) == {"wan1", "wan2"}


def test_roles_are_decided_per_family() -> None:
    # wan1's IPv6 is dead: wan3 carries IPv6 but stands by for IPv4
    p = mk([pv(0, UP, v6=DOWN), pv(2, UP, BACKUP, v6=UP)])
    assert p.carriers == ("wan1",) and p.standby == ("wan3",)
    assert p.carriers6 == ("wan3",) and p.standby6 == ()
    assert {e.address for e in p.endpoints} == {"100.64.1.2", "2001:db8:3::2"}


def test_a_forced_backup_bond_path_keeps_its_backup_endpoint() -> None:
    """`option backup 1` is unchanged: an MPTCP backup endpoint, never standing by."""
    p = mk([pv(0), pv(1, backup=True)])
    assert p.standby == () and {(e.address, e.backup) for e in p.endpoints} == {
        ("100.64.1.2", False), ("100.64.2.2", True)}


def test_without_roles_the_plan_is_as_before() -> None:
    paths = [pv(0), pv(1, DOWN), pv(2)]
    assert mk(paths) == mk([replace(p, role=BOND) for p in paths])
    assert mk(paths).standby == ()
