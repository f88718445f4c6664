"""bondingd: the bonding control plane, one asyncio process with all state in memory.

It probes every path, scores it (bonding.core.health), plans routes, rules and MPTCP endpoints
(bonding.core.plan) and makes the kernel hold them (bonding.actions).  Link and address events
from the kernel act at once.  After each change it writes a snapshot to <run-dir>/status.json and
runs the user hooks in <hooks-dir> with ACTION=path-up / path-down.  When libubus and ubusd
are there it serves the ubus object `bonding` (bonding.api), sends `bonding.path` events and
asks netifd about its interfaces over the same connection.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" or sys.argv[0].endswith("bondingd"):
    # bondingd never speaks TLS: keep asyncio from loading OpenSSL (4 MB of RSS) where the
    # ssl module is installed.
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

import argparse
import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bonding import __version__, api, config, netifd, secretsfile
from bonding.actions import Reconciler
from bonding.bondingd.params import health_params
from bonding.bondingd.runtime import FamilyRuntime, PathRuntime
from bonding.bondingd.status import STATUS_FILE, KernelView, StatusFile, path_status
from bonding.config import Config, PathConfig, Severity
from bonding.core import health as hl
from bonding.core.health import Health, Params, State
from bonding.core.plan import FamilyView, PathView, plan
from bonding.core.servers import ServerState
from bonding.dataplane import DataPlane
from bonding.failover import Change, Failover
from bonding.netlink.core import NetlinkError
from bonding.netlink.diag import SubflowCounter
from bonding.netlink.monitor import AddrEvent, Event, LinkEvent, LinkMonitor, Resync
from bonding.netlink.mptcp import MptcpPM
from bonding.netlink.rtnl import AF_INET6, Addr, Route, Rtnl, pick_ipv6
from bonding.probe import PathProber
from bonding.serverprobe import Via
from bonding.ubus import Ubus, UbusError, UbusLibraryError

log = logging.getLogger("bondingd")

STATUS_REFRESH_S = 1.0
HOOK_TIMEOUT_S = 10.0
PROBE_REPLY_SLACK_S = 1.0  # `probe` waits for one round: its timeout plus this
NETIFD_TIMEOUT_S = 3.0
SUBFLOW_REFRESH_S = 2.0  # subflow counts: one sock_diag dump this often
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO,
              "warning": logging.WARNING, "error": logging.ERROR}


class Daemon:
    def __init__(self, config_dir: Path, run_dir: Path, *, hooks_dir: Path | None = None,
                 ubus_socket: str | None = None) -> None:
        self.config_dir = config_dir
        self.run_dir = run_dir
        self.status_file = StatusFile(run_dir)
        self.hooks_dir = hooks_dir
        self.ubus_socket = ubus_socket
        self.cfg = Config()
        self.problems: list[config.Problem] = []
        self._from_file = False  # the config in use was read from a file (not the defaults)
        self.params = Params()
        self.paths: dict[str, PathRuntime] = {}
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.fail_open = False
        self.action_errors: list[str] = []
        self.kernel_errors: list[str] = []
        self._stop = asyncio.Event()
        self._dirty = True
        self._reconcile_pending = False
        self._tasks: set[asyncio.Task[None]] = set()  # hook runs, ubus connect
        self.rtnl: Rtnl | None = None
        self.pm: MptcpPM | None = None
        self.reconciler: Reconciler | None = None
        self.dataplane: DataPlane | None = None
        self.monitor: LinkMonitor | None = None
        self.bus: Ubus | None = None
        self.bus_error: str | None = None
        self.netifd = netifd.NetifdView()
        self._netifd_task: asyncio.Task[None] | None = None
        self._netifd_again = False
        self.counters_at = 0.0
        self.subflow_counter: SubflowCounter | None = None
        self.subflows: Counter[str] | None = None  # established subflows by local address
        self._subflows_at = 0.0
        self._probe_waiters: dict[tuple[str, int], list[asyncio.Future[None]]] = {}
        self.fail_open6 = False
        self.carriers: dict[int, tuple[str, ...]] = {4: (), 6: ()}  # paths with endpoints
        self.failover = Failover(paths=self._server_probe_paths, on_active=self._server_active,
                                 on_state=self._server_changed)

    # --- config ---------------------------------------------------------------------------------
    def load_config(self) -> bool:
        """(Re)load the config; on errors keep the last good one.  True when applied."""
        cfg, problems = config.load(self.config_dir)
        for p in problems:
            (log.error if p.severity is Severity.ERROR else log.warning)("config: %s", p)
        self.problems = problems
        if any(p.severity is Severity.ERROR for p in problems):
            log.error("config has errors: keeping the last good config")
            return False
        from_file = not any(p.section == "(file)" for p in problems)  # not the defaults
        previous = self.cfg if self._from_file and from_file else None
        self._from_file = from_file
        self.cfg = cfg
        self.params = health_params(cfg.globals)
        logging.getLogger().setLevel(LOG_LEVELS.get(cfg.globals.log_level, logging.INFO))
        self._set_paths(cfg.paths or self._discovered(), reset_overrides=True)
        if previous is not None:
            self._prune_secrets(previous, cfg)
        self.failover.configure(cfg)
        if self.dataplane is not None:
            for p in self.dataplane.configure(cfg, self.config_dir, server=self.failover.active):
                (log.error if p.severity is Severity.ERROR else log.warning)("config: %s", p)
                self.problems.append(p)
        self._dirty = True
        return True

    def _set_paths(self, pcs: Sequence[PathConfig], *, reset_overrides: bool) -> None:
        old = self.paths
        self.paths = {}
        for i, pc in enumerate(pcs):
            rt = old.pop(pc.name, None)
            if rt is None:
                rt = PathRuntime(cfg=pc, index=i)
            else:
                rt = replace(rt, cfg=pc, index=i)
                if reset_overrides:
                    rt.enabled_override = rt.backup_override = None
            enabled = rt.enabled and self.cfg.globals.enabled
            rt.set_enabled(enabled, time.monotonic())
            self.paths[pc.name] = rt
        for gone in old.values():  # removed from the config: stop probing
            for f in gone.families:
                if f.prober is not None:
                    f.prober.close()
        self._dirty = True

    def _discovered(self) -> tuple[PathConfig, ...]:
        """With no path sections: a path per netifd interface that has a default route."""
        return tuple(PathConfig(name=n, interface=n)
                     for n in self.netifd.wan_interfaces()[:config.MAX_PATHS])

    def _sync_discovered(self) -> None:
        if self.cfg.paths:
            return
        found = self._discovered()
        if tuple(rt.cfg for rt in self.paths.values()) != found:
            log.info("no path sections: bonding the WAN interfaces netifd has: %s",
                     ", ".join(p.name for p in found) or "none")
            self._set_paths(found, reset_overrides=False)

    # --- kernel view ----------------------------------------------------------------------------
    def resolve_paths(self) -> None:
        """Find each path's device, ifindex, addresses and gateways (IPv4 and IPv6)."""
        assert self.rtnl is not None
        links = {lk.name: lk for lk in self.rtnl.links()}
        addrs = self.rtnl.addresses()
        main_defaults = [r for r in self.rtnl.routes(254) if r.dst == "default"]
        addrs6, main_defaults6 = self._ipv6_view()
        for rt in self.paths.values():
            info = netifd.Info(device=rt.cfg.device)
            if rt.cfg.interface and not rt.cfg.device:
                got = self.netifd.lookup(rt.cfg.interface)
                if isinstance(got, str):
                    rt.device = rt.ifindex = rt.v4.address = rt.v6.address = None
                    rt.resolve_error = got
                    self._on_link(rt, False, got)
                    continue
                info = got
            rt.resolve_error = None
            rt.device = info.device
            link = links.get(info.device or "")
            if link is None:
                rt.ifindex = rt.v4.address = rt.v6.address = None
                rt.resolve_error = f"device {info.device} does not exist"
                self._on_link(rt, False, rt.resolve_error)
                continue
            rt.ifindex = link.index
            own = [a.address for a in addrs if a.index == link.index and a.scope == 0]
            rt.v4.address = info.address if info.address in own else (own[0] if own else None)
            rt.v4.gateway = rt.cfg.gateway or info.gateway or _gateway_of(main_defaults,
                                                                          link.index)
            rt.v6.address = pick_ipv6([a for a in addrs6 if a.index == link.index],
                                      rt.v6.address)
            rt.v6.gateway = rt.cfg.gateway6 or _gateway_of(main_defaults6, link.index)
            self._link_state(rt, link.up, link.carrier)

    def _ipv6_view(self) -> tuple[list[Addr], list[Route]]:
        """The IPv6 addresses and main-table default routes (none when IPv6 is off)."""
        assert self.rtnl is not None
        if not self.cfg.globals.ipv6:
            return [], []
        try:
            return (self.rtnl.addresses(AF_INET6),
                    [r for r in self.rtnl.routes(254, AF_INET6) if r.dst == "default"])
        except NetlinkError as e:
            if e.errno == errno.EAFNOSUPPORT:  # a kernel without IPv6
                return [], []
            raise

    def _on_link(self, rt: PathRuntime, ok: bool, why: str,
                 families: Sequence[FamilyRuntime] | None = None) -> None:
        before = rt.health
        rt.on_link(ok, why, time.monotonic(), families)
        self._after_change(rt, before)

    def _link_state(self, rt: PathRuntime, up: bool, carrier: bool) -> None:
        if not up:
            self._on_link(rt, False, f"{rt.device} is administratively down")
            return
        if not carrier:
            self._on_link(rt, False, f"carrier lost on {rt.device}")
            return
        before = rt.health
        now = time.monotonic()
        for f in rt.families:
            if f.address is None:
                f.health = hl.on_link(f.health, False, f"{rt.device} has no {f.label} address",
                                      now)
            else:
                f.health = hl.on_link(f.health, True, "link back: waiting for probe replies",
                                      now)
        self._after_change(rt, before)

    # --- events ---------------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        if isinstance(ev, Resync):
            log.warning("netlink events were lost: re-reading links and addresses")
            self._safe_resolve()
            return
        if isinstance(ev, LinkEvent):
            for rt in self.paths.values():
                if rt.device == ev.name or (rt.ifindex == ev.index and ev.removed):
                    if ev.removed:
                        rt.ifindex = rt.v4.address = rt.v6.address = None
                        self._on_link(rt, False, f"{rt.device} was removed")
                    elif rt.ifindex != ev.index or rt.address is None:
                        self._safe_resolve()
                    else:
                        self._link_state(rt, ev.up, ev.carrier)
        elif isinstance(ev, AddrEvent):
            v6 = ev.family == AF_INET6
            if v6 and (not self.cfg.globals.ipv6 or ev.address.startswith("fe80:")):
                return
            for rt in self.paths.values():
                if rt.ifindex != ev.index:
                    continue
                f = rt.v6 if v6 else rt.v4
                if not ev.added and ev.address == f.address:
                    f.address = None
                    self._on_link(rt, False, f"address {ev.address} removed from {rt.device}",
                                  [f])
                    self._safe_resolve()  # another address may remain
                elif ev.added and (f.address is None or v6):
                    # IPv6: an address turns usable (DAD over) or unusable (deprecated) by
                    # RTM_NEWADDR too: look again
                    self._safe_resolve()
        self.schedule_reconcile()

    def _safe_resolve(self) -> None:
        try:
            self.resolve_paths()
        except (NetlinkError, OSError) as e:
            log.error("reading links and addresses failed: %s", e)
        self._sync_probers()
        self.schedule_reconcile()

    def on_round(self, name: str, family: int, r: hl.Round) -> None:
        rt = self.paths.get(name)
        if rt is None:
            return
        before = rt.health
        f = rt.family(family)
        best = hl.best_rtt(p.family(family).health for p in self.paths.values())
        f.health = hl.on_round(f.health, r, self.params, time.monotonic(), best)
        self._after_change(rt, before)
        for fut in self._probe_waiters.pop((name, family), []):
            if not fut.done():
                fut.set_result(None)

    def _after_change(self, rt: PathRuntime, before: Health) -> None:
        h = rt.health
        if h.state is not before.state:
            rt.since_wall = time.time()
            log.info("path %s: %s → %s (%s)", rt.cfg.name, before.state, h.state, h.reason)
            self._run_hooks(rt, before.state)
            self.schedule_reconcile()
        states = (rt.v4.health.state, rt.v6.health.state)
        if states != rt.family_states:
            # a family's own endpoint and routes follow its state, also when the path's stays
            for f, old in zip(rt.families, rt.family_states, strict=True):
                if f.health.state is not old:
                    f.since_wall = time.time()
                    if f.address is not None:
                        log.info("path %s %s: %s → %s (%s)", rt.cfg.name, f.label, old,
                                 f.health.state, f.health.reason)
            rt.family_states = states
            self.schedule_reconcile()
        self._dirty = True

    # --- probing --------------------------------------------------------------------------------
    def _sync_probers(self) -> None:
        """Start, restart or stop each path's probers (one per address family) to match its
        device, addresses and targets."""
        g = self.cfg.globals
        for rt in self.paths.values():
            before = rt.health
            for f in rt.families:
                f.targets = (self.cfg.targets_for(rt.cfg, f.family)
                             if f.family == 4 or g.ipv6 else ())
                want = (rt.enabled and g.enabled and rt.device is not None
                        and f.address is not None and bool(f.targets))
                key = (rt.device, f.address, f.targets, g.probe_interval_ms) if want else ()
                if key == f.probe_key:
                    continue
                if f.prober is not None:
                    f.prober.close()
                    f.prober = None
                f.probe_key = key
                if want:
                    assert rt.device is not None and f.address is not None
                    f.prober = PathProber(
                        device=rt.device, source=f.address, targets=f.targets,
                        interval_s=g.probe_interval_ms / 1000,
                        timeout_s=functools.partial(self._timeout, rt.cfg.name, f.family),
                        srtt_s=functools.partial(self._srtt, rt.cfg.name, f.family),
                        on_round=functools.partial(self.on_round, rt.cfg.name, f.family))
                    f.prober.start()
            self._after_change(rt, before)  # which families count may have changed

    def _family_health(self, name: str, family: int) -> Health:
        rt = self.paths.get(name)
        return rt.family(family).health if rt else Health()

    def _timeout(self, name: str, family: int = 4) -> float:
        return self._family_health(name, family).timeout_ms(self.params) / 1000

    def _srtt(self, name: str, family: int) -> float | None:
        """The family's smoothed probe RTT in seconds (its prober's patience), None unknown."""
        srtt_ms = self._family_health(name, family).srtt_ms
        return None if srtt_ms is None else srtt_ms / 1000

    # --- actions --------------------------------------------------------------------------------
    def schedule_reconcile(self) -> None:
        if not self._reconcile_pending:
            self._reconcile_pending = True
            asyncio.get_running_loop().call_soon(self.reconcile)

    def _state_for_plan(self, rt: PathRuntime, f: FamilyRuntime) -> tuple[State, bool]:
        """What one family of a path is for the plan: (state, backup)."""
        if not rt.enabled:
            return State.DISABLED, rt.forced_backup
        if not f.targets:
            # Nothing to probe this family with: it follows the family that is probed (a link
            # that stops answering over IPv4 is taken out for IPv6 too).
            f = next((o for o in rt.families if o.probed), f)
        h = f.health
        backup = rt.backup_for(h)
        if h.state is State.DOWN and h.link_ok and h.fresh and not any(
                not ok for ok in h.window):
            return State.UP, backup  # not judged yet (just started or enabled): keep what may work
        return h.state, backup

    def _views(self) -> list[PathView]:
        out = []
        for rt in self.paths.values():
            state, backup = self._state_for_plan(rt, rt.v4)
            v6 = None
            if rt.v6.address is not None:
                state6, backup6 = self._state_for_plan(rt, rt.v6)
                v6 = FamilyView(rt.v6.address, rt.v6.gateway, state6, rt.v6.health.link_ok,
                                backup6)
            out.append(PathView(
                name=rt.cfg.name, index=rt.index, device=rt.device, ifindex=rt.ifindex,
                address=rt.v4.address, gateway=rt.v4.gateway, state=state,
                link_ok=rt.v4.health.link_ok, backup=backup, weight_kbit=rt.cfg.upload_kbit,
                congctl=(self.dataplane.path_congctl(rt.cfg.name)
                         if self.dataplane is not None else None),
                v6=v6))
        return out

    def _tables(self) -> set[int]:
        g = self.cfg.globals
        return ({g.route_table, g.tproxy_table}
                | {g.path_table_base + rt.index for rt in self.paths.values()})

    def _dataplane_changed(self) -> None:
        self._dirty = True
        self.write_status()

    def reconcile(self) -> None:
        self._reconcile_pending = False
        if self.reconciler is None:
            return
        g = self.cfg.globals
        if not g.enabled:
            out = self.reconciler.cleanup(g.rule_priority, self._tables())
            self.carriers = {4: (), 6: ()}
        else:
            servers = self.cfg.server_addresses()
            if g.ipv6:
                servers += self.cfg.server_addresses6()
            p = plan(self._views(), servers, route_table=g.route_table,
                     path_table_base=g.path_table_base, rule_priority=g.rule_priority,
                     default_route=g.manage_default_route,
                     tproxy=self.dataplane.tproxy() if self.dataplane else None,
                     congctl=self.dataplane.congctl() if self.dataplane else None)
            if p.fail_open != self.fail_open:
                self.fail_open = p.fail_open
                if p.fail_open:
                    log.warning("no path is up: using every path that has a link anyway")
            self.carriers = {4: p.carriers, 6: p.carriers6}
            if p.fail_open6 != self.fail_open6:
                self.fail_open6 = p.fail_open6
                if p.fail_open6:
                    log.warning("no path's IPv6 is up: using every path that has an IPv6 "
                                "address anyway")
            out = self.reconciler.apply(p, rule_priority=g.rule_priority, tables=self._tables(),
                                        adopt=[f.address for rt in self.paths.values()
                                               for f in rt.families if f.address])
        for c in out.changes:
            log.info("kernel: %s", c)
        self.action_errors = out.errors[-10:]
        self._dirty = True
        self.write_status()

    # --- servers ----------------------------------------------------------------------------------
    def _server_probe_paths(self) -> list[Via]:
        """The paths servers are probed through: those carrying traffic (every path with a link
        when none passes its probes, as routing does)."""
        usable = [rt for rt in self.paths.values() if rt.enabled and rt.device and rt.address
                  and rt.health.link_ok and rt.health.state is not State.DISABLED]
        live = [rt for rt in usable if self._state_for_plan(rt, rt.v4)[0].live] or usable
        return [Via(rt.cfg.name, rt.device or "", rt.address or "") for rt in live]

    def _server_active(self, name: str | None) -> None:
        """The server in use changed: the proxy follows (the rest keeps running)."""
        if self.dataplane is not None:
            self.dataplane.set_server(name)
            self.schedule_reconcile()  # its IPv6 may change whether LAN IPv6 is proxied
        self._dirty = True
        self.write_status()

    def _server_changed(self, ch: Change) -> None:
        log.info("server %s: %s → %s (%s)", ch.name, ch.previous, ch.state, ch.reason)
        self._send_event(api.EVENT_SERVER, {"name": ch.name, "state": str(ch.state),
                                            "previous": str(ch.previous), "reason": ch.reason})
        self._dirty = True
        self.write_status()
        action = ("server-down" if ch.state is ServerState.DOWN else
                  "server-active" if ch.state is ServerState.ACTIVE else
                  "server-up" if ch.previous is ServerState.DOWN
                  and ch.state is ServerState.STANDBY else None)
        if action is None or self.hooks_dir is None or not self.hooks_dir.is_dir():
            return
        env = dict(os.environ, ACTION=action, SERVER_NAME=ch.name, ADDRESS=ch.address,
                   STATE=str(ch.state), PREVIOUS=str(ch.previous), REASON=ch.reason,
                   ACTIVE_SERVER=ch.active or "")
        self._keep(asyncio.get_running_loop().create_task(self._hook_scripts(env)))

    def _prune_secrets(self, previous: Config, cfg: Config) -> None:
        """Drop the keys of server sections this reload removed from bonding_secrets."""
        gone = {s.name for s in previous.servers} - {s.name for s in cfg.servers}
        if not gone:
            return
        try:
            removed = secretsfile.prune(self.config_dir, gone)
        except (OSError, secretsfile.SecretsFileError) as e:
            log.error("%s: cannot remove the keys of removed servers (%s): %s",
                      self.config_dir / config.SECRETS_PACKAGE, ", ".join(sorted(gone)), e)
            return
        for name in removed:
            log.warning("%s: removed the key of server '%s' (its server section is gone)",
                        self.config_dir / config.SECRETS_PACKAGE, name)

    # --- hooks ----------------------------------------------------------------------------------
    def _run_hooks(self, rt: PathRuntime, previous: State) -> None:
        state = rt.health.state
        action = ("path-up" if state.live and not previous.live
                  else "path-down" if previous.live and not state.live else None)
        self._emit(rt, previous)
        if action is None or self.hooks_dir is None or not self.hooks_dir.is_dir():
            return
        env = dict(os.environ, ACTION=action, PATH_NAME=rt.cfg.name,
                   INTERFACE=rt.cfg.interface or rt.cfg.name, DEVICE=rt.device or "",
                   STATE=str(state), PREVIOUS=str(previous), REASON=rt.health.reason)
        self._keep(asyncio.get_running_loop().create_task(self._hook_scripts(env)))

    def _emit(self, rt: PathRuntime, previous: State) -> None:
        """The `bonding.path` event on ubus."""
        self._send_event(api.EVENT_PATH, {
            "name": rt.cfg.name, "state": str(rt.health.state), "previous": str(previous),
            "reason": rt.health.reason})

    def _send_event(self, event: str, data: dict[str, Any]) -> None:
        """An event on ubus (dropped, with a debug line, when not connected)."""
        log.debug("event %s %s", event, json.dumps(data))
        if self.bus is None or not self.bus.connected:
            return
        try:
            self.bus.send_event(event, data)
        except UbusError as e:
            log.warning("sending %s: %s", event, e)

    async def _hook_scripts(self, env: dict[str, str]) -> None:
        assert self.hooks_dir is not None
        for script in sorted(self.hooks_dir.iterdir()):
            if not script.is_file() or not os.access(script, os.X_OK):
                continue
            try:
                proc = await asyncio.create_subprocess_exec(
                    str(script), env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                _, err = await asyncio.wait_for(proc.communicate(), HOOK_TIMEOUT_S)
                if proc.returncode:
                    log.warning("hook %s exited %s: %s", script, proc.returncode,
                                err.decode(errors="replace").strip()[:200])
            except TimeoutError:
                log.warning("hook %s took more than %gs: killed", script, HOOK_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            except OSError as e:
                log.warning("hook %s: %s", script, e)

    # --- status ---------------------------------------------------------------------------------
    def sample_counters(self) -> None:
        now = time.monotonic()
        self.counters_at = now - self.started
        for rt in self.paths.values():
            if rt.device is None:
                rt.counters = None
                continue
            base = Path("/sys/class/net") / rt.device / "statistics"
            try:
                rx = int((base / "rx_bytes").read_text())
                tx = int((base / "tx_bytes").read_text())
            except (OSError, ValueError):
                rt.counters = None
                continue
            if rt.counters is not None and now > rt.counters[0]:
                dt = now - rt.counters[0]
                rt.rx_bps = max(0, rx - rt.counters[1]) * 8 / dt
                rt.tx_bps = max(0, tx - rt.counters[2]) * 8 / dt
            rt.counters = (now, rx, tx)
        self._dirty = True

    def status(self, detail: bool = False) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime": round(time.monotonic() - self.started, 3),
            "counters_at": round(self.counters_at, 3),  # uptime when the byte counters were read
            "enabled": self.cfg.globals.enabled,
            "fail_open": self.fail_open,
            "fail_open6": self.fail_open6,
            "servers": self.failover.status(),
            "active_server": self.failover.active_status(),
            "paths": {name: self.path_status(rt, detail) for name, rt in self.paths.items()},
            "proxy": (self.dataplane.status() if self.dataplane is not None else
                      {"backend": "none", "state": "disabled", "pid": None, "restarts": 0,
                       "since": round(self.started_wall, 3), "error": "",
                       "ipv6": {"lan": "routed natively", "reason": "no proxy"}}),
            "config_problems": [str(p) for p in self.problems],
            "errors": (self.kernel_errors + self.action_errors
                       + (self.dataplane.errors() if self.dataplane is not None else [])),
            "ubus": {"connected": self.bus is not None and self.bus.connected,
                     "error": self.bus_error},
        }

    def _kernel(self) -> KernelView:
        return KernelView(self.carriers,
                          self.reconciler.endpoint_ids if self.reconciler is not None else {},
                          self.subflows)

    def path_status(self, rt: PathRuntime, detail: bool = False) -> dict[str, Any]:
        return path_status(rt, self.params, self._kernel(), ipv6=self.cfg.globals.ipv6,
                           detail=detail)

    def write_status(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.status_file.write(self.status(detail=True))

    # --- the ubus object `bonding` (bonding.api validates the arguments) ------------------------
    def api_status(self) -> dict[str, Any]:
        return self.status()

    def api_path(self, name: str) -> dict[str, Any] | None:
        rt = self.paths.get(name)
        return None if rt is None else {"name": name, **self.path_status(rt, detail=True)}

    def api_set_path(self, name: str, enabled: bool | None,
                     backup: bool | None) -> dict[str, Any] | None:
        rt = self.paths.get(name)
        if rt is None:
            return None
        if backup is not None:
            rt.backup_override = None if backup == rt.cfg.backup else backup
        if enabled is not None:
            rt.enabled_override = None if enabled == rt.cfg.enabled else enabled
            before = rt.health
            rt.set_enabled(rt.enabled and self.cfg.globals.enabled, time.monotonic())
            self._after_change(rt, before)
            self._sync_probers()
        log.info("path %s set over ubus: enabled=%s backup=%s", name, rt.enabled,
                 rt.forced_backup)
        self._dirty = True
        self.schedule_reconcile()
        return {"name": name, "enabled": rt.enabled, "backup": rt.forced_backup}

    async def api_probe(self, name: str) -> dict[str, Any] | None:
        rt = self.paths.get(name)
        if rt is None:
            return None
        futs = []
        for f in rt.families:  # a round of each family's probes
            if f.prober is not None:
                fut = asyncio.get_running_loop().create_future()
                self._probe_waiters.setdefault((name, f.family), []).append(fut)
                futs.append(fut)
                f.prober.probe_now()
        if futs:
            wait = max(self._timeout(name, f.family) for f in rt.families if f.prober)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*futs), wait + PROBE_REPLY_SLACK_S)
        return self.api_path(name)

    def api_reload(self) -> dict[str, Any]:
        ok = self.reload()
        return {"ok": ok, "problems": [str(p) for p in self.problems]}

    def api_iface(self, interface: str, action: str, device: str | None) -> dict[str, Any]:
        """A netifd hotplug event (ifup/ifdown/ifupdate) told by /etc/hotplug.d/iface."""
        names = [n for n, rt in self.paths.items()
                 if rt.cfg.interface == interface or (device and rt.cfg.device == device)]
        log.info("netifd %s of %s (device %s): %s", action, interface, device or "?",
                 ", ".join(names) or "not a path")
        if action == "ifdown":
            for n in names:
                rt = self.paths[n]
                if rt.cfg.interface == interface and any(f.health.link_ok
                                                         for f in rt.families):
                    self._on_link(rt, False, f"netifd interface '{interface}' went down")
            self.schedule_reconcile()
        elif names:
            # ifup/ifupdate: the links again, for a path that netifd's ifdown took down (one
            # with a device of its own; refresh_netifd does it for the others)
            self._safe_resolve()
        self.refresh_netifd()
        return {"handled": bool(names), "path": names[0] if names else None}

    def _start_ubus(self) -> None:
        try:
            self.bus = Ubus(self.ubus_socket, reconnect=True, on_reconnect=self._on_ubus)
        except (UbusLibraryError, OSError) as e:
            self.bus_error = (f"libubus not usable ({e}): no ubus object; status is in "
                              f"{self.run_dir / STATUS_FILE}")
            log.warning("%s", self.bus_error)
            self.netifd.failed(self.bus_error)
            return
        self.bus.add_object(api.OBJECT, api.methods(self))
        self.bus.subscribe("network.interface", self._on_netifd_event)
        task = asyncio.get_running_loop().create_task(self._connect_ubus())
        self._keep(task)

    async def _connect_ubus(self) -> None:
        assert self.bus is not None
        try:
            await self.bus.connect()  # retries with backoff until ubusd is there
        except (UbusError, OSError) as e:
            self.bus_error = f"cannot connect to ubusd: {e}"
            log.warning("%s", self.bus_error)
            return
        self._on_ubus()

    def _on_ubus(self) -> None:
        self.bus_error = None
        log.info("ubus: object '%s' registered on %s", api.OBJECT,
                 self.ubus_socket or "the default ubus socket")
        self._dirty = True
        self.refresh_netifd()

    def _on_netifd_event(self, event: str, data: dict[str, Any]) -> None:
        log.debug("netifd event %s %s", event, data)
        self.refresh_netifd()

    def refresh_netifd(self) -> None:
        """Re-read netifd's interfaces (once at a time), then re-resolve the paths."""
        if self.cfg.paths and not any(rt.cfg.interface and not rt.cfg.device
                                      for rt in self.paths.values()):
            return
        if self._netifd_task is not None and not self._netifd_task.done():
            self._netifd_again = True
            return
        self._netifd_task = asyncio.get_running_loop().create_task(self._read_netifd())

    async def _read_netifd(self) -> None:
        while True:
            self._netifd_again = False
            if self.bus is None or not self.bus.connected:
                self.netifd.failed(self.bus_error or "not connected to ubusd")
            else:
                try:
                    self.netifd.update(await self.bus.call("network.interface", "dump",
                                                           timeout=NETIFD_TIMEOUT_S))
                except UbusError as e:
                    self.netifd.failed(f"network.interface dump: {e}")
                    log.warning("asking netifd: %s", e)
            self._sync_discovered()
            self._safe_resolve()
            if not self._netifd_again:
                return

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- MPTCP subflows ---------------------------------------------------------------------------
    def sample_subflows(self) -> None:
        """Count established MPTCP subflows per local address (sock_diag), now and then.

        (The kernel's mptcp_pm_events do not say `closed` for every connection, so counting
        events drifts; a dump is the truth.)
        """
        now = time.monotonic()
        if now - self._subflows_at < SUBFLOW_REFRESH_S:
            return
        self._subflows_at = now
        try:
            if self.subflow_counter is None:
                self.subflow_counter = SubflowCounter()
            counts = self.subflow_counter.by_address()
        except (NetlinkError, OSError, ValueError) as e:
            if self.subflows is not None or self.subflow_counter is None:
                log.warning("counting MPTCP subflows (sock_diag): %s", e)
            self.subflows = None
            return
        if counts != self.subflows:
            self.subflows = counts
            self._dirty = True

    # --- main -----------------------------------------------------------------------------------
    def reload(self) -> bool:
        log.info("reloading %s", self.config_dir / config.PACKAGE)
        ok = self.load_config()
        self._setup_limits()
        self._safe_resolve()
        self.refresh_netifd()
        self._dirty = True
        self.write_status()
        return ok

    def _setup_limits(self) -> None:
        self.kernel_errors = []
        if self.reconciler is None:
            return
        g = self.cfg.globals
        err = self.reconciler.set_limits(g.mptcp_subflows, g.mptcp_add_addr_accepted)
        if err:
            log.error("%s: subflows over other links will not be created", err)
            self.kernel_errors.append(err)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # procd sends SIGHUP on every config change, also while bondingd starts: from here on
        # it is caught (not fatal), and one that comes before the start is done reloads after it
        hup_while_starting: list[int] = []
        loop.add_signal_handler(signal.SIGHUP, hup_while_starting.append, signal.SIGHUP)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.dataplane = DataPlane(self.run_dir, on_change=self._dataplane_changed)
        self.load_config()
        try:
            self.rtnl = Rtnl()
        except OSError as e:
            log.critical("cannot open rtnetlink: %s", e)
            return 1
        try:
            self.pm = MptcpPM()
        except (NetlinkError, OSError) as e:
            msg = (f"MPTCP path manager unavailable ({e}): the kernel needs CONFIG_MPTCP "
                   "and net.mptcp.enabled=1; probing and routing go on without endpoints")
            log.error("%s", msg)
            self.kernel_errors.append(msg)
        self.reconciler = Reconciler(self.rtnl, self.pm, self.run_dir / "owned.json")
        self._setup_limits()
        self.monitor = LinkMonitor(self.on_event, ipv6=True)
        self.monitor.start(loop)
        for sig, fn in ((signal.SIGTERM, self._stop.set), (signal.SIGINT, self._stop.set),
                        (signal.SIGHUP, self.reload)):
            loop.add_signal_handler(sig, fn)
        self._start_ubus()
        self._safe_resolve()
        self.reconcile()
        if hup_while_starting:
            self.reload()
        log.info("bondingd %s started: %d paths, config %s", __version__, len(self.paths),
                 self.config_dir / config.PACKAGE)
        ticker = loop.create_task(self._tick())
        await self._stop.wait()
        log.info("stopping: removing our routes, rules and endpoints")
        ticker.cancel()
        self.failover.close()
        for rt in self.paths.values():
            for f in rt.families:
                if f.prober is not None:
                    f.prober.close()
        await self.dataplane.close()
        self.reconciler.cleanup(self.cfg.globals.rule_priority, self._tables())
        if self.bus is not None:
            self.bus.close()
        if self.subflow_counter is not None:
            self.subflow_counter.close()
        self.monitor.close()
        self.rtnl.close()
        if self.pm is not None:
            self.pm.close()
        self.status_file.remove()
        return 0

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH_S)
            self.sample_counters()
            self.sample_subflows()
            self.write_status()


