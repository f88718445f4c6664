"""How often a path is probed (bonding.core.cadence): slowly while it stands by, at the normal
rate when it carries traffic or may soon have to, and what that costs a month."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bonding.core.cadence import month_bytes, probe_interval, solid
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
