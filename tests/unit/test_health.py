"""Path health state machine (bonding.core.health): what status shows for a sequence of rounds.

Rounds are written as strings: 'G' a round where every target answered (20 ms), 'B' a round where
none did.  Time advances 0.15 s per round (the default probe interval) unless a case says so.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace

import pytest

from bonding.core import health as hl
from bonding.core.health import Health, Params, Round, State

DT = 0.15
GOOD = Round(2, 2, (20.0, 20.0))
BAD = Round(2, 0)
P = Params()  # defaults: down 3 of 5, up after 5, degraded loss 20 % / RTT ×3 and +150 ms


def rnd(c: str) -> Round:
    return {"G": GOOD, "B": BAD}[c]


def feed(h: Health, rounds: Iterable[Round], p: Params = P, t0: float = 0.0, dt: float = DT,
         best: float | None = None) -> tuple[Health, list[Health]]:
    """Feed rounds from time t0; return the last health and the health after every round."""
    seen: list[Health] = []
    for i, r in enumerate(rounds):
        h = hl.on_round(h, r, p, t0 + i * dt, best)
        seen.append(h)
    return h, seen


def first(seen: Sequence[Health], state: State) -> int | None:
    return next((i for i, h in enumerate(seen) if h.state is state), None)


def fresh_up(p: Params = P, t: float = 0.0) -> Health:
    """A path that came up on its first good round (a starting daemon does not wait)."""
    h = hl.on_round(Health(), GOOD, p, t)
    assert h.state is State.UP
    return h


def recover(h: Health, t: float, p: Params = P, dt: float = 0.01, limit: int = 1000,
            r: Round = GOOD) -> tuple[Health, int]:
    """Good rounds until the path is up; returns it and how many rounds that took."""
    for n in range(1, limit + 1):
        h = hl.on_round(h, r, p, t + (n - 1) * dt)
        if h.state is State.UP:
            return h, n
    raise AssertionError(f"not up after {limit} good rounds: {h.reason}")


def carrier_blip(h: Health, t: float) -> Health:
    h = hl.on_link(h, False, "carrier lost on eth1", t)
    assert h.state is State.DOWN
    return hl.on_link(h, True, "carrier back on eth1", t)


def rtt_health(state: State, srtt: float = 100.0) -> Health:
    """A path that has been up before, with a steady smoothed RTT."""
    return Health(state=state, reason=str(state), since=0.0, fresh=False, srtt_ms=srtt,
                  rttvar_ms=0.0, last_rtt_ms=srtt)


def steady(rtt: float) -> Round:
    return Round(2, 2, (rtt, rtt))


# --- down after K of the last M -------------------------------------------------------------------

# (id, rounds fed to an up path, params, index of the round that takes it down or None, reason)
DOWN_CASES: list[tuple[str, str, Params, int | None, str | None]] = [
    ("3 failed in a row", "BBB", P, 2, "3 of the last 3 probe rounds got no reply"),
    ("2 failed in a row is not enough", "BB", P, None, None),
    ("2 failed, then good", "BBGGGGGGGG", P, None, None),
    ("3 of 5 interleaved", "BGBGB", P, 4, "3 of the last 5 probe rounds got no reply"),
    ("3 within 4 rounds", "BBGB", P, 3, "3 of the last 4 probe rounds got no reply"),
    ("2 of every 5 interleaved never", "BGGBG" * 20, P, None, None),
    ("2 failures slide out before the third", "BBGGGGB", P, None, None),
    ("old failures slide out of the window", "BBGGGBBB", P, 7,
     "3 of the last 5 probe rounds got no reply"),
    ("failures 5 rounds apart never", "BGGGG" * 20, P, None, None),
    ("good rounds first, then blackhole", "G" * 30 + "BBB", P, 32,
     "3 of the last 5 probe rounds got no reply"),
    ("2 of 4 with down_count=2 down_window=4", "BGGB", Params(down_count=2, down_window=4), 3,
     "2 of the last 4 probe rounds got no reply"),
    ("2 of 5 with down_count=2 down_window=4: slid out", "BGGGB",
     Params(down_count=2, down_window=4), None, None),
    ("1 of 1", "GGB", Params(down_count=1, down_window=1), 2,
     "1 of the last 1 probe rounds got no reply"),
]


@pytest.mark.parametrize(("seq", "p", "at", "reason"), [c[1:] for c in DOWN_CASES],
                         ids=[c[0] for c in DOWN_CASES])
def test_down_after_k_of_m(seq: str, p: Params, at: int | None, reason: str | None) -> None:
    h = fresh_up(p)
    h, seen = feed(h, map(rnd, seq), p, t0=1.0)
    assert first(seen, State.DOWN) == at
    if at is None:
        assert h.state.live  # (a lossy path may turn degraded: not this test's business)
    else:
        assert all(s.state is State.UP for s in seen[:at])
        down = seen[at]
        assert down.reason == reason
        assert down.since == pytest.approx(1.0 + at * DT)


# --- up after N good rounds -----------------------------------------------------------------------

# (id, params, rounds fed to a path that was up and went down (once), index it comes up or None)
UP_CASES: list[tuple[str, Params, str, int | None]] = [
    ("5 good in a row", P, "GGGGG", 4),
    ("4 good is not enough", P, "GGGG", None),
    ("a failure resets the streak", P, "GGGGBGGGGG", 9),
    ("failure on the last needed round", P, "GGGGBGGGG", None),
    ("failures before the streak don't matter", P, "BBBBGGGGG", 8),
    ("up_count=3", Params(up_count=3), "GGBGGG", 5),
    ("up_count=1", Params(up_count=1), "BG", 1),
]


@pytest.mark.parametrize(("p", "seq", "at"), [c[1:] for c in UP_CASES],
                         ids=[c[0] for c in UP_CASES])
def test_up_after_n_good_rounds_when_up_before(p: Params, seq: str, at: int | None) -> None:
    h, _ = feed(fresh_up(p), map(rnd, "B" * p.down_count), p, t0=1.0)
    assert h.state is State.DOWN
    assert not h.fresh
    h, seen = feed(h, map(rnd, seq), p, t0=2.0)
    assert first(seen, State.UP) == at
    if at is not None:
        assert seen[at].reason == "probes answered"
        assert seen[at].since == pytest.approx(2.0 + at * DT)
        assert seen[at].window == ()  # old failures cannot take it straight down again


# (id, rounds for a path never seen up, index it comes up)
FRESH_CASES: list[tuple[str, str, int]] = [
    ("first round good", "G", 0),
    ("after failures, one good round", "BBBBBBBBG", 8),
    ("interleaved", "BGB", 1),
]


@pytest.mark.parametrize(("seq", "at"), [c[1:] for c in FRESH_CASES],
                         ids=[c[0] for c in FRESH_CASES])
def test_fresh_path_up_after_one_good_round(seq: str, at: int) -> None:
    h = Health()
    assert (h.state, h.reason, h.fresh) == (State.DOWN, "no probe answered yet", True)
    h, seen = feed(h, map(rnd, seq))
    assert first(seen, State.UP) == at
    assert not seen[at].fresh


def test_recovering_reason_counts_good_rounds() -> None:
    h, _ = feed(fresh_up(), map(rnd, "BBB"), t0=1.0)
    h, seen = feed(h, map(rnd, "GGB"), t0=2.0)
    assert [s.reason for s in seen[:2]] == ["recovering: 1 of 5 good rounds",
                                            "recovering: 2 of 5 good rounds"]
    assert seen[2].state is State.DOWN and seen[2].good_streak == 0


# --- flapping -------------------------------------------------------------------------------------

# (id, fall times (each a carrier loss while up), when recovery starts, good rounds it needs)
FLAP_CASES: list[tuple[str, list[float], float, int]] = [
    ("one fall", [10.0], 10.0, 5),
    ("second fall within a minute doubles", [10.0, 20.0], 20.0, 10),
    ("third fall: 4x", [10.0, 20.0, 30.0], 30.0, 20),
    ("fourth fall: 8x", [10.0, 11.0, 12.0, 13.0], 13.0, 40),
    ("fifth fall: capped at 8x", [10.0, 11.0, 12.0, 13.0, 14.0], 14.0, 40),
    ("seventh fall: capped at 8x", [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0], 16.0, 40),
    ("falls a minute apart don't add up", [10.0, 75.0], 75.0, 5),
    ("relaxes once the falls are a minute old", [10.0, 11.0, 12.0], 73.0, 5),
    ("relaxes partly: two falls still in the minute", [10.0, 20.0, 30.0], 75.0, 10),
    ("one fall of three still in the minute", [10.0, 20.0, 30.0], 85.0, 5),
]


@pytest.mark.parametrize(("falls", "recover_at", "needed"), [c[1:] for c in FLAP_CASES],
                         ids=[c[0] for c in FLAP_CASES])
def test_flapping_damping(falls: list[float], recover_at: float, needed: int) -> None:
    h = fresh_up()
    for t in falls[:-1]:
        h, _ = recover(carrier_blip(h, t), t)
    h = carrier_blip(h, falls[-1])
    assert h.up_needed(P, recover_at) == needed
    h, n = recover(h, recover_at)
    assert n == needed


def test_flapping_damping_scales_with_up_count() -> None:
    p = Params(up_count=2)
    h = fresh_up(p)
    counts = []
    for t in (10.0, 11.0, 12.0, 13.0, 14.0):
        h, n = recover(carrier_blip(h, t), t, p)
        counts.append(n)
    assert counts == [2, 4, 8, 16, 16]


def test_probe_falls_count_as_flaps_too() -> None:
    h = fresh_up()
    h, _ = feed(h, map(rnd, "BBB"), t0=1.0)  # fall 1 (probes)
    h, n1 = recover(h, 2.0)
    h, _ = feed(h, map(rnd, "BBB"), t0=3.0)  # fall 2 (probes)
    h, n2 = recover(h, 4.0)
    assert (n1, n2) == (5, 10)
    assert len(h.falls) == 2


# --- link events ----------------------------------------------------------------------------------

@pytest.mark.parametrize("state", [State.UP, State.DEGRADED], ids=["up", "degraded"])
def test_carrier_loss_takes_a_live_path_down_at_once(state: State) -> None:
    h = replace(fresh_up(), state=state)
    h2 = hl.on_link(h, False, "carrier lost on eth1", 42.5)
    assert (h2.state, h2.reason, h2.since, h2.link_ok) == (
        State.DOWN, "carrier lost on eth1", 42.5, False)
    assert h2.falls == (42.5,)


def test_carrier_loss_on_a_down_path_keeps_since() -> None:
    h = hl.on_round(Health(since=3.0), BAD, P, 3.0)
    h2 = hl.on_link(h, False, "carrier lost on eth1", 9.0)
    assert (h2.state, h2.reason, h2.since) == (State.DOWN, "carrier lost on eth1", 3.0)
    assert h2.falls == ()  # it was not up: no flap


def test_same_link_state_is_a_no_op() -> None:
    h = fresh_up()
    assert hl.on_link(h, True, "carrier", 5.0) is h
    down = hl.on_link(h, False, "carrier lost", 5.0)
    assert hl.on_link(down, False, "carrier lost again", 6.0) is down


# (id, health before the carrier loss, rounds after carrier back, index it comes up)
CARRIER_BACK_CASES: list[tuple[str, bool, str, int | None]] = [
    ("was up: needs up_count good rounds", False, "GGGGG", 4),
    ("was up: 4 good are not enough", False, "GGGG", None),
    ("never up: one good round", True, "G", 0),
    ("never up: failures then one good", True, "BBG", 2),
]


@pytest.mark.parametrize(("fresh", "seq", "at"), [c[1:] for c in CARRIER_BACK_CASES],
                         ids=[c[0] for c in CARRIER_BACK_CASES])
def test_carrier_back_stays_down_until_good_rounds(fresh: bool, seq: str,
                                                  at: int | None) -> None:
    h = Health() if fresh else fresh_up()
    h = hl.on_link(h, False, "carrier lost on eth1", 1.0)
    # rounds while the carrier is away never bring it up, even good ones
    h, seen = feed(h, [GOOD] * 10, t0=1.1)
    assert all(s.state is State.DOWN and s.reason == "carrier lost on eth1" for s in seen)
    h = hl.on_link(h, True, "carrier back on eth1", 3.0)
    assert (h.state, h.reason, h.link_ok, h.good_streak) == (
        State.DOWN, "carrier back on eth1", True, 0)
    h, seen = feed(h, map(rnd, seq), t0=3.1)
    assert first(seen, State.UP) == at


def test_carrier_back_forgets_failures_seen_before() -> None:
    h = fresh_up()
    h, _ = feed(h, map(rnd, "BB"), t0=1.0)  # 2 failures in the window, still up
    h = carrier_blip(h, 2.0)
    h, _ = recover(h, 3.0)
    h, seen = feed(h, map(rnd, "BB"), t0=4.0)  # 2 new failures: not 4
    assert all(s.state is State.UP for s in seen)


# --- enabled / disabled ---------------------------------------------------------------------------

@pytest.mark.parametrize("seq", ["GGGGGGGGGG", "BBBBBBBBBB", "GBGBGB"], ids=["good", "bad", "mix"])
@pytest.mark.parametrize("start", ["up", "down", "fresh"])
def test_disabled_path_ignores_rounds(start: str, seq: str) -> None:
    h = {"up": fresh_up(), "fresh": Health(),
         "down": feed(fresh_up(), [BAD] * 3, t0=1.0)[0]}[start]
    h = hl.set_enabled(h, False, 5.0)
    assert (h.state, h.reason, h.since) == (State.DISABLED, "disabled", 5.0)
    h, seen = feed(h, map(rnd, seq), t0=6.0)
    assert all((s.state, s.reason, s.since) == (State.DISABLED, "disabled", 5.0) for s in seen)
    h = hl.on_link(h, False, "carrier lost", 8.0)
    assert h.state is State.DISABLED
    h = hl.on_link(h, True, "carrier back", 8.5)
    assert h.state is State.DISABLED


def test_reenabled_path_is_fresh() -> None:
    h, _ = feed(fresh_up(), [BAD] * 3, t0=1.0)  # has been up: would need 5 good rounds
    h = hl.set_enabled(h, False, 2.0)
    h = hl.set_enabled(h, True, 3.0)
    assert (h.state, h.reason, h.since, h.fresh, h.window) == (
        State.DOWN, "enabled: waiting for a probe reply", 3.0, True, ())
    h = hl.on_round(h, GOOD, P, 3.1)
    assert (h.state, h.since) == (State.UP, 3.1)


def test_enable_of_an_enabled_path_changes_nothing() -> None:
    h = fresh_up()
    assert hl.set_enabled(h, True, 9.0) is h


def test_disable_is_not_a_flap() -> None:
    h = fresh_up()
    h = hl.set_enabled(h, False, 1.0)
    assert h.falls == ()


# --- degraded: loss -------------------------------------------------------------------------------

def warm(p: Params = P, rounds: int = 40, rtt: float = 20.0) -> Health:
    """An up path with a full loss window of perfect rounds."""
    h, _ = feed(fresh_up(p), [steady(rtt)] * rounds, p, t0=0.1)
    assert h.state is State.UP and h.loss_pct == 0.0
    return h


# (id, params, rounds as (sent, received), index it turns degraded or None, reason then)
LOSS_CASES: list[tuple[str, Params, list[tuple[int, int]], int | None, str | None]] = [
    # 1 of 2 lost per round: 8 such rounds make 8/40 = 20 %, then up_count (5) rounds over it
    ("50% per round", P, [(2, 1)] * 30, 11, "loss 30% ≥ 20%"),
    ("10% never", P, [(2, 2), (2, 2), (2, 2), (2, 2), (2, 1)] * 20, None, None),
    ("17% never", P, [(2, 1), (2, 2), (2, 2)] * 30, None, None),
    ("lower threshold", Params(degraded_loss_pct=10.0), [(2, 1)] * 30, 7, "loss 20% ≥ 10%"),
    ("a burst of 7 lossy rounds (17.5% of the window) never", P,
     [(2, 1)] * 7 + [(2, 2)] * 100, None, None),
    ("a burst of 8 lossy rounds (20%) stays in the window long enough", P,
     [(2, 1)] * 8 + [(2, 2)] * 100, 11, "loss 20% ≥ 20%"),
]


@pytest.mark.parametrize(("p", "rounds", "at", "reason"), [c[1:] for c in LOSS_CASES],
                         ids=[c[0] for c in LOSS_CASES])
def test_degraded_on_loss(p: Params, rounds: list[tuple[int, int]], at: int | None,
                          reason: str | None) -> None:
    h = warm(p)
    h, seen = feed(h, (Round(s, r, (20.0,) * r) for s, r in rounds), p, t0=10.0, best=20.0)
    assert first(seen, State.DOWN) is None
    assert first(seen, State.DEGRADED) == at
    if at is not None:
        assert seen[at].reason == reason
        assert seen[at].since == pytest.approx(10.0 + at * DT)


# (id, (sent, received) rounds after the fresh good round, degraded?)
HALF_FULL_CASES: list[tuple[str, int, bool]] = [
    ("9 of 20 rounds: not judged", 8, False),
    ("10 of 20 rounds: judged", 9, True),
]


@pytest.mark.parametrize(("lossy", "degraded"), [c[1:] for c in HALF_FULL_CASES],
                         ids=[c[0] for c in HALF_FULL_CASES])
def test_loss_not_judged_before_the_window_is_half_full(lossy: int, degraded: bool) -> None:
    p = Params(up_count=1, loss_window=20)
    h = fresh_up(p)
    h, _ = feed(h, [Round(2, 1, (20.0,))] * lossy, p, t0=1.0, best=20.0)
    assert len(h.losses) == lossy + 1
    assert (h.state is State.DEGRADED) == degraded


# --- degraded: RTT --------------------------------------------------------------------------------

# (id, best path's RTT, this path's RTT, degraded?)   limit = max(best×3, best+150)
RTT_CASES: list[tuple[str, float, float, bool]] = [
    ("far above best+150", 20.0, 200.0, True),
    ("under best+150 although 8x best", 20.0, 160.0, False),
    ("just over best+150", 20.0, 171.0, True),
    ("exactly the limit is not over", 20.0, 170.0, False),
    ("slow best path: 3x rules", 100.0, 320.0, True),
    ("slow best path: under 3x", 100.0, 280.0, False),
    ("it is the best path", 200.0, 200.0, False),
]


@pytest.mark.parametrize(("best", "rtt", "degraded"), [c[1:] for c in RTT_CASES],
                         ids=[c[0] for c in RTT_CASES])
def test_degraded_on_rtt(best: float, rtt: float, degraded: bool) -> None:
    h, seen = feed(Health(), [steady(rtt)] * 30, best=best)
    assert seen[0].state is State.UP  # fresh: the first round brings it up
    at = first(seen, State.DEGRADED)
    if not degraded:
        assert at is None and h.state is State.UP
        return
    # the round that brought it up counts as the first of up_count bad rounds
    assert at == P.up_count - 1
    limit = max(best * 3, best + 150)
    assert seen[at].reason == f"RTT {rtt:.0f} ms > {limit:.0f} ms (best path {best:.0f} ms)"
    assert h.state is State.DEGRADED


NO_FLOOR = Params(degraded_rtt_ms=0.0)  # limit = 3 × best, calm limit = 2.4 × best

# SRTT stays 100 ms; the best path's RTT moves.  (id, best per round, index of the change)
TO_DEGRADED: list[tuple[str, list[float], int | None]] = [
    ("5 rounds over", [30.0] * 5, 4),
    ("an in-between round resets the count", [30.0] * 4 + [34.0] + [30.0] * 5, 9),
    ("hovering just under the limit never", [34.0, 33.0] * 30, None),
    ("4 over, then under", [30.0] * 4 + [34.0] * 20, None),
]


@pytest.mark.parametrize(("bests", "at"), [c[1:] for c in TO_DEGRADED],
                         ids=[c[0] for c in TO_DEGRADED])
def test_up_to_degraded_after_up_count_bad_rounds(bests: list[float], at: int | None) -> None:
    h = rtt_health(State.UP)
    seen = []
    for i, b in enumerate(bests):
        h = hl.on_round(h, steady(100.0), NO_FLOOR, i * DT, b)
        seen.append(h)
    assert first(seen, State.DEGRADED) == at
    assert all(s.state is State.UP for s in seen[:at])


# (id, best per round, index of the change, reason at the end)
TO_UP: list[tuple[str, list[float], int | None, str]] = [
    ("5 calm rounds", [50.0] * 5, 4, "recovered from degradation"),
    ("4 calm are not enough", [50.0] * 4, None,
     "improving: 4 of 5 rounds under the thresholds"),
    ("a not-calm round resets the count", [50.0] * 4 + [40.0] + [50.0] * 5, 9,
     "recovered from degradation"),
    # under the degraded limit (3×best) but over the calm one (2.4×best): stays degraded, and
    # the reason says what keeps it there
    ("hovering between calm and limit never", [40.0, 41.0, 39.0] * 20, None,
     "RTT 100 ms > 94 ms (best path 39 ms)"),
    ("hovering at the degraded limit never", [34.0, 33.0, 32.0] * 20, None,
     "RTT 100 ms > 77 ms (best path 32 ms)"),
]


@pytest.mark.parametrize(("bests", "at", "reason"), [c[1:] for c in TO_UP],
                         ids=[c[0] for c in TO_UP])
def test_degraded_back_to_up_after_calm_rounds(bests: list[float], at: int | None,
                                               reason: str) -> None:
    h = replace(rtt_health(State.DEGRADED), reason="RTT was bad")
    seen = []
    for i, b in enumerate(bests):
        h = hl.on_round(h, steady(100.0), NO_FLOOR, 1.0 + i * DT, b)
        seen.append(h)
    assert first(seen, State.UP) == at
    assert first(seen, State.DOWN) is None
    assert h.reason == reason
    if at is None:
        assert h.state is State.DEGRADED
        assert h.since == 0.0
    else:
        assert all(s.state is State.DEGRADED for s in seen[:at])
        assert seen[at].since == pytest.approx(1.0 + at * DT)


def test_hysteresis_a_path_hovering_at_the_threshold_does_not_flip() -> None:
    """RTT samples around the limit (170 ms with a 20 ms best path): it degrades once, stays."""
    rng = random.Random(7)
    h = fresh_up()
    states = []
    for i in range(2000):
        h = hl.on_round(h, steady(rng.uniform(150.0, 190.0)), P, 1.0 + i * DT, 20.0)
        states.append(h.state)
    changes = sum(1 for a, b in itertools.pairwise(states) if a is not b)
    assert changes <= 1
    assert states[-1] is State.DEGRADED


def test_hysteresis_on_loss() -> None:
    """15 % loss after being degraded: under the 20 % limit, over the 10 % calm one."""
    h = warm()
    h, _ = feed(h, [Round(2, 1, (20.0,))] * 30, t0=10.0, best=20.0)
    assert h.state is State.DEGRADED
    pattern = [(2, 1)] * 3 + [(2, 2)] * 7  # 3 of 20 probes lost: 15 %
    h, seen = feed(h, (Round(s, r, (20.0,) * r) for s, r in pattern * 20), t0=20.0, best=20.0)
    assert all(s.state is State.DEGRADED for s in seen)
    h, seen = feed(h, [steady(20.0)] * 40, t0=60.0, best=20.0)
    assert h.state is State.UP


@pytest.mark.parametrize("seq, at", [("BBB", 2), ("BGBGB", 4), ("GBBGB", 4)],
                         ids=["3 in a row", "3 of 5", "late"])
def test_degraded_path_still_goes_down(seq: str, at: int) -> None:
    h = rtt_health(State.DEGRADED, srtt=400.0)
    h, seen = feed(h, (steady(400.0) if c == "G" else BAD for c in seq), t0=5.0, best=20.0)
    assert first(seen, State.DOWN) == at
    assert all(s.state is State.DEGRADED for s in seen[:at])
    assert seen[at].reason.endswith("probe rounds got no reply")
    assert seen[at].falls == (5.0 + at * DT,)


def test_degraded_path_comes_back_up_not_degraded() -> None:
    """After an outage the path is judged afresh: up first, degraded only after up_count rounds."""
    h = rtt_health(State.DEGRADED, srtt=400.0)
    h, _ = feed(h, [BAD] * 3, t0=1.0, best=20.0)
    h, seen = feed(h, [steady(400.0)] * 10, t0=2.0, best=20.0)
    assert [s.state for s in seen] == [State.DOWN] * 4 + [State.UP] * 4 + [State.DEGRADED] * 2


def test_outage_losses_do_not_degrade_a_recovered_path() -> None:
    h = fresh_up()
    h, _ = feed(h, [GOOD] * 20, t0=0.1, best=20.0)
    h, _ = feed(h, [BAD] * 10, t0=5.0, best=20.0)  # a 1.5 s outage
    assert h.state is State.DOWN
    h, seen = feed(h, [GOOD] * 40, t0=10.0, best=20.0)  # a clean link again
    assert [s.state for s in seen] == [State.DOWN] * 4 + [State.UP] * 36


# --- RTT, timeout, loss numbers -------------------------------------------------------------------

# (id, samples in order, srtt, rttvar)   RFC 6298: first R → SRTT=R, RTTVAR=R/2; then
# RTTVAR = 3/4 RTTVAR + 1/4 |SRTT − R|, SRTT = 7/8 SRTT + 1/8 R; but a sample under half the
# SRTT restarts the estimate from it: SRTT = R, RTTVAR = min(3/4 RTTVAR, R/2)
SMOOTH_CASES: list[tuple[str, list[list[float]], float, float]] = [
    ("first sample", [[100.0]], 100.0, 50.0),
    ("second sample", [[100.0], [200.0]], 112.5, 62.5),
    ("two samples in one round", [[100.0, 200.0]], 112.5, 62.5),
    ("steady", [[100.0], [100.0], [100.0]], 100.0, 28.125),
    ("a drop to half", [[80.0], [40.0]], 75.0, 40.0),
    ("a drop under half: from there at once", [[80.0], [30.0]], 30.0, 15.0),
    ("a restart keeps less jitter", [[100.0], [100.0], [100.0], [100.0], [45.0]],
     45.0, 0.75 ** 3 * 50.0 * 0.75),
    ("a drop under half in one round, then a rise", [[100.0, 40.0], [60.0]], 42.5, 20.0),
    ("a round without replies keeps it", [[100.0], [], [200.0]], 112.5, 62.5),
]


@pytest.mark.parametrize(("rounds", "srtt", "rttvar"), [c[1:] for c in SMOOTH_CASES],
                         ids=[c[0] for c in SMOOTH_CASES])
def test_rtt_smoothing(rounds: list[list[float]], srtt: float, rttvar: float) -> None:
    h = Health()
    assert (h.srtt_ms, h.jitter_ms, h.last_rtt_ms) == (None, None, None)
    rs = [Round(2, len(r), tuple(r)) if r else Round(2, 1) for r in rounds]
    h, _ = feed(h, rs)
    assert h.srtt_ms == pytest.approx(srtt)
    assert h.rttvar_ms == pytest.approx(rttvar)
    assert h.jitter_ms == pytest.approx(rttvar)
    assert h.last_rtt_ms == [x for r in rounds for x in r][-1]


# (id, srtt, rttvar, params, timeout)
TIMEOUT_CASES: list[tuple[str, float | None, float, Params, float]] = [
    ("no sample yet: the maximum", None, 0.0, P, 1000.0),
    ("fast path: the minimum", 20.0, 5.0, P, 250.0),
    ("2·srtt + 4·rttvar", 100.0, 25.0, P, 300.0),
    ("slow path: the maximum", 400.0, 100.0, P, 1000.0),
    ("other bounds", 400.0, 100.0, Params(timeout_min_ms=10.0, timeout_max_ms=5000.0), 1200.0),
    ("other bounds, minimum", 1.0, 0.5, Params(timeout_min_ms=10.0, timeout_max_ms=5000.0), 10.0),
]


@pytest.mark.parametrize(("srtt", "rttvar", "p", "timeout"), [c[1:] for c in TIMEOUT_CASES],
                         ids=[c[0] for c in TIMEOUT_CASES])
def test_timeout_adapts(srtt: float | None, rttvar: float, p: Params, timeout: float) -> None:
    h = Health(srtt_ms=srtt, rttvar_ms=rttvar)
    assert h.timeout_ms(p) == pytest.approx(timeout)


def test_timeout_follows_the_measured_rtt() -> None:
    h, _ = feed(Health(), [steady(100.0)])  # srtt 100, rttvar 50 (after 2 samples: 37.5)
    assert h.timeout_ms(P) == pytest.approx(2 * 100 + 4 * 37.5)
    h, _ = feed(h, [steady(100.0)] * 40, t0=1.0)
    assert h.timeout_ms(P) == pytest.approx(250.0)  # steady 100 ms: rttvar → 0, 200 → min 250


# (id, (sent, received) of the rounds, loss_window, loss %)
LOSS_PCT_CASES: list[tuple[str, list[tuple[int, int]], int, float | None]] = [
    ("no round", [], 20, None),
    ("nothing sent", [(0, 0), (0, 0)], 20, None),
    ("none lost", [(2, 2)] * 5, 20, 0.0),
    ("all lost", [(2, 0)] * 5, 20, 100.0),
    ("one of four", [(2, 1), (2, 2)], 20, 25.0),
    ("targets differ per round", [(3, 3), (1, 0)], 20, 25.0),
    ("old rounds slide out", [(2, 0)] * 5 + [(2, 2)] * 20, 20, 0.0),
    ("partly slid out", [(2, 0)] * 5 + [(2, 2)] * 18, 20, 10.0),
]


@pytest.mark.parametrize(("rounds", "window", "pct"), [c[1:] for c in LOSS_PCT_CASES],
                         ids=[c[0] for c in LOSS_PCT_CASES])
def test_loss_pct(rounds: list[tuple[int, int]], window: int, pct: float | None) -> None:
    p = Params(loss_window=window, down_count=100, down_window=100)
    h, _ = feed(Health(), (Round(s, r, (20.0,) * r) for s, r in rounds), p)
    assert h.loss_pct == (None if pct is None else pytest.approx(pct))
    assert len(h.losses) == min(window, len(rounds))
    assert h.rounds == len(rounds)


# --- helpers around the machine -------------------------------------------------------------------

@pytest.mark.parametrize(("paths", "best"), [
    ([], None),
    ([(State.UP, 50.0), (State.DEGRADED, 30.0), (State.DOWN, 5.0)], 30.0),
    ([(State.DOWN, 5.0), (State.DISABLED, 1.0)], None),
    ([(State.UP, None), (State.UP, 80.0)], 80.0),
], ids=["none", "live only", "none live", "no sample"])
def test_best_rtt(paths: list[tuple[State, float | None]], best: float | None) -> None:
    assert hl.best_rtt(Health(state=s, srtt_ms=r) for s, r in paths) == best


@pytest.mark.parametrize(("state", "live"), [(State.UP, True), (State.DEGRADED, True),
                                             (State.DOWN, False), (State.DISABLED, False)])
def test_state_live(state: State, live: bool) -> None:
    assert state.live is live


# --- simulation -----------------------------------------------------------------------------------

def test_simulated_5pct_probe_loss_never_takes_a_path_down_but_a_blackhole_does() -> None:
    rng = random.Random(20240601)
    h = fresh_up()
    t = DT
    sent = received = 0
    states: set[State] = set()
    for _ in range(10_000):
        rtts = tuple(rng.uniform(20.0, 40.0) for _ in range(2) if rng.random() >= 0.05)
        h = hl.on_round(h, Round(2, len(rtts), rtts), P, t, h.srtt_ms)
        sent, received = sent + 2, received + len(rtts)
        states.add(h.state)
        t += DT
    assert 4.5 < 100 * (sent - received) / sent < 5.5  # the simulation is what it claims
    assert h.rounds == 10_001
    assert State.DOWN not in states
    assert h.falls == ()
    seen = []
    for i in range(3):
        h = hl.on_round(h, Round(2, 0), P, t + i * DT, h.srtt_ms)
        seen.append(h.state)
    assert seen[0].live and seen[1].live
    assert seen[2] is State.DOWN
    assert h.reason == "3 of the last 5 probe rounds got no reply"


# --- a path with two address families (combine) -------------------------------------------------

def fam(state: State, reason: str = "") -> Health:
    return Health(state=state, reason=reason or str(state), fresh=False)


# (id, (label, health) per family, the path's state, reason, index of the deciding family)
COMBINE_CASES: list[tuple[str, list[tuple[str, Health]], State, str, int]] = [
    ("one family: as it is", [("IPv4", fam(State.DOWN, "3 of the last 5 probe rounds got no "
                                                       "reply"))],
     State.DOWN, "3 of the last 5 probe rounds got no reply", 0),
    ("both up: IPv4 decides", [("IPv4", fam(State.UP)), ("IPv6", fam(State.UP))],
     State.UP, "up", 0),
    ("IPv4 down, IPv6 up: up (the link still carries)",
     [("IPv4", fam(State.DOWN, "timeout")), ("IPv6", fam(State.UP))], State.UP, "up", 1),
    ("IPv6 down, IPv4 up: up", [("IPv4", fam(State.UP)), ("IPv6", fam(State.DOWN, "x"))],
     State.UP, "up", 0),
    ("up beats degraded", [("IPv4", fam(State.DEGRADED, "loss 30%")), ("IPv6", fam(State.UP))],
     State.UP, "up", 1),
    ("degraded when the best is: its reason, named",
     [("IPv4", fam(State.DOWN, "no reply")), ("IPv6", fam(State.DEGRADED, "loss 30% ≥ 20%"))],
     State.DEGRADED, "IPv6: loss 30% ≥ 20%", 1),
    ("both down for different reasons: both named",
     [("IPv4", fam(State.DOWN, "3 of the last 5 probe rounds got no reply")),
      ("IPv6", fam(State.DOWN, "address 2001:db8::2 removed from wan1"))], State.DOWN,
     "IPv4: 3 of the last 5 probe rounds got no reply; IPv6: address 2001:db8::2 removed from "
     "wan1", 0),
    ("both down for one reason: said once",
     [("IPv4", fam(State.DOWN, "carrier lost on wan1")),
      ("IPv6", fam(State.DOWN, "carrier lost on wan1"))], State.DOWN, "carrier lost on wan1", 0),
    ("disabled", [("IPv4", fam(State.DISABLED, "disabled")),
                  ("IPv6", fam(State.DISABLED, "disabled"))], State.DISABLED, "disabled", 0),
]


@pytest.mark.parametrize(("families", "state", "reason", "index"),
                         [c[1:] for c in COMBINE_CASES], ids=[c[0] for c in COMBINE_CASES])
def test_combine_families(families: list[tuple[str, Health]], state: State, reason: str,
                          index: int) -> None:
    assert hl.combine(families) == (state, reason, index)


def test_combine_needs_a_family() -> None:
    with pytest.raises(ValueError):
        hl.combine([])


def test_a_blackholed_link_goes_down_in_both_families_within_the_same_rounds() -> None:
    """Both families probe at the same interval: the path is down when the later one is, a
    round later at most, and each family's own down comes after the same number of rounds."""
    h4, h6 = fresh_up(), fresh_up()
    t = 0.0
    down_at: dict[str, float] = {}
    for i in range(8):
        t = (i + 1) * DT
        h4 = hl.on_round(h4, BAD, P, t)
        h6 = hl.on_round(h6, BAD, P, t + DT / 3)  # the other prober's phase
        for label, h, at in (("IPv4", h4, t), ("IPv6", h6, t + DT / 3)):
            if h.state is State.DOWN:
                down_at.setdefault(label, at)
        state, _, _ = hl.combine([("IPv4", h4), ("IPv6", h6)])
        if state is State.DOWN:
            down_at.setdefault("path", t + DT / 3)
    assert down_at["IPv4"] == pytest.approx(3 * DT)
    assert down_at["path"] - down_at["IPv4"] < DT
