"""A path's runtime: which families its state comes from, its backup flag, and how a new
config keeps (or resets) what each path had (bonding.bondingd.runtime)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bonding.bondingd.runtime import PathRuntime, measures, rebuild, window
from bonding.config import PathConfig
from bonding.core.health import Health, State

UP = Health(state=State.UP, reason="")
DOWN = Health(state=State.DOWN, reason="3 of the last 5 probe rounds got no reply")
DEGRADED = Health(state=State.DEGRADED, reason="loss 30%")
FRESH = Health()


def path(v4: str | None = None, v6: str | None = None, t4: tuple[str, ...] = (),
         t6: tuple[str, ...] = (), h4: Health = FRESH, h6: Health = FRESH,
         **cfg: object) -> PathRuntime:
    rt = PathRuntime(cfg=PathConfig(name="wan", **cfg), index=0)  # type: ignore[arg-type]
    rt.v4.address, rt.v4.targets, rt.v4.health = v4, t4, h4
    rt.v6.address, rt.v6.targets, rt.v6.health = v6, t6, h6
    return rt


@pytest.mark.parametrize(("rt", "counted"), [
    (path("192.0.2.2", "2001:db8::2", ("t",), ("t6",)), [4, 6]),  # both probed
    (path("192.0.2.2", "2001:db8::2", ("t",), ()), [4]),  # IPv6 not probed: follows IPv4
    (path(None, "2001:db8::2", (), ()), [6]),  # only an IPv6 address: judged by the link
    (path(None, None), [4]),  # nothing: IPv4, which says why it has no address
])
def test_counted_families(rt: PathRuntime, counted: list[int]) -> None:
    assert [f.family for f in rt.counted()] == counted


@pytest.mark.parametrize(("h4", "h6", "state"), [
    (UP, DOWN, State.UP),  # up while either family is
    (DOWN, UP, State.UP),
    (DOWN, DOWN, State.DOWN),
    (DEGRADED, DOWN, State.DEGRADED),
])
def test_the_paths_health_combines_its_families(h4: Health, h6: Health, state: State) -> None:
    rt = path("192.0.2.2", "2001:db8::2", ("t",), ("t6",), h4, h6)
    assert rt.health.state is state


@pytest.mark.parametrize(("cfg_backup", "override", "health", "backup"), [
    (False, None, UP, False),
    (True, None, UP, True),  # forced by the config
    (False, True, UP, True),  # forced over ubus
    (True, False, UP, False),  # the override wins over the config
    (False, None, DEGRADED, True),  # degraded → backup
])
def test_backup(cfg_backup: bool, override: bool | None, health: Health, backup: bool) -> None:
    rt = path("192.0.2.2", t4=("t",), h4=health, backup=cfg_backup)
    rt.backup_override = override
    assert rt.backup is backup


def test_rebuild_keeps_a_paths_runtime_by_name_and_says_which_are_gone() -> None:
    old = {"a": path("192.0.2.2", h4=UP), "b": path("198.51.100.2")}
    old["a"].enabled_override = False
    old["a"] = replace(old["a"], cfg=PathConfig(name="a"))
    pcs = (PathConfig(name="c"), PathConfig(name="a", upload_kbit=1000))
    paths, gone = rebuild(old, pcs, reset_overrides=False, enabled=True, now=1.0)
    assert list(paths) == ["c", "a"]
    assert paths["a"].index == 1 and paths["a"].cfg.upload_kbit == 1000
    assert paths["a"].v4.address == "192.0.2.2"  # kept
    assert paths["a"].enabled_override is False  # kept: not a reload
    assert paths["a"].health.state is State.DISABLED  # the override disables it
    assert [rt.cfg.name for rt in gone] == ["wan"]  # "b"'s runtime (its config named wan)
    again, _ = rebuild(paths, pcs, reset_overrides=True, enabled=True, now=2.0)
    assert again["a"].enabled_override is None


def test_rebuild_with_bonding_disabled_disables_every_path() -> None:
    paths, _ = rebuild({}, (PathConfig(name="a"),), reset_overrides=True, enabled=False,
                       now=0.0)
    assert paths["a"].health.state is State.DISABLED


def test_measures_and_window_as_status_shows_them() -> None:
    h = Health(srtt_ms=20.123, losses=((4, 3),), window=(True, False))
    assert measures(h) == {"rtt_ms": 20.12, "jitter_ms": 0.0, "loss_pct": 25.0}
    assert window(h) == ["ok", "fail"]
    assert measures(Health()) == {"rtt_ms": None, "jitter_ms": None, "loss_pct": None}
