"""Server health and the choice of the active server: pure state machines.

No I/O and no clock here: callers pass `now` (monotonic seconds) and get new frozen values back.

bondingd probes every enabled server through every live path each round (a TCP connect to the
server's port: it proves the server's proxy listens).  A round is good when any path got an
answer; a round with no live path to probe through judges nothing (a path being down is not a
server being down).

Health, per server:
- down after `down_count` failed rounds in a row (refused, reset or timed out through every path);
- up after `up_count` good rounds in a row; a server never judged is up on its first good round;
  one that fell recently needs more: `up_count` doubled for each extra fall in FLAP_WINDOW_S,
  up to 8× (failing again while still held down after `up_count` good rounds counts as a fall).

The active server (the one the data plane uses), among the enabled servers, preferred first:
- at start, the most preferred one that is not known to be down (no waiting for probes);
- when the active one is down, the most preferred one that answers; when none answers, the active
  one is kept (nothing better to go to; this is also what happens when every path is dead);
- failback 'return': a server preferred over the active one that has answered for `hold_s` in a
  row takes over; 'stay': the active one stays until it fails.  The hold time and the up count
  are the hysteresis: a flapping server never answers long enough to take traffic back.

`state()` turns health and choice into what status shows: active, standby, down or disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

FLAP_WINDOW_S = 300.0
MAX_FLAP_SHIFT = 3


class Failback(StrEnum):
    RETURN = "return"
    STAY = "stay"


class ServerState(StrEnum):
    ACTIVE = "active"  # the data plane uses it
    STANDBY = "standby"  # enabled, not down, not in use
    DOWN = "down"  # stopped answering through every live path
    DISABLED = "disabled"  # disabled in the config, or bonding/the proxy is off


@dataclass(frozen=True)
class Params:
    down_count: int = 3
    up_count: int = 3
    failback: Failback = Failback.RETURN
    hold_s: float = 60.0



@dataclass(frozen=True)
class Attempt:
    """One probe of a server through one path."""

    path: str
    ok: bool
    rtt_ms: float | None = None
    error: str = ""  # why it failed: "connection refused", "no answer within 250 ms", ...


@dataclass(frozen=True)
class Round:
    """One probe round of a server: an attempt through each live path."""

    attempts: tuple[Attempt, ...]

    @property
    def judged(self) -> bool:
        return bool(self.attempts)

    @property
    def ok(self) -> bool:
        return any(a.ok for a in self.attempts)

    def failure(self) -> str:
        """Why the round failed, in words (every path's error)."""
        return "no answer through any live path: " + ", ".join(
            f"{a.path} {a.error or 'failed'}" for a in self.attempts)


@dataclass(frozen=True)
class Health:
    up: bool | None = None  # None: not judged yet
    reason: str = "not probed yet"
    since: float = 0.0  # when `up` last changed
    fail_streak: int = 0
    good_streak: int = 0
    falls: tuple[float, ...] = ()  # times it went down from up, last FLAP_WINDOW_S
    rounds: int = 0

    def up_needed(self, p: Params, now: float) -> int:
        if self.up is None:
            return 1
        recent = sum(1 for t in self.falls if now - t <= FLAP_WINDOW_S)
        return p.up_count << min(MAX_FLAP_SHIFT, max(0, recent - 1))

    def answering_for(self, now: float) -> float:
        """Seconds it has been up in a row (0 when it is not up)."""
        return now - self.since if self.up else 0.0


def on_round(h: Health, r: Round, p: Params, now: float) -> Health:
    """Account one finished probe round of a server."""
    if not r.judged:
        # No live path: nothing learnt, and failures so far may have been the paths dying.
        reason = "no live path to probe it through" if h.up is None else h.reason
        return replace(h, fail_streak=0, good_streak=0, reason=reason)
    h = replace(h, rounds=h.rounds + 1)
    if r.ok:
        good = h.good_streak + 1
        h = replace(h, good_streak=good, fail_streak=0)
        answered = sum(1 for a in r.attempts if a.ok)
        words = f"answers through {answered} of {len(r.attempts)} live paths"
        if h.up is True:
            return replace(h, reason=words)
        needed = h.up_needed(p, now)
        if good >= needed:
            return replace(h, up=True, since=now, reason=words)
        return replace(h, reason=f"recovering: {good} of {needed} good rounds")
    fails = h.fail_streak + 1
    relapse = h.up is False and h.good_streak >= p.up_count
    h = replace(h, fail_streak=fails, good_streak=0)
    if h.up is False:
        # Failing again after answering long enough to count as up by the plain rule: a flap
        # too, so the penalty lasts as long as the flapping does.
        falls = (*(t for t in h.falls if now - t <= FLAP_WINDOW_S), now) if relapse else h.falls
        return replace(h, reason=r.failure(), falls=falls)
    if fails >= p.down_count:
        falls = h.falls
        if h.up is True:
            falls = (*(t for t in h.falls if now - t <= FLAP_WINDOW_S), now)
        return replace(h, up=False, since=now, falls=falls,
                       reason=f"{r.failure()} ({fails} rounds in a row)")
    return h


@dataclass(frozen=True)
class Candidate:
    """An enabled server as choose() sees it."""

    name: str
    health: Health


@dataclass(frozen=True)
class Choice:
    active: str | None = None
    reason: str = "no server chosen yet"
    since: float = 0.0  # when `active` last changed


def _first(cands: Sequence[Candidate], up: bool | None, *, besides: str | None = None,
           not_down: bool = False) -> Candidate | None:
    for c in cands:
        if c.name == besides:
            continue
        if (c.health.up is not False) if not_down else (c.health.up is up):
            return c
    return None


def choose(prev: Choice, cands: Sequence[Candidate], p: Params, now: float) -> Choice:
    """The active server after `prev`; `cands`: the enabled servers, preferred first."""
    if not cands:
        if prev.active is None and prev.reason == "no enabled server":
            return prev
        return Choice(None, "no enabled server", now)
    current = next((c for c in cands if c.name == prev.active), None)
    if current is None:
        pick = _first(cands, True) or _first(cands, None, not_down=True) or cands[0]
        if prev.active is None:
            why = ("the preferred server" if pick is cands[0]
                   else f"the most preferred server that is not down ({cands[0].name} is)")
        else:
            why = f"server {prev.active} was removed or disabled"
        return Choice(pick.name, why, now)
    if current.health.up is False:
        alt = _first(cands, True, besides=current.name)
        if alt is not None:
            return Choice(alt.name, f"{current.name} stopped answering: {current.health.reason}",
                          now)
        kept = f"{current.name} does not answer and no other server does: kept in use"
        return prev if prev.reason == kept else replace(prev, reason=kept)
    if p.failback is Failback.RETURN:
        for c in cands:
            if c is current:
                break
            held = c.health.answering_for(now)
            if c.health.up and held >= p.hold_s:
                return Choice(c.name, f"back to {c.name}, preferred over {current.name}: it "
                                      f"has answered for {held:.0f} s (hold time "
                                      f"{p.hold_s:.0f} s)", now)
    return prev


def state(name: str, enabled: bool, health: Health, choice: Choice) -> ServerState:
    if not enabled:
        return ServerState.DISABLED
    if health.up is False:
        return ServerState.DOWN
    if choice.active == name:
        return ServerState.ACTIVE
    return ServerState.STANDBY


def reason(name: str, st: ServerState, health: Health, choice: Choice,
           cands: Sequence[Candidate], p: Params, now: float) -> str:
    """Why a server is in its state, in words, for status."""
    if st is ServerState.ACTIVE:
        return choice.reason
    if st is ServerState.DOWN:
        return health.reason + (" (still in use: no other server answers)"
                                if choice.active == name else "")
    if st is ServerState.STANDBY and health.up and choice.active is not None:
        order = [c.name for c in cands]
        if name in order and choice.active in order and \
                order.index(name) < order.index(choice.active):
            if p.failback is Failback.STAY:
                return (f"{health.reason}; preferred over {choice.active}, which stays in use "
                        "(failback 'stay')")
            left = max(0.0, p.hold_s - health.answering_for(now))
            return (f"{health.reason}; preferred over {choice.active}: back to it once it has "
                    f"answered for {p.hold_s:.0f} s ({left:.0f} s left)")
    return health.reason


@dataclass(frozen=True)
class Rtt:
    """Smoothed RTT of a server through one path (RFC 6298), for the probe's timeout."""

    srtt_ms: float | None = None
    rttvar_ms: float = 0.0

    def update(self, sample_ms: float) -> Rtt:
        if self.srtt_ms is None:
            return Rtt(sample_ms, sample_ms / 2)
        var = 0.75 * self.rttvar_ms + 0.25 * abs(self.srtt_ms - sample_ms)
        return Rtt(0.875 * self.srtt_ms + 0.125 * sample_ms, var)

    def timeout_ms(self, lo_ms: float, hi_ms: float) -> float:
        """2·SRTT + 4·RTTVAR within [lo_ms, hi_ms]; hi_ms while nothing was measured."""
        if self.srtt_ms is None:
            return hi_ms
        return min(hi_ms, max(lo_ms, 2 * self.srtt_ms + 4 * self.rttvar_ms))
