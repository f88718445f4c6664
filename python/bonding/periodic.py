"""A callback run every `interval_s` on the running asyncio loop: the clock of the probers.

Driven by loop timers, not a task: a round costs one timer callback.  Rounds keep their own
cadence (each is scheduled from the previous one's due time, not from when it ran) and do not
burst after the loop fell behind (suspended, overloaded): the next round is then one interval
from now.  An exception from the callback is logged and the rounds go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, interval_s: float, fn: Callable[[], None], what: str) -> None:
        self.interval_s = interval_s
        self.fn = fn
        self.what = what  # for the log, when a round fails
        self.stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._next_at = 0.0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "Periodic used before start()"
        return self._loop

    def start(self) -> None:
        """The first round at once, on the running loop."""
        self._loop = asyncio.get_running_loop()
        self.now()

    def now(self) -> None:
        """The next round at once (the cadence goes on from here)."""
        if self._loop is None or self.stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._next_at = self._loop.time()
        self._timer = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        """No round is started after this."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()

    def _tick(self) -> None:
        if self.stopped:
            return
        try:
            self.fn()
        except Exception:  # a failed round must never stop the rounds
            log.exception("%s round failed", self.what)
        now = self.loop.time()
        self._next_at += self.interval_s
        if self._next_at < now:
            self._next_at = now + self.interval_s
        self._timer = self.loop.call_at(self._next_at, self._tick)
