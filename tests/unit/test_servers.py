"""Server health and the active-server choice (bonding.core.servers): tables of cases.

Rounds are written as strings: 'G' both live paths answered, 'H' one of two answered (the other
path is dying: not the server's fault), 'B' none answered, 'N' no live path to probe through.
Time advances 0.5 s per round (the default server_probe_interval_ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pytest

from bonding.core import servers as sv
from bonding.core.servers import (
    Attempt,
    Candidate,
    Choice,
    Failback,
    Health,
    Params,
    Round,
    ServerState,
)

DT = 0.5
P = Params()  # down after 3 failed rounds in a row, up after 3 good, failback return, hold 60 s
ROUNDS = {
    "G": Round((Attempt("wan1", True, 20.0), Attempt("wan2", True, 40.0))),
    "H": Round((Attempt("wan1", True, 20.0), Attempt("wan2", False, error="no answer"))),
    "B": Round((Attempt("wan1", False, error="connection refused"),
                Attempt("wan2", False, error="no answer within 250 ms"))),
    "N": Round(()),
}


def feed(h: Health, rounds: Iterable[str], p: Params = P, t0: float = 0.0
         ) -> tuple[Health, list[Health]]:
    seen = []
    for i, c in enumerate(rounds):
        h = sv.on_round(h, ROUNDS[c], p, t0 + i * DT)
        seen.append(h)
    return h, seen


def first(seen: Sequence[Health], up: bool | None) -> int | None:
    return next((i for i, h in enumerate(seen) if h.up is up), None)


UP = Health(up=True, reason="answers", since=0.0)
DOWN = Health(up=False, reason="no answer", since=0.0)

# (id, start, rounds, params, round at which it goes down / None, round at which up / None)
HEALTH_CASES: list[tuple[str, Health, str, Params, int | None, int | None]] = [
    ("never judged: the first good round is up", Health(), "G", P, None, 0),
    ("never judged: down after 3 failed rounds", Health(), "BBB", P, 2, None),
    ("up: 2 failed rounds are not down", UP, "BBGBBG", P, None, None),
    ("up: 3 failed rounds in a row are down", UP, "GBBB", P, 3, None),
    ("up: one path failing is not the server failing", UP, "HHHHHHHHHH", P, None, None),
    ("up: rounds without a live path judge nothing", UP, "BBNNNBB", P, None, None),
    ("up: down_count 1", UP, "GB", Params(down_count=1), 1, None),
    ("down: 2 good rounds are not up", DOWN, "GGBGG", P, None, None),
    ("down: 3 good rounds in a row are up", DOWN, "GGG", P, None, 2),
    ("down: a failed round restarts the count", DOWN, "GGBGGG", P, None, 5),
    ("down: one answering path is enough", DOWN, "HHH", P, None, 2),
    ("down: up_count 5", DOWN, "GGGGG", Params(up_count=5), None, 4),
]


@pytest.mark.parametrize(("start", "rounds", "p", "down_at", "up_at"),
                         [c[1:] for c in HEALTH_CASES], ids=[c[0] for c in HEALTH_CASES])
def test_health(start: Health, rounds: str, p: Params, down_at: int | None,
                up_at: int | None) -> None:
    _, seen = feed(start, rounds, p)
    if start.up is not False:
        assert first(seen, False) == down_at
    if start.up is not True:
        assert first(seen, True) == up_at


def test_the_down_reason_names_every_path_and_the_count() -> None:
    h, _ = feed(UP, "BBB")
    assert h.up is False and h.since == 2 * DT
    assert h.reason == ("no answer through any live path: wan1 connection refused, "
                        "wan2 no answer within 250 ms (3 rounds in a row)")
    h, _ = feed(DOWN, "GG")
    assert h.reason == "recovering: 2 of 3 good rounds"
    h, _ = feed(DOWN, "GGH")
    assert h.up is True and h.reason == "answers through 1 of 2 live paths"
    h, _ = feed(Health(), "N")
    assert h.up is None and h.reason == "no live path to probe it through"


def test_a_flapping_server_needs_more_good_rounds() -> None:
    h = UP
    needed = []
    for cycle in range(5):
        t0 = cycle * 20.0
        h, _ = feed(h, "BBB", t0=t0)
        assert h.up is False
        n = 0
        while h.up is not True:
            h = sv.on_round(h, ROUNDS["G"], P, t0 + 2 + n * DT)
            n += 1
        needed.append(n)
    assert needed == [3, 6, 12, 24, 24]  # doubled per extra fall in 5 minutes, at most 8×
    # five quiet minutes later: back to the plain count
    h, _ = feed(h, "BBB", t0=1000.0)
    _, seen = feed(h, "GGG", t0=1002.0)
    assert first(seen, True) == 2


# --- the choice -----------------------------------------------------------------------------------

def h(up: bool | None, since: float = 0.0) -> Health:
    return Health(up=up, reason={True: "answers", False: "refused", None: "not probed yet"}[up],
                  since=since)


def cands(*healths: Health) -> list[Candidate]:
    return [Candidate(n, x) for n, x in zip(("a", "b", "c"), healths, strict=False)]


STAY = Params(failback=Failback.STAY)
NOW = 1000.0

# (id, previous active, candidates (a, b, c preferred first), params, active after, reason part)
CHOICE_CASES: list[tuple[str, str | None, list[Candidate], Params, str | None, str]] = [
    ("no enabled server", "a", [], P, None, "no enabled server"),
    ("start: the preferred one without waiting for probes", None,
     cands(h(None), h(None)), P, "a", "the preferred server"),
    ("start: the preferred one known down is skipped", None,
     cands(h(False), h(True)), P, "b", "a is"),
    ("start: an unknown one before a down one", None,
     cands(h(False), h(None)), P, "b", "not down"),
    ("start: all down, the preferred one", None,
     cands(h(False), h(False)), P, "a", ""),
    ("active down: the next that answers", "a",
     cands(h(False), h(True)), P, "b", "a stopped answering: refused"),
    ("active down: skip one that is down too", "a",
     cands(h(False), h(False), h(True)), P, "c", "a stopped answering"),
    ("active down: the most preferred that answers", "c",
     cands(h(True), h(True), h(False)), STAY, "a", "c stopped answering"),
    ("active down, nothing answers: kept", "a",
     cands(h(False), h(False)), P, "a", "no other server does: kept in use"),
    ("active down, the other not judged yet: kept", "a",
     cands(h(False), h(None)), P, "a", "kept in use"),
    ("return: preferred answering shorter than the hold time: stay", "b",
     cands(h(True, NOW - 59), h(True)), P, "b", ""),
    ("return: preferred answering for the hold time: back", "b",
     cands(h(True, NOW - 60), h(True)), P, "a", "back to a, preferred over b"),
    ("return: the most preferred of those held long enough", "c",
     cands(h(True, NOW - 100), h(True, NOW - 100), h(True)), P, "a", "back to a"),
    ("return: skips a preferred one still holding", "c",
     cands(h(True, NOW - 10), h(True, NOW - 100), h(True)), P, "b", "back to b"),
    ("return: not to a less preferred one", "a",
     cands(h(True), h(True, NOW - 1000)), P, "a", ""),
    ("return with hold 0: as soon as it is up", "b",
     cands(h(True, NOW), h(True)), Params(hold_s=0), "a", "back to a"),
    ("stay: the preferred one answering for long changes nothing", "b",
     cands(h(True, NOW - 1e6), h(True)), STAY, "b", ""),
    ("active removed or disabled", "x",
     cands(h(None), h(True)), P, "b", "server x was removed or disabled"),
    ("active not judged yet: kept", "a",
     cands(h(None), h(True)), P, "a", ""),
]


@pytest.mark.parametrize(("prev", "cs", "p", "active", "why"), [c[1:] for c in CHOICE_CASES],
                         ids=[c[0] for c in CHOICE_CASES])
def test_choose(prev: str | None, cs: list[Candidate], p: Params, active: str | None,
                why: str) -> None:
    before = Choice(prev, "before", 1.0)
    got = sv.choose(before, cs, p, NOW)
    assert got.active == active
    assert why in got.reason
    if active != prev:
        assert got.since == NOW
    else:
        assert got.since == before.since  # no change: no new since (no event)


def test_choose_is_stable_when_nothing_changes() -> None:
    cs = cands(h(False), h(False))
    c1 = sv.choose(Choice("a", "x", 1.0), cs, P, NOW)
    assert sv.choose(c1, cs, P, NOW + 1) is c1
    none = sv.choose(c1, [], P, NOW)
    assert sv.choose(none, [], P, NOW + 5) is none


# (id, enabled, health, active, state)
STATE_CASES: list[tuple[str, bool, Health, str | None, ServerState]] = [
    ("disabled", False, h(True), "a", ServerState.DISABLED),
    ("down, even in use", True, h(False), "a", ServerState.DOWN),
    ("in use", True, h(True), "a", ServerState.ACTIVE),
    ("in use, not judged yet", True, h(None), "a", ServerState.ACTIVE),
    ("answering, not in use", True, h(True), "b", ServerState.STANDBY),
    ("not judged, not in use", True, h(None), None, ServerState.STANDBY),
]


@pytest.mark.parametrize(("enabled", "health", "active", "state"), [c[1:] for c in STATE_CASES],
                         ids=[c[0] for c in STATE_CASES])
def test_state(enabled: bool, health: Health, active: str | None, state: ServerState) -> None:
    assert sv.state("a", enabled, health, Choice(active)) is state


def test_reasons_say_why() -> None:
    choice = Choice("b", "a stopped answering: refused", 0.0)
    cs = cands(h(True, NOW - 20), h(True))
    st = sv.state("a", True, cs[0].health, choice)
    assert sv.reason("a", st, cs[0].health, choice, cs, P, NOW) == \
        "answers; preferred over b: back to it once it has answered for 60 s (40 s left)"
    assert "stays in use (failback 'stay')" in sv.reason("a", st, cs[0].health, choice, cs,
                                                         STAY, NOW)
    assert sv.reason("b", ServerState.ACTIVE, cs[1].health, choice, cs, P, NOW) == \
        "a stopped answering: refused"
    kept = Choice("a", "kept", 0.0)
    assert sv.reason("a", ServerState.DOWN, h(False), kept, cs, P, NOW) == \
        "refused (still in use: no other server answers)"
    # a less preferred standby only says how it is
    assert sv.reason("c", ServerState.STANDBY, h(True), kept, cands(h(True), h(True), h(True)),
                     P, NOW) == "answers"


# --- whole scenarios: two servers, rounds every 0.5 s -----------------------------------------

def run(pattern_a: Callable[[float], str], pattern_b: Callable[[float], str], p: Params,
        seconds: float) -> list[tuple[float, str | None]]:
    """Feed both servers' rounds and choose after each; returns (time, active) at each change."""
    ha, hb = Health(), Health()
    choice = Choice()
    changes: list[tuple[float, str | None]] = []
    t = 0.0
    while t < seconds:
        ha = sv.on_round(ha, ROUNDS[pattern_a(t)], p, t)
        hb = sv.on_round(hb, ROUNDS[pattern_b(t)], p, t)
        new = sv.choose(choice, [Candidate("a", ha), Candidate("b", hb)], p, t)
        if new.active != choice.active:
            changes.append((t, new.active))
        choice = new
        t += DT
    return changes


