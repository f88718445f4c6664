"""Probing wiring (bonding.bondingd.probing): which probers run for each path and family, when
one is replaced, and the `probe` method's wait for a round; with a fake prober factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from bonding.bondingd import probing
from bonding.bondingd.probing import Probing
from bonding.bondingd.runtime import PathRuntime
from bonding.config import PathConfig
from bonding.core.health import Health, Params, Round
from bonding.probe import TargetStats

T4 = ("192.0.2.53", "198.51.100.53")
T6 = ("2001:db8::53",)


@dataclass
class FakeProber:
    """bondingd.runtime.Prober; `answer` makes probe_now finish a round (soon, as a real one
    would), else it never answers."""

    device: str
    source: str
    targets: tuple[str, ...]
    interval_s: float
    timeout_s: Callable[[], float]
    srtt_s: Callable[[], float | None]
    on_round: Callable[[Round], None]
    answer: bool = True
    stats: dict[str, TargetStats] = field(default_factory=dict)
    started: int = 0
    closed: int = 0
    probes: int = 0

    def start(self) -> None:
        self.started += 1

    def close(self) -> None:
        self.closed += 1

    def probe_now(self) -> None:
        self.probes += 1
        if self.answer:
            asyncio.get_running_loop().call_soon(
                self.on_round, Round(sent=len(self.targets), received=1, rtts_ms=(20.0,)))


class Factory:
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.made: list[FakeProber] = []

    def __call__(self, *, device: str, source: str, targets: tuple[str, ...],
                 interval_s: float, timeout_s: Callable[[], float],
                 srtt_s: Callable[[], float | None],
                 on_round: Callable[[Round], None]) -> FakeProber:
        p = FakeProber(device, source, targets, interval_s, timeout_s, srtt_s, on_round,
                       self.answer)
        self.made.append(p)
        return p


class World:
    """The daemon's side: each family's health, the params, the rounds it was told of."""

    def __init__(self, answer: bool = True) -> None:
        self.factory = Factory(answer)
        self.health: dict[tuple[str, int], Health] = {}
        self.params = Params(timeout_min_ms=250, timeout_max_ms=1000)
        self.rounds: list[tuple[str, int, Round]] = []
        self.probing = Probing(self.factory, self.health_of, lambda: self.params,
                               lambda n, f, r: self.rounds.append((n, f, r)))

    def health_of(self, name: str, family: int) -> Health:
        return self.health.get((name, family), Health())


def targets(family: int) -> tuple[str, ...]:
    return T6 if family == 6 else T4


def path(v4: str | None = "100.64.1.2", v6: str | None = "2001:db8:64:1::2",
         device: str | None = "wan1") -> PathRuntime:
    rt = PathRuntime(cfg=PathConfig(name="wan"), index=0, device=device, ifindex=3)
    rt.v4.address, rt.v6.address = v4, v6
    return rt


def test_one_prober_per_family_with_an_address_and_targets() -> None:
    w = World()
    rt = path()
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    assert [(p.device, p.source, p.targets, p.interval_s, p.started) for p in w.factory.made] == [
        ("wan1", "100.64.1.2", T4, 0.5, 1), ("wan1", "2001:db8:64:1::2", T6, 0.5, 1)]
    assert rt.v4.prober is w.factory.made[0] and rt.v6.prober is w.factory.made[1]
    assert rt.v4.targets == T4 and rt.v6.targets == T6


@pytest.mark.parametrize(("rt", "tg", "enabled", "probed"), [
    (path(v6=None), targets, True, [4]),  # no IPv6 address
    (path(), lambda f: () if f == 6 else T4, True, [4]),  # no IPv6 target
    (path(device=None), targets, True, []),  # no device
    (path(None, None), targets, True, []),  # no address
    (path(), targets, False, []),  # disabled
])
def test_which_families_are_probed(rt: PathRuntime, tg: Callable[[int], tuple[str, ...]],
                                   enabled: bool, probed: list[int]) -> None:
    w = World()
    w.probing.sync(rt, tg, enabled=enabled, interval_ms=500)
    assert [f.family for f in rt.families if f.prober is not None] == probed
    assert len(w.factory.made) == len(probed)


def test_a_prober_is_replaced_only_when_what_it_probes_changes() -> None:
    w = World()
    rt = path()
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    first4, first6 = w.factory.made
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    assert len(w.factory.made) == 2 and first4.closed == first6.closed == 0  # nothing changed
    rt.v4.address = "100.64.1.3"  # a new address: IPv4's prober only
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    assert first4.closed == 1 and first6.closed == 0 and len(w.factory.made) == 3
    assert w.factory.made[2].source == "100.64.1.3" and rt.v4.prober is w.factory.made[2]
    w.probing.sync(rt, targets, enabled=True, interval_ms=1000)  # a new interval: both
    assert first6.closed == 1 and len(w.factory.made) == 5
    assert {p.interval_s for p in w.factory.made[3:]} == {1.0}


def test_disabling_stops_the_probers_and_enabling_starts_new_ones() -> None:
    w = World()
    rt = path()
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    w.probing.sync(rt, targets, enabled=False, interval_ms=500)
    assert [p.closed for p in w.factory.made] == [1, 1]
    assert rt.v4.prober is None and rt.v6.prober is None and rt.v4.probe_key == ()
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    assert len(w.factory.made) == 4 and all(p.started == 1 for p in w.factory.made)
    probing.stop(rt.v4)
    assert rt.v4.prober is None and w.factory.made[2].closed == 1
    probing.stop(rt.v4)  # no prober: nothing to do
    assert w.factory.made[2].closed == 1


def test_a_probers_patience_and_rounds_go_through_its_familys_health() -> None:
    w = World()
    rt = path()
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    p4, p6 = w.factory.made
    assert p4.timeout_s() == 1.0 and p4.srtt_s() is None  # nothing measured: the longest
    w.health[("wan", 6)] = Health(srtt_ms=100.0, rttvar_ms=20.0)
    assert p6.timeout_s() == pytest.approx(0.28)  # 2·SRTT + 4·RTTVAR
    assert p6.srtt_s() == pytest.approx(0.1)
    assert p4.timeout_s() == 1.0  # the other family's own
    w.params = Params(timeout_min_ms=250, timeout_max_ms=600)
    assert p4.timeout_s() == 0.6  # the params are read each time
    r = Round(sent=2, received=2, rtts_ms=(20.0, 21.0))
    p6.on_round(r)
    assert w.rounds == [("wan", 6, r)]


def test_probe_now_waits_for_a_round_of_each_probed_family() -> None:
    w = World()
    rt = path()
    w.probing.sync(rt, targets, enabled=True, interval_ms=60_000)
    asyncio.run(asyncio.wait_for(w.probing.probe_now(rt), 0.5))
    assert [p.probes for p in w.factory.made] == [1, 1]
    assert sorted((n, f) for n, f, _ in w.rounds) == [("wan", 4), ("wan", 6)]


def test_probe_now_gives_up_after_the_reply_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probing, "PROBE_REPLY_SLACK_S", 0.05)
    w = World(answer=False)
    w.params = Params(timeout_min_ms=100, timeout_max_ms=100)
    rt = path(v6=None)
    w.probing.sync(rt, targets, enabled=True, interval_ms=60_000)
    t0 = time.monotonic()
    asyncio.run(asyncio.wait_for(w.probing.probe_now(rt), 2.0))  # no TimeoutError out of it
    assert 0.14 <= time.monotonic() - t0 < 1.0  # 100 ms + the slack
    assert w.factory.made[0].probes == 1 and w.rounds == []


def test_probe_now_of_a_path_without_probers_returns_at_once() -> None:
    w = World()
    rt = path(device=None)
    w.probing.sync(rt, targets, enabled=True, interval_ms=500)
    asyncio.run(asyncio.wait_for(w.probing.probe_now(rt), 0.05))
    assert w.factory.made == []
