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
    # bondingd never speaks TLS, hashes nor compresses: keep asyncio from loading OpenSSL (4 MB
    # of RSS) where the ssl module is installed, `secrets` (bonding.safefile) from loading
    # libcrypto through hmac and hashlib (3.5 MB; they fall back to their built-in code), and
    # shutil from loading bz2 and lzma (0.4 MB; it only needs them for archives).
    for _unused in ("ssl", "_hashlib", "bz2", "lzma"):
        sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

import asyncio
import functools
import logging
import signal
import time
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from bonding import __version__, api, config, netifd, teardown
from bonding.bondingd import configload, handover, status
from bonding.bondingd.checkconfig import check_config, parser
from bonding.bondingd.handlers import Handlers
from bonding.bondingd.hooks import Hooks, send_event, server_action, server_env
from bonding.bondingd.kernel import Kernel
from bonding.bondingd.kernelview import read_view, resolve
from bonding.bondingd.linkevents import on_event
from bonding.bondingd.mptcpwatch import EVENT as MPTCP_EVENT
from bonding.bondingd.mptcpwatch import MptcpGuard, hook_env
from bonding.bondingd.mptcpwatch import event as mptcp_event
from bonding.bondingd.netifd_bridge import NetifdBridge
from bonding.bondingd.pathset import PathSet
from bonding.bondingd.planview import path_views, server_probe_paths
from bonding.bondingd.probing import Probing
from bonding.bondingd.runtime import FamilyRuntime, PathRuntime
from bonding.bondingd.samplers import SubflowSampler, sample_counters
from bonding.bondingd.standby import cadences, path_standings
from bonding.bondingd.status import STATUS_FILE, StatusFile
from bonding.bondingd.transitions import Transitions
from bonding.config import Config, PathConfig
from bonding.connects import Via
from bonding.core import health as hl
from bonding.core import mptcpblock
from bonding.core.cadence import Cadence
from bonding.core.cadence import inputs as cadence_inputs
from bonding.core.health import Health, Params
from bonding.core.plan import PathView
from bonding.core.roles import Standing
from bonding.dataplane import DataPlane
from bonding.failover import Change, Failover
from bonding.netlink.core import NetlinkError
from bonding.netlink.monitor import Event, LinkMonitor
from bonding.probe import PathProber
from bonding.serverprobe import Target
from bonding.ubus import Ubus, UbusError, UbusLibraryError

log = logging.getLogger("bondingd")

STATUS_REFRESH_S = 1.0
NETIFD_WAIT_S = 5.0  # no plan before netifd's first answer, when the paths come from netifd


