"""Server failover in bondingd: probe the servers, keep their health, choose the active one.

    fo = Failover(paths=..., on_active=..., on_state=...)
    fo.configure(cfg)               # at start and on every reload (keeps what did not change)
    dp.configure(cfg, config_dir, server=fo.active)
    status["servers"] = fo.status(); status["active_server"] = fo.active_status()
    fo.close()

The decisions are bonding.core.servers' (pure); this module runs the prober
(bonding.serverprobe), feeds its rounds in, and reports:
- `on_active(name)` when the server in use changes (the data plane then points the proxy at it);
- `on_state(change)` when a server's shown state (active/standby/down/disabled) changes: bondingd
  sends the `bonding.server` event and runs the hooks.

Servers are probed only while bonding is enabled and a proxy is configured: with
``option proxy 'none'`` nothing uses a server, so none is active.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bonding.bondingd.params import server_params
from bonding.config import Config, Server, is_ipv4
from bonding.connects import Via
from bonding.core import servers as sv
from bonding.core.servers import ServerState
from bonding.serverprobe import ServerProber, Target

log = logging.getLogger("bondingd.servers")

RESOLVE_S = 300.0  # a server's host name is resolved again after this
RESOLVE_RETRY_S = 30.0  # ... or after this when it did not resolve


@dataclass(frozen=True)
class Change:
    """A server's shown state changed."""

    name: str
    state: ServerState
    previous: ServerState
    reason: str
    address: str
    active: str | None  # the server in use after the change


@dataclass
class ServerRuntime:
    cfg: Server
    health: sv.Health = field(default_factory=sv.Health)
    rtt: dict[str, sv.Rtt] = field(default_factory=dict)  # by path
    last: dict[str, sv.Attempt] = field(default_factory=dict)  # the last attempt by path
    state: ServerState | None = None  # None: not shown yet
    reason: str = ""
    since_wall: float = field(default_factory=time.time)


