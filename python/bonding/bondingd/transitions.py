"""A path's health changes: link news, probe rounds and carrier or address changes move each
address family's health (bonding.core.health); a change of the path's state is logged, sent as
a `bonding.path` event, runs the hooks and replans; a family's own change replans too.

What a change does goes through `Effects`, and the clocks are arguments, so this is tested with
fakes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from bonding import api
from bonding.bondingd.hooks import path_action
from bonding.bondingd.runtime import FamilyRuntime, PathRuntime
from bonding.core import health as hl
from bonding.core.health import Health, Params, State

log = logging.getLogger("bondingd")


class Effects(Protocol):
    """What a change makes bondingd do."""

    def schedule_reconcile(self) -> None: ...
    def mark_dirty(self) -> None: ...  # the status changed
    def send_event(self, event: str, data: dict[str, Any]) -> None: ...  # on ubus
    def fire_hooks(self, env: Mapping[str, str]) -> None: ...


class Transitions:
    def __init__(self, paths: Callable[[], Mapping[str, PathRuntime]],
                 params: Callable[[], Params], out: Effects, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.paths = paths
        self.params = params
        self.out = out
        self.clock = clock
        self.wall = wall

    def on_link(self, rt: PathRuntime, ok: bool, why: str,
                families: Sequence[FamilyRuntime] | None = None) -> None:
        before = rt.health
        rt.on_link(ok, why, self.clock(), families)
        self.after_change(rt, before)

    def link_state(self, rt: PathRuntime, up: bool, carrier: bool) -> None:
        if not up:
            self.on_link(rt, False, f"{rt.device} is administratively down")
            return
        if not carrier:
            self.on_link(rt, False, f"carrier lost on {rt.device}")
            return
        before = rt.health
        now = self.clock()
        for f in rt.families:
            if f.address is None:
                f.health = hl.on_link(f.health, False, f"{rt.device} has no {f.label} address",
                                      now)
            else:
                f.health = hl.on_link(f.health, True, "link back: waiting for probe replies",
                                      now)
        self.after_change(rt, before)

    def on_round(self, name: str, family: int, r: hl.Round) -> None:
        paths = self.paths()
        rt = paths.get(name)
        if rt is None:
            return
        f = rt.family(family)
        best = hl.best_rtt(p.family(family).health for p in paths.values())
        h = hl.on_round(f.health, r, self.params(), self.clock(), best)
        if h.state is f.health.state and (rt.v4.health.state,
                                          rt.v6.health.state) == rt.family_states:
            f.health = h  # no state changed: neither the path's (made of its families') nor
            self.out.mark_dirty()  # a family's, so there is nothing more for after_change to do
            return
        before = rt.health
        f.health = h
        self.after_change(rt, before)

    def after_change(self, rt: PathRuntime, before: Health) -> None:
        h = rt.health
        if h.state is not before.state:
            rt.since_wall = self.wall()
            log.info("path %s: %s → %s (%s)", rt.cfg.name, before.state, h.state, h.reason)
            self._announce(rt, before.state)
            self.out.schedule_reconcile()
        states = (rt.v4.health.state, rt.v6.health.state)
        if states != rt.family_states:
            # a family's own endpoint and routes follow its state, also when the path's stays
            for f, old in zip(rt.families, rt.family_states, strict=True):
                if f.health.state is not old:
                    f.since_wall = self.wall()
                    if f.address is not None:
                        log.info("path %s %s: %s → %s (%s)", rt.cfg.name, f.label, old,
                                 f.health.state, f.health.reason)
            rt.family_states = states
            self.out.schedule_reconcile()
        self.out.mark_dirty()

    def _announce(self, rt: PathRuntime, previous: State) -> None:
        """The `bonding.path` event and, for path-up / path-down, the hooks."""
        state = rt.health.state
        self.out.send_event(api.EVENT_PATH, {"name": rt.cfg.name, "state": str(state),
                                             "previous": str(previous),
                                             "reason": rt.health.reason})
        action = path_action(state, previous)
        if action is not None:
            self.out.fire_hooks({"ACTION": action, "PATH_NAME": rt.cfg.name,
                                 "INTERFACE": rt.cfg.interface or rt.cfg.name,
                                 "DEVICE": rt.device or "", "STATE": str(state),
                                 "PREVIOUS": str(previous), "REASON": rt.health.reason})
