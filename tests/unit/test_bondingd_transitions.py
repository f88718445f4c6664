"""bondingd.transitions: link news and probe rounds move a path's health; a change of state is
logged, sent as a bonding.path event, fires the hooks and replans (fakes for all of that)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from bonding import api
from bonding.bondingd.runtime import PathRuntime
from bonding.bondingd.transitions import Transitions
from bonding.config import PathConfig
from bonding.core.health import Health, Params, Round, State


@dataclass
class FakeEffects:
    reconciles: int = 0
    dirty: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hooks: list[dict[str, str]] = field(default_factory=list)

    def schedule_reconcile(self) -> None:
        self.reconciles += 1

    def mark_dirty(self) -> None:
        self.dirty += 1

    def send_event(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def fire_hooks(self, env: Mapping[str, str]) -> None:
        self.hooks.append(dict(env))


def world(state: State = State.UP, *, v6: bool = False,
          ) -> tuple[Transitions, FakeEffects, PathRuntime]:
    rt = PathRuntime(cfg=PathConfig("wan", interface="wan"), index=0, device="eth1")
    rt.v4.address, rt.v4.targets = "192.0.2.2", ("192.0.2.53",)
    rt.v4.health = Health(state=state, reason="", link_ok=True)
    if v6:
        rt.v6.address, rt.v6.targets = "2001:db8::2", ("2001:db8::53",)
        rt.v6.health = Health(state=state, reason="", link_ok=True)
    rt.family_states = (rt.v4.health.state, rt.v6.health.state)
    out = FakeEffects()
    t = Transitions(lambda: {"wan": rt}, Params, out, clock=lambda: 50.0, wall=lambda: 1e9)
    return t, out, rt


@pytest.mark.parametrize(("up", "carrier", "reason"), [
    (False, True, "eth1 is administratively down"),
    (True, False, "carrier lost on eth1"),
])
def test_link_news_takes_a_live_path_down_at_once(up: bool, carrier: bool, reason: str) -> None:
    t, out, rt = world()
    t.link_state(rt, up, carrier)
    assert rt.health.state is State.DOWN and rt.health.reason == reason
    assert rt.since_wall == 1e9 and out.reconciles >= 1 and out.dirty == 1
    assert out.events == [(api.EVENT_PATH, {"name": "wan", "state": "down", "previous": "up",
                                            "reason": reason})]
    assert [(h["ACTION"], h["PATH_NAME"], h["INTERFACE"], h["DEVICE"], h["REASON"])
            for h in out.hooks] == [("path-down", "wan", "wan", "eth1", reason)]


def test_link_back_waits_for_probes_and_a_family_without_address_says_so() -> None:
    t, out, rt = world(State.DOWN)
    rt.v4.health = Health(state=State.DOWN, reason="carrier lost", link_ok=False)
    t.link_state(rt, True, True)
    assert rt.v4.health.link_ok and rt.v4.health.reason == "link back: waiting for probe replies"
    assert rt.v6.health.reason == "eth1 has no IPv6 address"
    assert out.events == [] and out.hooks == [] and out.dirty == 1


def test_only_one_familys_change_replans_without_an_event() -> None:
    t, out, rt = world(v6=True)
    t.on_link(rt, False, "address 2001:db8::2 removed from eth1", [rt.v6])
    assert rt.health.state is State.UP and rt.v6.health.state is State.DOWN
    assert rt.family_states == (State.UP, State.DOWN) and rt.v6.since_wall == 1e9
    assert out.reconciles == 1 and out.events == [] and out.hooks == []


def test_probe_rounds_bring_a_path_up_after_up_count_good_rounds() -> None:
    t, out, rt = world(State.DOWN)
    rt.v4.health = Health(state=State.DOWN, reason="no probe answered yet", link_ok=True)
    for _ in range(Params().up_count):
        t.on_round("wan", 4, Round(sent=1, received=1, rtts_ms=(20.0,)))
    assert rt.health.state is State.UP
    assert [h["ACTION"] for h in out.hooks] == ["path-up"]
    assert out.events[-1][1]["previous"] == "down"


def test_a_round_for_a_removed_path_is_dropped() -> None:
    t, out, _ = world()
    t.on_round("gone", 4, Round(sent=1, received=0))
    assert out == FakeEffects()