class Failover:
    def __init__(self, *, paths: Callable[[], Sequence[Via]],
                 on_active: Callable[[str | None], None],
                 on_state: Callable[[Change], None]) -> None:
        self.paths = paths
        self.on_active = on_active
        self.on_state = on_state
        self.cfg = Config()
        self.params = sv.Params()
        self.servers: dict[str, ServerRuntime] = {}
        self.choice = sv.Choice()
        self.choice_wall = time.time()
        self.prober: ServerProber | None = None
        self._prober_key: tuple[object, ...] = ()
        self.timeout_ms = (250.0, 1000.0)
        self._names: dict[str, tuple[str, float]] = {}  # host → (address or "!why", until)
        self._resolving: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- config ---------------------------------------------------------------------------------
    @property
    def probing(self) -> bool:
        g = self.cfg.globals
        return g.enabled and g.proxy != "none"

    @property
    def active(self) -> str | None:
        return self.choice.active

    def configure(self, cfg: Config) -> None:
        """Take a (validated) config; the active server is kept when it is still enabled.

        `on_active` is not called for a change made here: the caller configures the data plane
        with `active` next."""
        self.cfg = cfg
        g = cfg.globals
        self.params = server_params(g)
        self.timeout_ms = (float(g.probe_timeout_min_ms), float(g.probe_timeout_ms))
        old, self.servers = self.servers, {}
        for s in cfg.servers:
            rt = old.get(s.name)
            same = (rt is not None and rt.cfg.enabled and s.enabled
                    and (rt.cfg.address, rt.cfg.port) == (s.address, s.port))
            if rt is None:
                rt = ServerRuntime(cfg=s)
            elif not same:  # another server under the same name, or it was disabled: start over
                rt = ServerRuntime(cfg=s, state=rt.state, since_wall=rt.since_wall)
            else:
                rt.cfg = s
            self.servers[s.name] = rt
        for gone in old.keys() - self.servers.keys():
            log.info("server %s removed from the config", gone)
        if not self.probing:
            self.choice = sv.Choice(None, "bonding is disabled" if not g.enabled else
                                    "no proxy (option proxy 'none'): no server is used",
                                    time.monotonic())
        self._sync_prober()
        self.refresh(notify_active=False)  # the caller configures the data plane with .active

    def _sync_prober(self) -> None:
        want = self.probing and any(s.enabled for s in self.cfg.servers)
        key = (self.cfg.globals.server_probe_interval_ms,) if want else ()
        if key == self._prober_key:
            return
        self.close()
        self._prober_key = key
        if want:
            self.prober = ServerProber(
                interval_s=self.cfg.globals.server_probe_interval_ms / 1000,
                targets=self._targets, paths=self.paths, timeout_s=self._timeout,
                on_round=self.on_round)
            self.prober.start()

    def close(self) -> None:
        if self.prober is not None:
            self.prober.close()
            self.prober = None
        self._prober_key = ()
        for task in list(self._tasks):
            task.cancel()

    # --- probing --------------------------------------------------------------------------------
    def _targets(self) -> list[Target]:
        out = []
        for rt in self.servers.values():
            if not rt.cfg.enabled:
                continue
            addr = rt.cfg.address
            if is_ipv4(addr):
                out.append(Target(rt.cfg.name, addr, rt.cfg.port))
            elif ":" in addr:  # IPv6: the paths have IPv4 sources; left unjudged, never down
                rt.health = replace(rt.health, reason="not probed: the paths have no IPv6 "
                                                      "address to probe an IPv6 server from")
            else:
                got = self._resolve(addr)
                if got is None:
                    rt.health = replace(rt.health, reason=f"not probed yet: resolving {addr}")
                elif got.startswith("!"):
                    out.append(Target(rt.cfg.name, addr, rt.cfg.port, error=got[1:]))
                else:
                    out.append(Target(rt.cfg.name, got, rt.cfg.port))
        return out

    def active_target(self) -> Target | None:
        """The active server as a probe target (None: none, or an IPv6 one)."""
        return next((t for t in self._targets() if t.name == self.active), None)

    def _resolve(self, host: str) -> str | None:
        """The IPv4 address of `host` as last resolved ("!" + why when it did not resolve), or
        None before the first answer; resolved again in the background when stale."""
        now = time.monotonic()
        known = self._names.get(host)
        if host not in self._resolving and (known is None or now > known[1]):
            self._resolving.add(host)
            loop = asyncio.get_running_loop()
            self._tasks.add(task := loop.create_task(self._lookup(host)))
            task.add_done_callback(self._tasks.discard)
        return None if known is None else known[0]

    async def _lookup(self, host: str) -> None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
            result, ttl = str(infos[0][4][0]), RESOLVE_S
        except (OSError, IndexError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or "no address"
            result, ttl = f"!cannot resolve {host}: {why}", RESOLVE_RETRY_S
        finally:
            self._resolving.discard(host)
        if self._names.get(host, ("",))[0] != result:
            log.info("server address %s: %s", host, result.lstrip("!"))
        self._names[host] = (result, time.monotonic() + ttl)

    def _timeout(self, server: str, path: str) -> float:
        rt = self.servers.get(server)
        rtt = rt.rtt.get(path, sv.Rtt()) if rt is not None else sv.Rtt()
        return rtt.timeout_ms(*self.timeout_ms) / 1000

    def on_round(self, name: str, r: sv.Round) -> None:
        rt = self.servers.get(name)
        if rt is None or not rt.cfg.enabled or not self.probing:
            return
        rt.last = {a.path: a for a in r.attempts}
        for a in r.attempts:
            if a.ok and a.rtt_ms is not None:
                rt.rtt[a.path] = rt.rtt.get(a.path, sv.Rtt()).update(a.rtt_ms)
        before = rt.health.up
        rt.health = sv.on_round(rt.health, r, self.params, time.monotonic())
        if rt.health.up is not before:
            log.info("server %s: %s (%s)", name,
                     {True: "answers", False: "does not answer", None: "not judged"}
                     [rt.health.up], rt.health.reason)
        self.refresh()

    # --- the choice and what status shows ---------------------------------------------------
    def _candidates(self) -> list[sv.Candidate]:
        return [sv.Candidate(s.name, self.servers[s.name].health)
                for s in self.cfg.ordered_servers()]

    def refresh(self, *, notify_active: bool = True) -> None:
        """Re-choose the active server and report what changed."""
        now = time.monotonic()
        cands = self._candidates()
        before = self.choice.active
        if self.probing:
            self.choice = sv.choose(self.choice, cands, self.params, now)
        if self.choice.active != before:
            self.choice_wall = time.time()
            (log.warning if before is not None else log.info)(
                "active server: %s → %s (%s)", before or "none", self.choice.active or "none",
                self.choice.reason)
            if notify_active:
                self.on_active(self.choice.active)
        for rt in self.servers.values():
            if not self.probing:
                st = ServerState.DISABLED if not self.cfg.globals.enabled or not rt.cfg.enabled \
                    else ServerState.STANDBY
                why = "disabled" if not rt.cfg.enabled else self.choice.reason
            else:
                st = sv.state(rt.cfg.name, rt.cfg.enabled, rt.health, self.choice)
                why = ("disabled in the config" if st is ServerState.DISABLED else
                       sv.reason(rt.cfg.name, st, rt.health, self.choice, cands, self.params,
                                 now))
            previous, rt.state, rt.reason = rt.state, st, why
            if previous is not None and previous is not st:
                rt.since_wall = time.time()
                self.on_state(Change(rt.cfg.name, st, previous, why, rt.cfg.address,
                                     self.choice.active))

    def status(self) -> list[dict[str, Any]]:
        """Every server, preferred first (then the disabled ones)."""
        order = [s.name for s in self.cfg.ordered_servers()]
        order += [s.name for s in self.cfg.servers if s.name not in order]
        out = []
        for name in order:
            rt = self.servers[name]
            s = rt.cfg
            rtts = [a.rtt_ms for a in rt.last.values() if a.ok and a.rtt_ms is not None]
            out.append({
                "name": s.name, "address": s.address, "port": s.port, "protocol": s.protocol,
                "enabled": s.enabled, "priority": s.priority,
                "state": str(rt.state or ServerState.STANDBY),
                "active": self.choice.active == s.name,
                "reason": rt.reason,
                "since": round(rt.since_wall, 3),
                "rtt_ms": round(min(rtts), 2) if rtts else None,
                "rounds": rt.health.rounds,
                "paths": {p: {"ok": a.ok,
                              "rtt_ms": None if a.rtt_ms is None else round(a.rtt_ms, 2),
                              "error": a.error or None}
                          for p, a in sorted(rt.last.items())},
            })
        return out

    def active_status(self) -> dict[str, Any]:
        g = self.cfg.globals
        return {"name": self.choice.active, "reason": self.choice.reason,
                "since": round(self.choice_wall, 3), "failback": g.server_failback,
                "hold_s": g.server_hold_s}
