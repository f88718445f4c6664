"""How often a path is probed (bonding.core.cadence): slowly while it stands by, at the normal
rate when it carries traffic or may soon have to, and what that costs a month."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from bonding.core.cadence import inputs, month_bytes, probe_interval, solid
from bonding.core.health import Health, State

UP, DEGRADED, DOWN = State.UP, State.DEGRADED, State.DOWN
NORMAL, SLOW = 150, 30000
MB = 1e6


def h(state: State = UP, window: tuple[bool, ...] = (True,) * 5) -> Health:
    return Health(state=state, window=window, fresh=False)


# (standby, bonds solid, own health, interval, why starts with)
CASES = [
    (False, True, [h()], NORMAL, "in use"),
    (False, False, [h()], NORMAL, "in use"),
    (True, True, [h()], SLOW, "standing by"),
    (True, True, [h(), h()], SLOW, "standing by"),
    (True, False, [h()], NORMAL, "may be needed"),
    (True, True, [h(window=(True, False))], NORMAL, "checking"),
    (True, True, [h(DEGRADED, (True, False))], NORMAL, "checking"),
    (True, True, [h(), h(window=(False,))], NORMAL, "checking"),  # one family suspect
    (True, True, [h(DOWN, (False, False, False))], SLOW, "standing by"),  # dead: slow again
    (True, True, [h(DOWN, ())], SLOW, "standing by"),
    (True, True, [replace(h(DOWN, (False, True)), good_streak=1)], NORMAL, "checking"),
    (True, True, [replace(h(DOWN, (True,)), good_streak=1, link_ok=False)], SLOW, "standing"),
]


@pytest.mark.parametrize(("standby", "bonds", "own", "interval", "why"), CASES)
def test_probe_interval(standby: bool, bonds: bool, own: list[Health], interval: int,
                        why: str) -> None:
    c = probe_interval(standby=standby, bonds_solid=bonds, own=own, normal_ms=NORMAL,
                       standby_ms=SLOW)
    assert c.interval_ms == interval and c.why.startswith(why)


def test_the_slow_interval_is_never_faster_than_the_normal_one() -> None:
    c = probe_interval(standby=True, bonds_solid=True, own=[h()], normal_ms=5000,
                       standby_ms=1000)
    assert c.interval_ms == 5000


@pytest.mark.parametrize(("health", "is_solid"), [
    (h(), True), (h(window=()), True), (h(window=(True, False)), False),
    (h(DEGRADED), False), (h(DOWN), False)])
def test_solid(health: Health, is_solid: bool) -> None:
    assert solid(health) is is_solid


def test_monthly_cost_of_probing() -> None:
    # the figure: 84-byte echoes each way every 150 ms ≈ 2.9 GB a month
    assert round(month_bytes(150, 4) / MB) == 2903
    # the default standby interval keeps a dual-stack path well under 50 MB a month
    assert month_bytes(SLOW, 4) / MB == pytest.approx(14.5, abs=0.1)
    assert (month_bytes(SLOW, 4) + month_bytes(SLOW, 6)) / MB < 50


def test_the_cadence_reads_only_its_inputs() -> None:
    """bondingd works every path's cadence out again only when a round changes `inputs` of the
    family it judged: healths with the same inputs must get the same interval, whatever else
    differs (and different inputs must be told apart)."""
    base = [
        Health(state=s, window=w, link_ok=link, good_streak=g)
        for s, w, link, g in itertools.product(State, [(True, True), (True, False)],
                                               [True, False], [0, 3])
    ]
    for h in base:
        other = replace(h, srtt_ms=12.0, rttvar_ms=3.0, last_rtt_ms=15.0, losses=((5, 4),),
                        rounds=99, bad_streak=2, calm_streak=1, falls=(1.0,), fresh=False,
                        reason="x", since=5.0, good_streak=h.good_streak * 2)
        assert inputs(other) == inputs(h)
        assert solid(h) == solid(other)
        for standby, bonds in itertools.product([True, False], repeat=2):
            got = [probe_interval(standby=standby, bonds_solid=bonds, own=[x],
                                  normal_ms=150, standby_ms=60000) for x in (h, other)]
            assert got[0] == got[1], (h, other)
    assert len({inputs(h) for h in base}) == len(base)
