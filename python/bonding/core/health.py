"""Path health: a pure state machine fed with probe rounds and link events.

No I/O and no clock here: callers pass `now` (monotonic seconds).  Every transition returns a new
frozen `Health`; `Health.state`, `reason` and `since` are what status shows.

Rules (DESIGN 3.3):
- down after `down_count` failed rounds among the last `down_window`;
- up after `up_count` good rounds in a row (the very first good round for a path never seen up,
  so a starting daemon does not wait); a path that flaps needs more: `up_count` doubled for each
  extra fall in the last minute, up to 8×;
- degraded (→ backup) when loss or RTT is far worse than the best path's for `up_count` rounds in
  a row, back to up after `up_count` rounds comfortably below the thresholds;
- carrier loss or address removal: down at once, without waiting for probes.

How fast a silent death is noticed (DESIGN §6: ≤ 1 s, also just after a path came up)
------------------------------------------------------------------------------------------
A round that gets no answer is known to have failed only when its reply timeout T has passed
(bonding.probe: a round ends at its start + the targets' stagger + T).  With rounds every I
(150 ms) and down after K = 3 failed rounds, a blackhole that falls just after a round was
answered is declared when the K-th failed round ends: after at most K·I + stagger + T
≈ 470 ms + T.  The cadence and the count are fixed (BFD's detect multiplier × interval);
T is what varies, so T decides the worst case: the promise holds while T ≤ ~500 ms.

T is TCP's retransmission timeout recipe (RFC 6298, clamped to [timeout_min, timeout_max]
as Linux clamps its RTO to [200 ms, 120 s]): 2·SRTT + 4·RTTVAR from smoothed samples.  Its
weak spot is the start.  The first echoes of a fresh path, or of a family whose neighbour
cache is cold (IPv6 neighbour discovery retries after 1 s), wait in the kernel's neighbour
queue and are answered together: RTTs of ~1000, 850, 700 … ms, then the path's real 80 ms.
RFC 6298's gains (1/8, 1/4) are meant for one sample per RTT; at one sample per round they
take ~20 rounds (3 s) to forget such a start, and each falling sample makes RTTVAR larger,
so T stayed at its 1 s maximum for ~2 s and above 500 ms for ~3 s after the path came up:
a death then took up to 1.5 s to notice (bench/detect.py: 5 of 60 blackholes over 1 s, all
of them IPv6 families that had come up within 2 s).

So a sample under half the SRTT restarts the estimate from it, as from a first sample:
SRTT = R, RTTVAR at most R/2 (and no more than ¾ of what it was: the fall is no sign of more
jitter; Linux's tcp_rtt_estimator likewise, after Eifel, keeps a falling RTT from raising its
mdev).  Queueing only ever adds delay, so an answer that fast says the estimate was of
something else (answers queued behind neighbour discovery, a queue that has drained), not of
jitter around it.  Any other sample is smoothed as RFC 6298 says, so T still grows with a path
whose queue builds up, and a jittery path keeps its RTTVAR.  After the start above, T is ~320
ms from the first round after the queued answers and at its minimum (250 ms) three rounds
later.  A milder start (first answers under twice the RTT) is smoothed as RFC 6298 says:
T is at most 4·R of its first sample R and falls from there.  The price, in a model of a path
with heavy-tailed jitter (lognormal RTT, median 60 ms, σ 0.7: 16% of its answers under half
its median), is more rounds past their timeout (1.8% instead of 1.25%); on paths with ordinary
jitter it is RFC 6298 unchanged.  A path whose RTT is above ~200 ms cannot keep the 1 s promise
by probing (T must exceed its RTT): T follows it up to timeout_max rather than declaring a slow
path dead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

FLAP_WINDOW_S = 60.0
MAX_FLAP_SHIFT = 3


class State(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    DISABLED = "disabled"

    @property
    def live(self) -> bool:
        """Carries traffic (an MPTCP endpoint exists for it)."""
        return self in (State.UP, State.DEGRADED)


@dataclass(frozen=True)
class Params:
    down_count: int = 3
    down_window: int = 5
    up_count: int = 5
    degraded_loss_pct: float = 20.0
    degraded_rtt_factor: float = 3.0
    degraded_rtt_ms: float = 150.0
    loss_window: int = 20
    timeout_min_ms: float = 250.0
    timeout_max_ms: float = 1000.0


@dataclass(frozen=True)
class Round:
    """The outcome of one probe round: the echoes it sent (one per target at most) and the
    answers."""

    sent: int
    received: int
    rtts_ms: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return self.received > 0


@dataclass(frozen=True)
class Health:
    state: State = State.DOWN
    reason: str = "no probe answered yet"
    since: float = 0.0
    window: tuple[bool, ...] = ()  # outcomes of the last down_window rounds, newest last
    good_streak: int = 0
    fresh: bool = True  # never up since it was (re)enabled: one good round brings it up
    link_ok: bool = True  # carrier present and address configured
    srtt_ms: float | None = None
    rttvar_ms: float = 0.0
    last_rtt_ms: float | None = None
    losses: tuple[tuple[int, int], ...] = ()  # (sent, received) of the last loss_window rounds
    bad_streak: int = 0  # rounds in a row over the degraded thresholds
    calm_streak: int = 0  # rounds in a row comfortably under them
    falls: tuple[float, ...] = ()  # times it went down, last FLAP_WINDOW_S
    rounds: int = 0

    @property
    def loss_pct(self) -> float | None:
        sent = sum(s for s, _ in self.losses)
        if sent == 0:
            return None
        return 100.0 * (sent - sum(r for _, r in self.losses)) / sent

    @property
    def jitter_ms(self) -> float | None:
        return None if self.srtt_ms is None else self.rttvar_ms

    def timeout_ms(self, p: Params) -> float:
        """How long to wait for a reply: 2·SRTT + 4·RTTVAR, within the configured bounds."""
        if self.srtt_ms is None:
            return p.timeout_max_ms
        return min(p.timeout_max_ms, max(p.timeout_min_ms, 2 * self.srtt_ms + 4 * self.rttvar_ms))

    def up_needed(self, p: Params, now: float) -> int:
        if self.fresh:
            return 1
        recent = sum(1 for t in self.falls if now - t <= FLAP_WINDOW_S)
        return p.up_count << min(MAX_FLAP_SHIFT, max(0, recent - 1))


def _to(h: Health, state: State, reason: str, now: float, **kw: object) -> Health:
    if state is h.state:
        return replace(h, reason=reason, **kw)  # type: ignore[arg-type]
    falls = h.falls
    if state is State.DOWN and h.state.live:
        falls = (*(t for t in h.falls if now - t <= FLAP_WINDOW_S), now)
    extra: dict[str, object] = {"falls": falls, "bad_streak": 0, "calm_streak": 0}
    if state.live and not h.state.live:
        extra["window"] = ()  # old failures must not take it straight down again
        if not h.fresh:
            extra["losses"] = ()  # nor the outage's losses make it degraded
        extra["fresh"] = False
    extra.update(kw)
    return replace(h, state=state, reason=reason, since=now, **extra)  # type: ignore[arg-type]


def _update_rtt(h: Health, rtts: Iterable[float]) -> tuple[float | None, float, float | None]:
    """RFC 6298 smoothing over the round's samples, restarted from a sample under half the
    SRTT (see the module's docstring)."""
    srtt, var, last = h.srtt_ms, h.rttvar_ms, h.last_rtt_ms
    for r in rtts:
        last = r
        if srtt is None:
            srtt, var = r, r / 2
        elif r < srtt / 2:
            srtt, var = r, min(0.75 * var, r / 2)
        else:
            var = 0.75 * var + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
    return srtt, var, last


def degraded_reason(h: Health, p: Params, best_rtt_ms: float | None, *, calm: bool = False) -> str:
    """Why the path is far worse than the best one, or '' when it is not.

    With calm=True the thresholds are tightened (loss halved, RTT limits × 0.8) so that a path
    near a threshold does not flip back and forth.
    """
    loss_scale, rtt_scale = (0.5, 0.8) if calm else (1.0, 1.0)
    loss = h.loss_pct
    if loss is not None and len(h.losses) * 2 >= p.loss_window:
        limit = p.degraded_loss_pct * loss_scale
        if loss >= limit:
            return f"loss {loss:.0f}% ≥ {limit:.0f}%"
    if h.srtt_ms is not None and best_rtt_ms is not None:
        limit_ms = max(best_rtt_ms * p.degraded_rtt_factor, best_rtt_ms + p.degraded_rtt_ms)
        limit_ms *= rtt_scale
        if h.srtt_ms > limit_ms:
            return (f"RTT {h.srtt_ms:.0f} ms > {limit_ms:.0f} ms "
                    f"(best path {best_rtt_ms:.0f} ms)")
    return ""


def on_round(h: Health, r: Round, p: Params, now: float,
             best_rtt_ms: float | None = None) -> Health:
    """Account one finished probe round; `best_rtt_ms` is the lowest SRTT among live paths."""
    srtt, var, last = _update_rtt(h, r.rtts_ms)
    h = replace(
        h,
        window=(*h.window, r.ok)[-p.down_window:],
        good_streak=h.good_streak + 1 if r.ok else 0,
        srtt_ms=srtt,
        rttvar_ms=var,
        last_rtt_ms=last,
        losses=(*h.losses, (r.sent, r.received))[-p.loss_window:],
        rounds=h.rounds + 1,
    )
    if h.state is State.DISABLED or not h.link_ok:
        return h
    failed = sum(1 for ok in h.window if not ok)
    if h.state.live:
        if failed >= p.down_count:
            return _to(h, State.DOWN,
                       f"{failed} of the last {len(h.window)} probe rounds got no reply", now)
        return _assess_degraded(h, p, now, best_rtt_ms)
    # DOWN
    if h.good_streak >= h.up_needed(p, now):
        return _assess_degraded(_to(h, State.UP, "probes answered", now), p, now, best_rtt_ms)
    needed = h.up_needed(p, now)
    if h.good_streak > 0:
        return replace(h, reason=f"recovering: {h.good_streak} of {needed} good rounds")
    return h


def _assess_degraded(h: Health, p: Params, now: float, best_rtt_ms: float | None) -> Health:
    bad = degraded_reason(h, p, best_rtt_ms)
    if h.state is State.UP:
        streak = h.bad_streak + 1 if bad else 0
        if streak >= p.up_count:
            return _to(h, State.DEGRADED, bad, now)
        return replace(h, bad_streak=streak)
    # DEGRADED
    still = degraded_reason(h, p, best_rtt_ms, calm=True)
    calm = 0 if still else h.calm_streak + 1
    if calm >= p.up_count:
        return _to(h, State.UP, "recovered from degradation", now)
    reason = still or f"improving: {calm} of {p.up_count} rounds under the thresholds"
    return replace(h, calm_streak=calm, reason=reason)


def on_link(h: Health, ok: bool, reason: str, now: float) -> Health:
    """Carrier or address change: loss acts at once; a return waits for good probe rounds."""
    if ok == h.link_ok:
        return h
    if not ok:
        h = replace(h, link_ok=False, good_streak=0)
        if h.state is State.DISABLED:
            return h
        return _to(h, State.DOWN, reason, now)
    h = replace(h, link_ok=True, good_streak=0, window=())
    if h.state is State.DISABLED:
        return h
    return replace(h, reason=reason)


def set_enabled(h: Health, enabled: bool, now: float) -> Health:
    if not enabled:
        return _to(h, State.DISABLED, "disabled", now)
    if h.state is not State.DISABLED:
        return h
    return _to(replace(h, fresh=True, good_streak=0, window=()), State.DOWN,
               "enabled: waiting for a probe reply", now)


def best_rtt(healths: Iterable[Health]) -> float | None:
    """Lowest smoothed RTT among live paths: the yardstick for 'far worse'."""
    rtts = [h.srtt_ms for h in healths if h.state.live and h.srtt_ms is not None]
    return min(rtts) if rtts else None


# --- a path with two address families -----------------------------------------------------------

_RANK = {State.UP: 0, State.DEGRADED: 1, State.DOWN: 2, State.DISABLED: 3}


def combine(families: Sequence[tuple[str, Health]]) -> tuple[State, str, int]:
    """The state and reason of a path from the health of its address families.

    `families`: (label, health) of each family that has an address and is probed ("IPv4",
    "IPv6"); at least one.  Returns (state, reason, index of the family status shows first).

    A path is up when any of its families is up: a link whose IPv6 is broken still carries the
    bonded traffic over IPv4 (and the other way round), and each family keeps or loses its own
    endpoint and routes (bonding.core.plan).  It is degraded when its best family is, down when
    every family is.  The reason is the deciding family's, named when there are two; a reason
    both families share (carrier lost) is given once.
    """
    if not families:
        raise ValueError("a path's state needs at least one address family")
    best = min(range(len(families)), key=lambda i: _RANK[families[i][1].state])
    state = families[best][1].state
    if state is State.UP or state is State.DISABLED:
        return state, families[best][1].reason, best
    many = len(families) > 1
    if state is State.DEGRADED:
        label, h = families[best]
        return state, f"{label}: {h.reason}" if many else h.reason, best
    reasons = [(label, h.reason) for label, h in families]
    if not many or len({r for _, r in reasons}) == 1:
        return state, reasons[0][1], best
    return state, "; ".join(f"{label}: {r}" for label, r in reasons), best
