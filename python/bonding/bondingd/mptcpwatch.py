"""bondingd's side of MPTCP blocking: each path's PathBlock (bonding.core.mptcpblock), fed by
the MPTCP checks (bonding.mptcpprobe) and the subflow dumps (samplers.SubflowSampler), and what a
change says on ubus and to the hooks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bonding.config.model import Globals
from bonding.connects import Via
from bonding.core import mptcpblock as mb
from bonding.mptcpprobe import MptcpChecker
from bonding.netlink.diag import Subflow
from bonding.serverprobe import Target

log = logging.getLogger("bondingd")

EVENT = "bonding.mptcp"
RECHECK_S = 3.0  # a fallback is checked again this soon, to block (or not) without waiting
CHECK_TIMEOUT_S = 3.0  # an MPTCP check that gets no answer by then failed


@dataclass(frozen=True)
class Watched:
    """What the watch needs of a path now."""

    name: str
    address: str | None  # its IPv4 address
    carrying_since: float | None  # since when it has had its MPTCP endpoint (None: it has not)


def connections(subflows: Iterable[Subflow]) -> dict[int, mb.Conn]:
    """The dump's subflows grouped by connection (subflows the kernel gave no token are left
    out)."""
    addrs: dict[int, set[str]] = {}
    joins: dict[int, set[str]] = {}
    count: dict[int, int] = {}
    for s in subflows:
        if s.token is None:
            continue
        addrs.setdefault(s.token, set()).add(s.local)
        count[s.token] = count.get(s.token, 0) + 1
        if s.join:
            joins.setdefault(s.token, set()).add(s.local)
    return {t: mb.Conn(frozenset(a), frozenset(joins.get(t, ())), count[t])
            for t, a in addrs.items()}


def event(name: str, st: mb.PathBlock) -> dict[str, Any]:
    return {"name": name, "blocked": st.blocked, "kind": str(st.kind),
            "reason": st.reason(name)}


def hook_env(name: str, st: mb.PathBlock, interface: str, device: str) -> dict[str, str]:
    return {"ACTION": "mptcp-blocked" if st.blocked else "mptcp-ok", "PATH_NAME": name,
            "INTERFACE": interface, "DEVICE": device, "KIND": str(st.kind),
            "REASON": st.reason(name)}


class MptcpWatch:
    """Every path's MPTCP state.  `on_change(name, before, after)` when a path is blocked or
    unblocked; `recheck(name, delay_s)` asks for another check of a path soon."""

    def __init__(self, params: mb.Params,
                 on_change: Callable[[str, mb.PathBlock, mb.PathBlock], None],
                 recheck: Callable[[str, float], None]) -> None:
        self.params = params
        self.on_change = on_change
        self.recheck = recheck
        self.states: dict[str, mb.PathBlock] = {}

    def get(self, name: str) -> mb.PathBlock:
        return self.states.get(name, mb.PathBlock())

    def blocked(self) -> frozenset[str]:
        return frozenset(mb.blocked(self.states))

    def keep(self, names: Iterable[str]) -> None:
        """Forget paths that are gone from the config."""
        names = set(names)
        self.states = {n: s for n, s in self.states.items() if n in names}

    def on_check(self, name: str, got: mb.Check, now: float) -> None:
        before = self.get(name)
        after = mb.on_check(before, got, mb.others_mptcp(self.states, name), now, self.params)
        self._set(name, before, after)
        if got is mb.Check.FALLBACK and not after.blocked:
            self.recheck(name, RECHECK_S)

    def on_dump(self, paths: Iterable[Watched], subflows: Iterable[Subflow] | None,
                now: float) -> None:
        if subflows is None:
            return
        conns: Mapping[int, mb.Conn] = connections(subflows)
        for w in paths:
            before = self.get(w.name)
            self._set(w.name, before, mb.on_subflows(before, w.address, w.carrying_since,
                                                     conns, now, self.params))

    def _set(self, name: str, before: mb.PathBlock, after: mb.PathBlock) -> None:
        self.states[name] = after
        if after.kind is not before.kind:
            if after.blocked:
                log.warning("path %s: %s", name, after.reason(name))
            else:
                log.info("path %s: MPTCP works through it again (%s lifted)", name,
                         before.kind)
            self.on_change(name, before, after)

    def status(self, name: str, now: float) -> dict[str, Any]:
        """The `mptcp` object of a path in `status`."""
        st = self.get(name)
        return {"blocked": st.blocked, "kind": str(st.kind), "reason": st.reason(name),
                "blocked_for_s": round(now - st.since, 1) if st.since is not None else None,
                "last_check": str(st.last) if st.last else None}


class Host(Protocol):
    """What the guard needs of the daemon."""

    def mptcp_paths(self) -> list[Via]: ...  # the paths to check through (live, with a link)
    def mptcp_target(self) -> Target | None: ...  # the active server
    def endpoint_addresses(self) -> Iterable[str]: ...  # addresses that have their endpoint
    def mptcp_changed(self, name: str, st: mb.PathBlock) -> None: ...  # event, hook, re-plan


class MptcpGuard:
    """The checks, the watch and their clock, as bondingd runs them."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.watch = MptcpWatch(mb.Params(), self._changed, self._recheck)
        self.checker: MptcpChecker | None = None
        self._interval = 0
        self._endpoint_since: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def configure(self, g: Globals, names: Iterable[str]) -> None:
        self.watch.params = mb.Params(join_s=float(g.mptcp_join_timeout_s or 1e12),
                                      retest_s=float(g.mptcp_retest_s),
                                      max_joins=g.mptcp_subflows)
        self.watch.keep(names)
        if g.mptcp_check_interval_s != self._interval and self.checker is not None:
            self.checker.close()
            self.checker = None
        self._interval = g.mptcp_check_interval_s
        if self._loop is not None:
            self.start()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.checker is None and self._interval > 0:
            self.checker = MptcpChecker(
                interval_s=float(self._interval), target=self.host.mptcp_target,
                paths=self.host.mptcp_paths, timeout_s=CHECK_TIMEOUT_S,
                on_check=lambda name, got: self.watch.on_check(name, got, time.monotonic()))
            self.checker.start()

    def close(self) -> None:
        if self.checker is not None:
            self.checker.close()
            self.checker = None

    def tick(self, paths: Iterable[tuple[str, str | None]],
             subflows: Iterable[Subflow] | None) -> None:
        """Once a second: (name, IPv4 address) of every path, and the last subflow dump."""
        now = time.monotonic()
        have = set(self.host.endpoint_addresses())
        self._endpoint_since = {a: self._endpoint_since.get(a, now) for a in have}
        self.watch.on_dump([Watched(n, a, self._endpoint_since.get(a) if a else None)
                            for n, a in paths], subflows, now)

    @staticmethod
    def settings(g: Globals) -> dict[str, Any]:
        """The options in force, as `status` shows them."""
        return {"interval_s": g.mptcp_check_interval_s, "join_timeout_s": g.mptcp_join_timeout_s,
                "retest_s": g.mptcp_retest_s, "blocked_native": g.mptcp_blocked_native}

    def _recheck(self, name: str, delay_s: float) -> None:
        if self._loop is not None and self.checker is not None:
            self._loop.call_later(delay_s, self.checker.check, name)

    def _changed(self, name: str, before: mb.PathBlock, after: mb.PathBlock) -> None:
        self.host.mptcp_changed(name, after)