def test_failover_then_return_after_the_hold_time() -> None:
    def a(t: float) -> str:
        return "B" if 10 <= t < 20 else "G"

    changes = run(a, lambda t: "G", P, 120)
    assert [x[1] for x in changes] == ["a", "b", "a"]
    assert 10 <= changes[1][0] <= 10 + 3 * DT  # the third failed round
    # back once a has answered 3 rounds (up) and then 60 s
    assert 20 + 60 <= changes[2][0] <= 20 + 2 * DT + 60 + DT


def test_failover_with_stay_does_not_return() -> None:
    def a(t: float) -> str:
        return "B" if 10 <= t < 20 else "G"

    changes = run(a, lambda t: "G", STAY, 300)
    assert [x[1] for x in changes] == ["a", "b"]


def test_a_flapping_server_does_not_take_traffic_back() -> None:
    def a(t: float) -> str:  # 7 s alive, 3 s dead, over and over
        return "B" if t % 10 >= 7 else "G"

    changes = run(a, lambda t: "G", P, 600)
    assert [x[1] for x in changes] == ["a", "b"]  # one failover, no storm
    # with hold 0 the up count still doubles: a few returns, not one per flap
    many = run(a, lambda t: "G", Params(hold_s=0), 600)
    assert len(many) <= 10, many


def test_both_servers_unreachable_because_every_path_died() -> None:
    # the paths die: rounds fail on both until the paths are declared down, then judge nothing
    def pat(t: float) -> str:
        return "G" if t < 10 else ("B" if t < 11 else "N")

    changes = run(pat, pat, P, 60)
    assert [x[1] for x in changes] == ["a"]  # never switched