class Daemon:
    def __init__(self, config_dir: Path, run_dir: Path, *, hooks_dir: Path | None = None,
                 ubus_socket: str | None = None) -> None:
        self.config_dir = config_dir
        self.run_dir = run_dir
        self.status_file = StatusFile(run_dir)
        self.hooks = Hooks(hooks_dir, self._spawn)
        self.ubus_socket = ubus_socket
        self.conf = configload.ConfigInUse(config_dir)
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._stop = asyncio.Event()
        self._dirty = True
        self._reconcile_pending = False
        self._cadence: dict[str, Cadence] = {}  # each path's probe interval (bonding.core.cadence)
        self._retune_pending = False
        self._tasks: set[asyncio.Task[None]] = set()  # hook runs, ubus connect
        self.kernel: Kernel | None = None
        self.dataplane: DataPlane | None = None
        self.monitor: LinkMonitor | None = None
        self.bus: Ubus | None = None
        self.bus_error: str | None = None
        self.netifd = netifd.NetifdView()
        self.pathset = PathSet(self.netifd.wan_interfaces, self.mark_dirty)
        self.netifd_bridge = NetifdBridge(self.netifd, lambda: self.bus,
                                          lambda: self.bus_error, self._netifd_read)
        self.counters_at = 0.0
        self.subflow_sampler = SubflowSampler()
        self.handlers = Handlers(self)
        self.transitions = Transitions(lambda: self.paths, lambda: self.params, self)
        self.mptcp = MptcpGuard(self)
        self.probing = Probing(PathProber, self._family_health, lambda: self.params,
                               self._on_round)
        self.failover = Failover(paths=self._server_probe_paths, on_active=self._server_active,
                                 on_state=self._server_changed)

    # --- config ---------------------------------------------------------------------------------
    def load_config(self) -> bool:
        """(Re)load the config; on errors keep the last good one.  True when applied."""
        if not self.conf.reload():
            return False
        self.pathset.configure(self.cfg)
        self.mptcp.configure(self.cfg.globals, self.paths)
        self.failover.configure(self.cfg)
        if self.dataplane is not None:
            self.conf.add_problems(self.dataplane.configure(self.cfg, self.config_dir,
                                                            server=self.failover.active))
        self._dirty = True
        return True

    @property
    def cfg(self) -> Config:
        return self.conf.cfg

    @property
    def problems(self) -> list[config.Problem]:
        return self.conf.problems

    @property
    def params(self) -> Params:
        return self.conf.params

    @property
    def paths(self) -> dict[str, PathRuntime]:
        return self.pathset.paths

    # --- kernel view ----------------------------------------------------------------------------
    def resolve_paths(self) -> None:
        """Find each path's device, ifindex, addresses and gateways (IPv4 and IPv6)."""
        assert self.kernel is not None
        view = read_view(self.kernel.rtnl, ipv6=self.cfg.globals.ipv6)
        for rt, news in resolve(self.paths.values(), view, self.netifd.lookup):
            if news.error is not None:
                self.on_link(rt, False, news.error)
            else:
                self.link_state(rt, news.up, news.carrier)

    def on_link(self, rt: PathRuntime, ok: bool, why: str,
                families: Sequence[FamilyRuntime] | None = None) -> None:
        self.transitions.on_link(rt, ok, why, families)

    def link_state(self, rt: PathRuntime, up: bool, carrier: bool) -> None:
        self.transitions.link_state(rt, up, carrier)

    # --- events ---------------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        on_event(self, list(self.paths.values()), ev, ipv6=self.cfg.globals.ipv6)

    def resolve(self) -> None:
        """Read the paths from the kernel again (errors logged), then probers and plan."""
        try:
            self.resolve_paths()
        except (NetlinkError, OSError) as e:
            log.error("reading links and addresses failed: %s", e)
        self._sync_probers()
        self.schedule_reconcile()

    # --- probing --------------------------------------------------------------------------------
    def _sync_probers(self) -> None:
        """Start, restart or stop each path's probers (one per address family) to match its
        device, addresses and targets."""
        g = self.cfg.globals
        self._cadence = self._cadences()
        for rt in self.paths.values():
            before = rt.health
            self.probing.sync(rt, functools.partial(self._targets, rt.cfg),
                              enabled=rt.enabled and g.enabled,
                              interval_ms=self._cadence[rt.cfg.name].interval_ms)
            self.transitions.after_change(rt, before)  # which families count may have changed

    def _on_round(self, name: str, family: int, r: hl.Round) -> None:
        rt = self.paths.get(name)
        before = cadence_inputs(rt.family(family).health) if rt is not None else None
        self.transitions.on_round(name, family, r)
        # most rounds change nothing the cadence reads (and a state change re-plans, which
        # retunes): no need to work out every path's standing again (a fifth of bondingd's CPU)
        if rt is None or cadence_inputs(rt.family(family).health) != before:
            self._retune()

    def _cadences(self) -> dict[str, Cadence]:
        g = self.cfg.globals
        return cadences(self.paths.values(), self.standings(),
                        normal_ms=g.probe_interval_ms, standby_ms=g.standby_probe_interval_ms)

    def standings(self) -> dict[str, Standing]:
        return path_standings(self._views())

    @property
    def cadence(self) -> dict[str, Cadence]:
        return self._cadence

    def _retune(self) -> None:
        """Probe at the interval each path's role and the bond paths' health call for."""
        if self._cadences() != self._cadence and not self._retune_pending:
            self._retune_pending = True
            asyncio.get_running_loop().call_soon(self._retuned)

    def _retuned(self) -> None:
        self._retune_pending = False
        self._sync_probers()

    def _targets(self, pc: PathConfig, family: int) -> tuple[str, ...]:
        return (self.cfg.targets_for(pc, family) if family == 4 or self.cfg.globals.ipv6
                else ())

    def _family_health(self, name: str, family: int) -> Health:
        rt = self.paths.get(name)
        return rt.family(family).health if rt else Health()

    # --- actions --------------------------------------------------------------------------------
    def schedule_reconcile(self) -> None:
        if not self._reconcile_pending:
            self._reconcile_pending = True
            asyncio.get_running_loop().call_soon(self.reconcile)

    def _views(self) -> list[PathView]:
        dp = self.dataplane
        return path_views(self.paths.values(),
                          dp.path_congctl if dp is not None else lambda name: None,
                          self.mptcp.watch.blocked(), self.cfg.globals.mptcp_blocked_native)

    def _tables(self) -> set[int]:
        g = self.cfg.globals
        return ({g.route_table, g.tproxy_table}
                | {g.path_table_base + rt.index for rt in self.paths.values()})

    def _dataplane_changed(self) -> None:
        self._dirty = True
        self.write_status()

    def reconcile(self) -> None:
        self._reconcile_pending = False
        if self.kernel is None or self.netifd_bridge.holding:
            return
        self._retune()  # what changed the plan (a state, a block, a link) may change cadences
        dp = self.dataplane
        self.kernel.apply(self.cfg, self._views(), self._tables(),
                          tproxy=dp.tproxy() if dp else None,
                          congctl=dp.congctl() if dp else None,
                          adopt=[f.address for rt in self.paths.values()
                                 for f in rt.families if f.address])
        self._dirty = True
        self.write_status()

    # --- servers ----------------------------------------------------------------------------------
    def _server_probe_paths(self) -> list[Via]:
        standby = {n for n, s in self.standings().items() if s.standby}
        return [Via(rt.cfg.name, rt.device or "", rt.address or "")
                for rt in server_probe_paths(self.paths.values(), standby)]

    # --- MPTCP blocking (bondingd.mptcpwatch) ---------------------------------------------------
    def mptcp_paths(self) -> list[Via]:
        return self._server_probe_paths()

    def mptcp_target(self) -> Target | None:
        return self.failover.active_target()

    def endpoint_addresses(self) -> list[str]:
        return list(self.kernel.reconciler.endpoint_ids) if self.kernel is not None else []

    def mptcp_changed(self, name: str, st: mptcpblock.PathBlock) -> None:
        send_event(self.bus, MPTCP_EVENT, mptcp_event(name, st))
        rt = self.paths.get(name)
        if rt is not None:
            self.hooks.fire(hook_env(name, st, rt.cfg.interface or name, rt.device or ""))
        self.schedule_reconcile()

    def _server_active(self, name: str | None) -> None:
        """The server in use changed: the proxy follows (the rest keeps running)."""
        if self.dataplane is not None:
            self.dataplane.set_server(name)
            self.schedule_reconcile()  # its IPv6 may change whether LAN IPv6 is proxied
        self._dirty = True
        self.write_status()

    def _server_changed(self, ch: Change) -> None:
        log.info("server %s: %s → %s (%s)", ch.name, ch.previous, ch.state, ch.reason)
        send_event(self.bus, api.EVENT_SERVER, {"name": ch.name, "state": str(ch.state),
                                                "previous": str(ch.previous),
                                                "reason": ch.reason})
        self._dirty = True
        self.write_status()
        action = server_action(ch)
        if action is not None:
            self.hooks.fire(server_env(action, ch))

    # --- what a path's change does (bondingd.transitions.Effects) --------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    def send_event(self, event: str, data: dict[str, Any]) -> None:
        send_event(self.bus, event, data)

    def fire_hooks(self, env: Mapping[str, str]) -> None:
        self.hooks.fire(env)

    # --- status ---------------------------------------------------------------------------------
    def sample_counters(self) -> None:
        now = time.monotonic()
        self.counters_at = now - self.started
        sample_counters(self.paths.values(), now)
        self._dirty = True

    def status(self, detail: bool = False) -> dict[str, Any]:
        return status.status(self, detail)

    def path_status(self, rt: PathRuntime, detail: bool = False) -> dict[str, Any]:
        return status.full_path_status(self, rt, status.kernel_view(self), detail)

    def write_status(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.status_file.write(self.status(detail=True))

    # --- what the ubus methods (bondingd.handlers) ask of the daemon --------------------------
    def apply_enabled(self, rt: PathRuntime) -> None:
        """A path's enabled override changed: its health and probers follow."""
        before = rt.health
        rt.set_enabled(rt.enabled and self.cfg.globals.enabled, time.monotonic())
        self.transitions.after_change(rt, before)
        self._sync_probers()

    def changed(self) -> None:
        self._dirty = True
        self.schedule_reconcile()

    async def probe_now(self, rt: PathRuntime) -> None:
        await self.probing.probe_now(rt)

    def _start_ubus(self) -> None:
        try:
            self.bus = Ubus(self.ubus_socket, reconnect=True, on_reconnect=self._on_ubus)
        except (UbusLibraryError, OSError) as e:
            self.bus_error = (f"libubus not usable ({e}): no ubus object; status is in "
                              f"{self.run_dir / STATUS_FILE}")
            log.warning("%s", self.bus_error)
            self.netifd.failed(self.bus_error)
            return
        self.bus.add_object(api.OBJECT, api.methods(self.handlers))
        self.bus.subscribe("network.interface", self.netifd_bridge.on_event)
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

    def refresh_netifd(self) -> None:
        """Re-read netifd's interfaces (once at a time), then re-resolve the paths."""
        if self.pathset.from_netifd(self.cfg):
            self.netifd_bridge.refresh()

    def _netifd_read(self) -> None:
        self.pathset.sync_discovered(self.cfg)
        self.resolve()

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._keep(asyncio.get_running_loop().create_task(coro))

    def sample_subflows(self) -> None:
        if self.subflow_sampler.sample(time.monotonic()):
            self._dirty = True

    @property
    def subflows(self) -> Counter[str] | None:
        """Established MPTCP subflows by local address (None: unknown)."""
        return self.subflow_sampler.counts

    # --- main -----------------------------------------------------------------------------------
    def reload(self) -> bool:
        log.info("reloading %s", self.config_dir / config.PACKAGE)
        ok = self.load_config()
        self._setup_limits()
        self.resolve()
        self.refresh_netifd()
        self._dirty = True
        self.write_status()
        return ok

    def _setup_limits(self) -> None:
        if self.kernel is not None:
            self.kernel.set_limits(self.cfg)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # procd sends SIGHUP on every config change, also while bondingd starts: from here on
        # it is caught (not fatal), and one that comes before the start is done reloads after it
        hup_while_starting: list[int] = []
        loop.add_signal_handler(signal.SIGHUP, hup_while_starting.append, signal.SIGHUP)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handover.clear(self.run_dir)
        self.dataplane = DataPlane(self.run_dir, on_change=self._dataplane_changed)
        self.load_config()
        try:
            self.kernel = kernel = Kernel.open(self.run_dir)
        except OSError as e:
            log.critical("cannot open rtnetlink: %s", e)
            return 1
        self._setup_limits()
        self.monitor = LinkMonitor(self.on_event, ipv6=True)
        self.monitor.start(loop)
        for sig, fn in ((signal.SIGTERM, self._stop.set), (signal.SIGINT, self._stop.set),
                        (signal.SIGHUP, self.reload)):
            loop.add_signal_handler(sig, fn)
        self._start_ubus()
        if self.pathset.from_netifd(self.cfg):
            # the first plan waits for netifd's paths: one without them would remove the
            # routes and endpoints a restart left (and the connections on them), then add them
            self.netifd_bridge.hold(NETIFD_WAIT_S, self.schedule_reconcile)
        self.resolve()
        self.reconcile()
        self.mptcp.start()
        if hup_while_starting:
            self.reload()
        log.info("bondingd %s started: %d paths, config %s", __version__, len(self.paths),
                 self.config_dir / config.PACKAGE)
        ticker = loop.create_task(self._tick())
        await self._stop.wait()
        restart = handover.requested(self.run_dir)
        log.info("restart: leaving the proxy, its nftables table, our routes, rules and "
                 "endpoints to the next bondingd" if restart
                 else "stopping: removing our routes, rules and endpoints")
        ticker.cancel()
        failed = await teardown.run_all([
            ("server failover", self.failover.close),
            ("the MPTCP checks", self.mptcp.close),
            ("the probers", self.pathset.stop_probers),
            ("the proxy and its nftables table",
             self.dataplane.detach if restart else self.dataplane.close),
            ("ubus", self._close_bus),
            ("the subflow sampler", self.subflow_sampler.close),
            ("the link monitor", self.monitor.close),
            ("our routes, rules and endpoints",
             kernel.detach if restart
             else lambda: kernel.close(self.cfg.globals.rule_priority, self._tables())),
            ("status.json", self.status_file.remove)])
        return 1 if failed else 0

    def _close_bus(self) -> None:
        if self.bus is not None:
            self.bus.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH_S)
            self.sample_counters()
            self.sample_subflows()
            self.mptcp.tick(((n, rt.address) for n, rt in self.paths.items()),
                            self.subflow_sampler.subflows)
            self.write_status()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.check_config:
        return check_config(args.config_dir)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    daemon = Daemon(args.config_dir, args.run_dir, hooks_dir=args.hooks_dir,
                    ubus_socket=args.ubus_socket)
    return asyncio.run(daemon.run())


if __name__ == "__main__":
    sys.exit(main())