def _gateway_of(defaults: Sequence[Route], ifindex: int) -> str | None:
    """The gateway of a default route (main table) through this device, if any."""
    return next((n.gateway for r in defaults for n in r.nexthops
                 if n.ifindex == ifindex and n.gateway), None)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bondingd",
        description="Bond several internet links with Multipath TCP: probes every path, keeps "
                    "MPTCP endpoints, routes and rules on the live ones, and reports the state.")
    p.add_argument("--config-dir", type=Path, default=Path("/etc/config"),
                   help="where the UCI file 'bonding' is (default: %(default)s)")
    p.add_argument("--run-dir", type=Path, default=Path("/var/run/bonding"),
                   help="where status.json is written (default: %(default)s)")
    p.add_argument("--hooks-dir", type=Path, default=Path("/etc/hotplug.d/bonding"),
                   help="scripts run with ACTION=path-up/path-down (default: %(default)s)")
    p.add_argument("--ubus-socket", default=None,
                   help="ubusd socket (default: libubus's own default)")
    p.add_argument("--check-config", action="store_true",
                   help="validate the config, print the problems, exit 1 on errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def check_config(config_dir: Path) -> int:
    """Validate /etc/config/bonding and, held against it, /etc/config/bonding_secrets."""
    cfg, problems = config.load(config_dir)
    for pc in cfg.paths:
        if pc.device and not Path("/sys/class/net", pc.device).exists():
            problems.append(config.Problem(
                Severity.WARNING, pc.name, "device", pc.device,
                f"device '{pc.device}' does not exist (now): the path stays down until it "
                "appears; check the name with `ip link`"))
    if not any(p.severity is Severity.ERROR for p in problems):
        problems += secretsfile.check_file(config_dir, cfg)
    for prob in problems:
        print(prob)
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    where = config_dir / config.PACKAGE
    if any(p.package == config.SECRETS_PACKAGE for p in problems):
        where = config_dir / f"{{{config.PACKAGE},{config.SECRETS_PACKAGE}}}"
    if errors:
        print(f"{where}: {errors} error(s): fix them, then `bondingd --check-config` again",
              file=sys.stderr)
        return 1
    print(f"{where}: OK" + (f" ({len(problems)} warning(s))" if problems else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.check_config:
        return check_config(args.config_dir)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    daemon = Daemon(args.config_dir, args.run_dir, hooks_dir=args.hooks_dir,
                    ubus_socket=args.ubus_socket)
    return asyncio.run(daemon.run())


if __name__ == "__main__":
    sys.exit(main())
