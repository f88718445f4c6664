"""bondingd.pathset: the paths from the config or discovered from netifd, rebuilt by name."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bonding import config
from bonding.bondingd import pathset
from bonding.bondingd.pathset import PathSet
from bonding.config import Config, Globals, PathConfig
from bonding.core.health import State
from bonding.probe import TargetStats


@dataclass
class FakeProber:
    stats: dict[str, TargetStats] = field(default_factory=dict)
    closed: bool = False

    def start(self) -> None: ...
    def close(self) -> None:
        self.closed = True
    def probe_now(self) -> None: ...


@dataclass
class World:
    wan: list[str] = field(default_factory=list)
    changes: int = 0

    def pathset(self) -> PathSet:
        return PathSet(lambda: self.wan, self.changed, clock=lambda: 100.0)

    def changed(self) -> None:
        self.changes += 1


def test_discovered_paths_are_named_after_netifd_interfaces_up_to_the_maximum() -> None:
    names = [f"wan{i}" for i in range(config.MAX_PATHS + 3)]
    found = pathset.discovered(names)
    assert len(found) == config.MAX_PATHS
    assert (found[0].name, found[0].interface, found[0].device) == ("wan0", "wan0", None)


def test_path_sections_win_over_netifd_and_none_discovers_its_wan_interfaces() -> None:
    w = World(wan=["wan", "wwan"])
    ps = w.pathset()
    ps.configure(Config(paths=(PathConfig("a", device="eth1"),)))
    assert list(ps.paths) == ["a"] and w.changes == 1
    ps.configure(Config())
    assert [(rt.cfg.name, rt.cfg.interface, rt.index) for rt in ps.paths.values()] == [
        ("wan", "wan", 0), ("wwan", "wwan", 1)]


def test_a_path_keeps_its_runtime_by_name_and_a_removed_one_stops_probing() -> None:
    w = World()
    ps = w.pathset()
    ps.configure(Config(paths=(PathConfig("a", device="eth1"), PathConfig("b", device="eth2"))))
    a, b = ps.paths["a"], ps.paths["b"]
    a.v4.address = "192.0.2.1"
    b.v4.prober = prober = FakeProber()
    ps.configure(Config(paths=(PathConfig("a", device="eth1", backup=True),)))
    assert list(ps.paths) == ["a"] and ps.paths["a"].v4.address == "192.0.2.1"
    assert ps.paths["a"].cfg.backup and prober.closed and b.v4.prober is None


def test_reload_resets_ubus_overrides_and_a_disabled_config_disables_every_path() -> None:
    w = World()
    ps = w.pathset()
    cfg = Config(paths=(PathConfig("a", device="eth1"),))
    ps.configure(cfg)
    ps.paths["a"].enabled_override = False
    ps.configure(cfg)
    assert ps.paths["a"].enabled_override is None
    ps.configure(replace(cfg, globals=Globals(enabled=False)))
    assert ps.paths["a"].v4.health.state is State.DISABLED


def test_discovery_follows_netifd_keeping_overrides_and_not_with_path_sections() -> None:
    w = World(wan=["wan"])
    ps = w.pathset()
    ps.configure(Config())
    ps.paths["wan"].backup_override = True
    changes = w.changes
    ps.sync_discovered(Config())  # nothing new: nothing rebuilt
    assert w.changes == changes
    w.wan = ["wan", "wwan"]
    ps.sync_discovered(Config())
    assert list(ps.paths) == ["wan", "wwan"] and ps.paths["wan"].backup_override is True
    ps.sync_discovered(Config(paths=(PathConfig("x", device="eth9"),)))
    assert list(ps.paths) == ["wan", "wwan"]


def test_stop_probers_closes_every_familys_prober() -> None:
    ps = World().pathset()
    ps.configure(Config(paths=(PathConfig("a", device="eth1"),)))
    probers = [FakeProber(), FakeProber()]
    ps.paths["a"].v4.prober, ps.paths["a"].v6.prober = probers
    ps.stop_probers()
    assert all(p.closed for p in probers)
