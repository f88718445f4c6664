"""bonding.periodic.Periodic: the probers' clock, on a real asyncio loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from bonding.periodic import Beat, Periodic

T = TypeVar("T")


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


def test_rounds_keep_their_cadence_and_stop_when_told() -> None:
    async def main() -> list[float]:
        at: list[float] = []
        p = Periodic(0.05, lambda: at.append(time.monotonic()), "test")
        p.start()
        await asyncio.sleep(0.27)
        p.stop()
        n = len(at)
        await asyncio.sleep(0.12)
        assert len(at) == n  # nothing after stop()
        return at

    at = _run(main)
    assert 3 <= len(at) <= 7, at  # rounds at 0, 50, …, 250 ms (fewer on a busy host)


def test_a_failing_round_is_logged_and_the_rounds_go_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    async def main() -> None:
        p = Periodic(0.02, fn, "probe of wan1")
        p.start()
        await asyncio.sleep(0.09)
        p.stop()

    with caplog.at_level(logging.ERROR, logger="bonding.periodic"):
        _run(main)
    assert len(calls) >= 3
    assert "probe of wan1 round failed" in caplog.text and "boom" in caplog.text


def test_no_burst_after_the_loop_fell_behind() -> None:
    async def main() -> list[float]:
        at: list[float] = []

        def fn() -> None:
            at.append(time.monotonic())
            if len(at) == 2:
                time.sleep(0.25)  # the loop is blocked for five intervals

        p = Periodic(0.05, fn, "test")
        p.start()
        await asyncio.sleep(0.45)
        p.stop()
        return at

    at = _run(main)
    gaps = [b - a for a, b in itertools.pairwise(at)]
    # after the stall the next round is one interval on, not five rounds at once
    assert min(gaps) > 0.03, gaps


def test_now_runs_a_round_at_once_and_is_a_no_op_before_start_and_after_stop() -> None:
    async def main() -> list[float]:
        at: list[float] = []
        p = Periodic(10.0, lambda: at.append(time.monotonic()), "test")
        p.now()  # not started: nothing
        await asyncio.sleep(0.01)
        assert at == []
        p.start()
        await asyncio.sleep(0.01)
        p.now()
        await asyncio.sleep(0.01)
        p.stop()
        p.now()
        await asyncio.sleep(0.01)
        return at

    assert len(_run(main)) == 2


def test_a_beat_runs_its_members_together_from_one_timer() -> None:
    async def main() -> tuple[list[tuple[str, float]], int]:
        loop = asyncio.get_running_loop()
        at: list[tuple[str, float]] = []
        beat = Beat(0.05)
        def due() -> float:  # the due time of the round that runs now
            return beat._periodic._next_at
        a, b = (lambda: at.append(("a", due()))), (lambda: at.append(("b", due())))
        beat.join(a)
        beat.join(b)
        await asyncio.sleep(0.005)
        assert [w for w, _ in at] == ["a", "b"]  # each joiner's first round: at once, once
        await asyncio.sleep(0.13)
        timers = len(loop._scheduled)  # type: ignore[attr-defined]
        beat.leave(a)
        n = len(at)
        await asyncio.sleep(0.06)
        assert [w for w, _ in at[n:]] == ["b"]  # a left, b goes on
        beat.leave(b)
        n = len(at)
        await asyncio.sleep(0.06)
        assert len(at) == n  # the last left: no more rounds
        return at, timers

    at, timers = _run(main)
    assert timers == 1  # one timer for both members
    beats = {t for w, t in at[2:]}
    for t in beats:  # every round ran both members in the same callback
        assert sorted(w for w, u in at[2:] if u == t) in (["a", "b"], ["b"])


def test_a_failing_member_is_logged_and_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        ran: list[int] = []

        def bad() -> None:
            raise RuntimeError("boom")
        beat = Beat(0.03)
        beat.join(bad)
        beat.join(lambda: ran.append(1))
        await asyncio.sleep(0.1)
        beat.leave(bad)
        return ran

    with caplog.at_level(logging.ERROR):
        ran = _run(main)
    assert len(ran) >= 3
    assert "round failed" in caplog.text and "boom" in caplog.text


def test_a_beat_left_by_all_starts_again_on_the_next_join() -> None:
    async def main() -> int:
        ran: list[int] = []
        beat = Beat(0.03)

        def f() -> None:
            ran.append(1)
        beat.join(f)
        await asyncio.sleep(0.01)
        beat.leave(f)
        beat.join(f)
        await asyncio.sleep(0.08)
        beat.leave(f)
        return len(ran)

    assert _run(main) >= 3  # two first rounds and at least one beat
