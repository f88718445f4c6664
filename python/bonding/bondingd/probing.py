"""Probing wiring: one prober per path and address family, started, restarted or stopped to
match the path's device, address and targets; the `probe` method's wait for a round.

The prober itself (ICMP echo, bonding.probe.PathProber) is made by `make_prober`, so this
part is tested with a fake.  A family's reply timeout and smoothed RTT come from its health
(`health_of`), which the daemon keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Protocol

from bonding.bondingd.runtime import FamilyRuntime, PathRuntime, Prober
from bonding.core.health import Health, Params, Round

PROBE_REPLY_SLACK_S = 1.0  # `probe` waits for one round: its timeout plus this


class ProberFactory(Protocol):
    def __call__(self, *, device: str, source: str, targets: tuple[str, ...],
                 interval_s: float, timeout_s: Callable[[], float],
                 srtt_s: Callable[[], float | None],
                 on_round: Callable[[Round], None]) -> Prober: ...


class Probing:
    def __init__(self, make_prober: ProberFactory,
                 health_of: Callable[[str, int], Health],
                 params: Callable[[], Params],
                 on_round: Callable[[str, int, Round], None]) -> None:
        self.make_prober = make_prober
        self.health_of = health_of
        self.params = params
        self.on_round = on_round
        self._waiters: dict[tuple[str, int], list[asyncio.Future[None]]] = {}

    # --- the probers ------------------------------------------------------------------------
    def sync(self, rt: PathRuntime, targets: Callable[[int], tuple[str, ...]], *,
             enabled: bool, interval_ms: int) -> None:
        """Each family of `rt` probes `targets(family)` from its address while `enabled` and
        it has a device and an address; a prober is replaced only when what it probes
        changes."""
        for f in rt.families:
            f.targets = targets(f.family)
            want = (enabled and rt.device is not None and f.address is not None
                    and bool(f.targets))
            key = (rt.device, f.address, f.targets, interval_ms) if want else ()
            if key == f.probe_key:
                continue
            stop(f)
            f.probe_key = key
            if want:
                assert rt.device is not None and f.address is not None
                name = rt.cfg.name
                f.prober = prober = self.make_prober(
                    device=rt.device, source=f.address, targets=f.targets,
                    interval_s=interval_ms / 1000,
                    timeout_s=functools.partial(self.timeout_s, name, f.family),
                    srtt_s=functools.partial(self.srtt_s, name, f.family),
                    on_round=functools.partial(self._round, name, f.family))
                prober.start()

    def timeout_s(self, name: str, family: int = 4) -> float:
        """How long the family's prober waits for a reply (its health's RTO)."""
        return self.health_of(name, family).timeout_ms(self.params()) / 1000

    def srtt_s(self, name: str, family: int) -> float | None:
        """The family's smoothed probe RTT in seconds (its prober's patience), None unknown."""
        srtt_ms = self.health_of(name, family).srtt_ms
        return None if srtt_ms is None else srtt_ms / 1000

    def _round(self, name: str, family: int, r: Round) -> None:
        self.on_round(name, family, r)
        for fut in self._waiters.pop((name, family), []):
            if not fut.done():
                fut.set_result(None)

    # --- `probe` ------------------------------------------------------------------------------
    async def probe_now(self, rt: PathRuntime) -> None:
        """A round of each probed family now; back when they are in (or timed out)."""
        futs = []
        loop = asyncio.get_running_loop()
        for f in rt.families:
            if f.prober is not None:
                fut = loop.create_future()
                self._waiters.setdefault((rt.cfg.name, f.family), []).append(fut)
                futs.append(fut)
                f.prober.probe_now()
        if futs:
            wait = max(self.timeout_s(rt.cfg.name, f.family) for f in rt.families if f.prober)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*futs), wait + PROBE_REPLY_SLACK_S)


def stop(f: FamilyRuntime) -> None:
    """Stop the family's prober, if it has one."""
    if f.prober is not None:
        f.prober.close()
        f.prober = None
