"""A callback run every `interval_s` on the running asyncio loop, and `Beat`: the one clock of
all the probers.

Driven by loop timers, not a task: a round costs one timer callback.  Rounds keep their own
cadence (each is scheduled from the previous one's due time, not from when it ran) and do not
burst after the loop fell behind (suspended, overloaded): the next round is then one interval
from now.  An exception from the callback is logged and the rounds go on.

A `Beat` runs many callbacks of one interval from one Periodic: one timer a round for all the
paths' probers (not one each), and their echoes leave together, so the loop wakes up once for
them and their answers arrive close together (fewer wake-ups to read them too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import ClassVar, Generic, TypeVar

log = logging.getLogger(__name__)


class Periodic:
    __slots__ = ("_loop", "_next_at", "_timer", "fn", "interval_s", "stopped", "what")

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

    def start(self, *, at_once: bool = True) -> None:
        """The first round at once (else one interval from now), on the running loop."""
        self._loop = asyncio.get_running_loop()
        if at_once:
            self.now()
        elif not self.stopped:
            self._next_at = self._loop.time() + self.interval_s
            self._timer = self._loop.call_at(self._next_at, self._tick)

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


_T = TypeVar("_T")


class PerLoop(Generic[_T]):
    """One shared object per running loop and key, made on first use; `forget` it when its
    last user is done, and the next use makes a new one."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: dict[tuple[asyncio.AbstractEventLoop, Hashable], _T] = {}

    def get(self, key: Hashable, make: Callable[[], _T]) -> _T:
        k = (asyncio.get_running_loop(), key)
        obj = self._made.get(k)
        if obj is None:
            obj = self._made[k] = make()
        return obj

    def forget(self, obj: _T) -> None:
        """`obj` is shared no more (nothing happens to one that is not)."""
        for k in [k for k, v in self._made.items() if v is obj]:
            del self._made[k]


Member = Callable[[], None]


class Beat:
    """Members (callbacks) run together every `interval_s` on one loop.

    A member's first round is at once when it joins, then it keeps the beat's cadence; one that
    fails is logged and the others (and its next rounds) go on.  `Beat.shared` gives every
    caller of one loop and interval the same beat; it stops when its last member leaves."""

    __slots__ = ("_members", "_periodic", "loop")
    _shared: ClassVar[PerLoop[Beat]] = PerLoop()

    def __init__(self, interval_s: float, what: str = "probe") -> None:
        self.loop = asyncio.get_running_loop()
        self._members: dict[Member, None] = {}  # in the order they joined
        self._periodic = Periodic(interval_s, self._round, what)

    @classmethod
    def shared(cls, interval_s: float) -> Beat:
        """The running loop's beat of `interval_s` (made on first use)."""
        return cls._shared.get(interval_s,
                               lambda: cls(interval_s, f"probes every {interval_s:g} s"))

    @property
    def interval_s(self) -> float:
        return self._periodic.interval_s

    def join(self, fn: Member) -> None:
        """`fn` runs at once, then every round."""
        if fn in self._members:
            return
        self._members[fn] = None
        if self._periodic._loop is None:
            self._periodic.start(at_once=False)  # the beat: from the first member's join
        self.loop.call_soon(self._first, fn)

    def leave(self, fn: Member) -> None:
        """`fn` is not run again (not even a first round that is still to come)."""
        self._members.pop(fn, None)
        if not self._members:
            p = self._periodic
            p.stop()
            self._periodic = Periodic(p.interval_s, self._round, p.what)  # for a next join
            Beat._shared.forget(self)

    def _first(self, fn: Member) -> None:
        if fn in self._members:
            self._run(fn)

    def _round(self) -> None:
        for fn in list(self._members):
            if fn in self._members:  # an earlier one may have made it leave
                self._run(fn)

    def _run(self, fn: Member) -> None:
        try:
            fn()
        except Exception:  # one member's failure must not stop the others
            log.exception("%s round failed", self._periodic.what)
