"""What the planner is told of each path and family (bonding.bondingd.planview): pure
functions of the paths' runtime."""

from __future__ import annotations

from typing import Any

import pytest

from bonding.bondingd.planview import path_views, server_probe_paths, state_for_plan
from bonding.bondingd.runtime import PathRuntime
from bonding.config import PathConfig
from bonding.core.health import Health, State
from bonding.core.plan import FamilyView, PathView

UP = Health(state=State.UP, reason="", fresh=False, window=(True,) * 5)
DOWN = Health(state=State.DOWN, reason="3 of the last 5 probe rounds got no reply", fresh=False,
              window=(False, False, False, True, True))
DEGRADED = Health(state=State.DEGRADED, reason="loss 30%", fresh=False)
FRESH = Health()  # just started: down, not judged yet
FRESH_FAILED = Health(window=(False,))  # just started, and its first round got no reply
NO_LINK = Health(link_ok=False, reason="no carrier")


def path(h4: Health = UP, h6: Health = UP, *, v6: str | None = "2001:db8::2",
         t6: tuple[str, ...] = ("2001:db8::53",), name: str = "wan", **cfg: Any) -> PathRuntime:
    rt = PathRuntime(cfg=PathConfig(name=name, **cfg), index=0, device="wan1", ifindex=3)
    rt.v4.address, rt.v4.gateway, rt.v4.targets, rt.v4.health = (
        "100.64.1.2", "100.64.1.1", ("192.0.2.53",), h4)
    rt.v6.address, rt.v6.gateway, rt.v6.targets, rt.v6.health = v6, "fe80::1", t6, h6
    return rt


# (id, the path, its family, (state, backup) for the plan)
CASES: list[tuple[str, PathRuntime, int, tuple[State, bool]]] = [
    ("up", path(), 4, (State.UP, False)),
    ("down", path(DOWN), 4, (State.DOWN, False)),
    ("degraded: backup", path(DEGRADED), 4, (State.DEGRADED, True)),
    ("forced backup", path(backup=True), 4, (State.UP, True)),
    ("disabled in the config", path(enabled=False), 4, (State.DISABLED, False)),
    ("disabled, forced backup", path(enabled=False, backup=True), 4, (State.DISABLED, True)),
    ("not judged yet: kept up", path(FRESH), 4, (State.UP, False)),
    ("not judged yet, but its first round failed", path(FRESH_FAILED), 4, (State.DOWN, False)),
    ("not judged yet, without a link", path(Health(link_ok=False)), 4, (State.DOWN, False)),
    ("each family on its own", path(DOWN, UP), 6, (State.UP, False)),
    ("a family not probed follows the probed one", path(DOWN, UP, t6=()), 6,
     (State.DOWN, False)),
    ("... its degraded state too", path(DEGRADED, UP, t6=()), 6, (State.DEGRADED, True)),
]


@pytest.mark.parametrize(("rt", "family", "want"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_state_for_plan(rt: PathRuntime, family: int, want: tuple[State, bool]) -> None:
    assert state_for_plan(rt, rt.family(family)) == want


def test_path_views_give_the_planner_each_path_and_its_ipv6() -> None:
    a = path(DEGRADED, UP, name="a", upload_kbit=20000)
    b = path(v6=None, name="b")
    b.index, b.device, b.ifindex = 1, "wwan0", 7
    asked: list[str] = []

    def congctl(name: str) -> str | None:
        asked.append(name)
        return "bbr" if name == "b" else None

    assert path_views([a, b], congctl) == [
        PathView(name="a", index=0, device="wan1", ifindex=3, address="100.64.1.2",
                 gateway="100.64.1.1", state=State.DEGRADED, link_ok=True, backup=True,
                 weight_kbit=20000, congctl=None,
                 v6=FamilyView("2001:db8::2", "fe80::1", State.UP, True, False)),
        PathView(name="b", index=1, device="wwan0", ifindex=7, address="100.64.1.2",
                 gateway="100.64.1.1", state=State.UP, link_ok=True, backup=False,
                 weight_kbit=None, congctl="bbr", v6=None),
    ]
    assert asked == ["a", "b"]


def test_a_family_without_a_link_says_so() -> None:
    [v] = path_views([path(NO_LINK, NO_LINK)], lambda _: None)
    assert v.link_ok is False and v.state is State.DOWN
    assert v.v6 is not None and v.v6.link_ok is False


def test_servers_are_probed_through_the_live_paths() -> None:
    up, down, off = path(name="up"), path(DOWN, DOWN, name="down"), path(name="off",
                                                                         enabled=False)
    off.set_enabled(False, 0.0)
    no_dev = path(name="nodev")
    no_dev.device = None
    assert [rt.cfg.name for rt in server_probe_paths([down, up, off, no_dev])] == ["up"]


def test_with_no_live_path_servers_are_probed_through_every_path_with_a_link() -> None:
    a, b = path(DOWN, DOWN, name="a"), path(DOWN, DOWN, name="b")
    c = path(NO_LINK, NO_LINK, name="c")
    assert [rt.cfg.name for rt in server_probe_paths([a, b, c])] == ["a", "b"]
    assert server_probe_paths([c]) == []


def test_servers_are_not_probed_through_a_backup_path_standing_by() -> None:
    a, lte = path(name="a"), path(name="lte", role="backup")
    assert [rt.cfg.name for rt in server_probe_paths([a, lte], {"lte"})] == ["a"]
    assert [rt.cfg.name for rt in server_probe_paths([a, lte])] == ["a", "lte"]


@pytest.mark.parametrize(("native", "state", "state6"), [
    (True, State.UP, State.UP),  # kept for what needs no MPTCP
    (False, State.DOWN, State.DOWN),  # the user wants it out: as if dead
])
def test_an_mptcp_blocked_path_is_told_to_the_plan(native: bool, state: State,
                                                   state6: State) -> None:
    (v,) = path_views([path()], lambda name: None, frozenset({"wan"}), native)
    assert v.mptcp_blocked and v.state is state
    assert v.v6 is not None and v.v6.state is state6
    (free,) = path_views([path()], lambda name: None, frozenset({"other"}), False)
    assert not free.mptcp_blocked and free.state is State.UP
