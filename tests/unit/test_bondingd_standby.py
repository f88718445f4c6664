"""Roles in the daemon (bonding.bondingd.standby): each path's standing from the planner's
views, and each path's probe interval from its standing and the bond paths' health."""

from __future__ import annotations

from typing import Any

from bonding.bondingd.planview import path_views
from bonding.bondingd.runtime import PathRuntime
from bonding.bondingd.standby import cadences, path_standings
from bonding.config import PathConfig
from bonding.core.health import Health, State

UP = Health(state=State.UP, reason="", fresh=False, window=(True,) * 5)
SHAKY = Health(state=State.UP, reason="", fresh=False, window=(True, True, False))
DOWN = Health(state=State.DOWN, reason="3 of the last 5 probe rounds got no reply", fresh=False,
              window=(False, False, False, True, True))


def path(name: str, index: int, h4: Health = UP, h6: Health | None = None,
         **cfg: Any) -> PathRuntime:
    rt = PathRuntime(cfg=PathConfig(name=name, **cfg), index=index, device=f"eth{index}",
                     ifindex=3 + index)
    rt.v4.address, rt.v4.gateway, rt.v4.targets, rt.v4.health = (
        f"100.64.{index}.2", f"100.64.{index}.1", ("192.0.2.53",), h4)
    if h6 is not None:
        rt.v6.address, rt.v6.gateway, rt.v6.targets, rt.v6.health = (
            f"2001:db8:{index}::2", "fe80::1", ("2001:db8::53",), h6)
    return rt


def intervals(paths: list[PathRuntime]) -> dict[str, int]:
    st = path_standings(path_views(paths, lambda name: None))
    return {n: c.interval_ms
            for n, c in cadences(paths, st, normal_ms=150, standby_ms=30000).items()}


def test_standing_of_each_path() -> None:
    paths = [path("wan1", 1), path("wan2", 2, DOWN), path("lte", 3, role="backup")]
    st = path_standings(path_views(paths, lambda name: None))
    assert not st["wan1"].standby and not st["wan2"].standby
    assert st["lte"].standby and st["lte"].reason == "standing by: bond path wan1 is up"
    paths[0].v4.health = DOWN
    st = path_standings(path_views(paths, lambda name: None))
    assert not st["lte"].standby and st["lte"].reason == "in use: no bond path is up"


def test_an_ipv6_only_path_is_judged_by_its_ipv6() -> None:
    lte = path("lte", 3, role="backup", h6=UP)
    lte.v4.address = None
    paths = [path("wan1", 1, h6=UP), lte]
    st = path_standings(path_views(paths, lambda name: None))
    assert st["lte"].standby


def test_a_standby_path_is_probed_slowly_until_it_may_be_needed() -> None:
    paths = [path("wan1", 1), path("wan2", 2), path("lte", 3, role="backup")]
    assert intervals(paths) == {"wan1": 150, "wan2": 150, "lte": 30000}
    paths[0].v4.health = DOWN  # one bond path down, the other solid: still standing by
    assert intervals(paths)["lte"] == 30000
    paths[1].v4.health = SHAKY  # the last bond path loses a round: wake the backup up
    assert intervals(paths)["lte"] == 150
    paths[1].v4.health = DOWN  # no bond path is up: the backup carries traffic
    assert intervals(paths)["lte"] == 150
    paths[0].v4.health = paths[1].v4.health = UP  # they are back: it stands by again
    assert intervals(paths)["lte"] == 30000


def test_a_standby_path_losing_its_own_rounds_is_checked_at_the_normal_rate() -> None:
    paths = [path("wan1", 1), path("lte", 3, SHAKY, role="backup")]
    assert intervals(paths)["lte"] == 150
    paths[1].v4.health = DOWN  # declared down: back to the slow rate
    assert intervals(paths)["lte"] == 30000


def test_bond_paths_are_always_probed_at_the_normal_rate() -> None:
    paths = [path("wan1", 1, DOWN), path("wan2", 2, SHAKY)]
    assert intervals(paths) == {"wan1": 150, "wan2": 150}
