"""How often a path is probed: the normal interval, or the slow one of a path standing by.
Pure.

Probing costs an echo and its reply per round: 84 bytes each way over IPv4 (20 IP + 8 ICMP +
56 data on the wire), 104 over IPv6, so a family probed every 150 ms sends and receives about
2.9 GB a month (3.6 GB over IPv6).  A metered backup path that carries nothing must cost almost
nothing, so while it stands by (bonding.core.roles) it is probed every `standby_ms` (60 s by
default: 7.3 MB a month of IP packets over IPv4, 16 MB with IPv6 too; on an Ethernet link
each rare round also costs its headers and an ARP and a neighbour-discovery exchange, as the
neighbour entries have gone stale by then: bench/probecost.py measured 65 MB a month at 30 s
and 45 MB at 60 s, so the default is 60 s), and at the normal interval again as soon as it
may be needed:

- it carries traffic (no bond path is up), or
- no bond path is solidly up: each is down, degraded or had a round fail among its last
  `down_window` (a single DSL line that starts losing probes wakes its 4G backup at once, so
  the backup's health is fresh when the line is declared down), or
- its own last rounds failed while it is live: it is then judged at the normal rate, so its
  own death is noticed within one slow interval plus `down_count` fast rounds, instead of
  `down_count` slow intervals;
- it is down and its last round was answered: its return is then confirmed by `up_count`
  fast rounds.  A standby path that is down and silent is probed at the slow rate (a link
  that is gone is not worth probing fast), so its return is noticed within one slow interval
  plus `up_count` fast rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bonding.core.health import Health, State

MONTH_S = 30 * 86400
ECHO_BYTES = {4: 84, 6: 104}  # IP packet of one echo request (and of its reply)


@dataclass(frozen=True)
class Cadence:
    interval_ms: int
    why: str


def solid(h: Health) -> bool:
    """Up, and no failed round among the last ones."""
    return h.state is State.UP and all(h.window)


def inputs(h: Health) -> tuple[object, ...]:
    """What of a family's health `probe_interval` (and `solid`) read: a round that leaves this
    the same leaves every path's cadence the same."""
    return (h.state, all(h.window), h.link_ok, h.good_streak > 0)


def probe_interval(*, standby: bool, bonds_solid: bool, own: Iterable[Health],
                   normal_ms: int, standby_ms: int) -> Cadence:
    """The interval of a path's probes.  `standby`: it stands by now; `bonds_solid`: some bond
    path is solidly up (`solid`); `own`: the health of its probed families."""
    if not standby:
        return Cadence(normal_ms, "in use")
    if not bonds_solid:
        return Cadence(normal_ms, "may be needed: no bond path is solidly up")
    if any(h.state.live and not all(h.window) for h in own):
        return Cadence(normal_ms, "checking: a standby probe round failed")
    if any(h.state is State.DOWN and h.link_ok and h.good_streak > 0 for h in own):
        return Cadence(normal_ms, "checking: a standby path that was down answers again")
    return Cadence(max(normal_ms, standby_ms), "standing by")


def month_bytes(interval_ms: float, family: int, echoes_per_round: float = 1.0) -> float:
    """Bytes a month (both directions) of probing one family every `interval_ms`."""
    rounds = MONTH_S * 1000 / interval_ms
    return rounds * echoes_per_round * 2 * ECHO_BYTES[family]
