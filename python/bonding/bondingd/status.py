"""The `status` reply, what `status` and `path` say of each path, and the status.json snapshot.

Rendering is pure: it reads the paths' runtime and a `KernelView` of what the kernel holds
(which paths carry traffic, endpoint ids, subflow counts); the whole reply reads bondingd's
parts through `Sources` (small Protocols, faked in the tests).  `StatusFile` writes the
snapshot atomically for scripts and hosts with no ubusd.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bonding import __version__
from bonding.bondingd.runtime import FamilyRuntime, PathRuntime, measures, window
from bonding.config import Config, Globals, Problem
from bonding.core.cadence import Cadence
from bonding.core.health import Params, State
from bonding.core.roles import Standing

log = logging.getLogger("bondingd")

STATUS_FILE = "status.json"


@dataclass
class KernelView:
    """What the kernel holds for the paths, as the status reports it."""

    carriers: dict[int, tuple[str, ...]] = field(
        default_factory=lambda: {4: (), 6: ()})  # paths with endpoints and routes, per family
    endpoint_ids: Mapping[str, int] = field(default_factory=dict)  # by local address
    subflows: Counter[str] | None = None  # established subflows by local address; None: unknown
    standing: Mapping[str, Standing] = field(default_factory=dict)  # bonding.core.roles
    cadence: Mapping[str, Cadence] = field(default_factory=dict)  # probe interval, by path

    def endpoint_id(self, address: str | None) -> int | None:
        return None if address is None else self.endpoint_ids.get(address)

    def path_subflows(self, rt: PathRuntime) -> int | None:
        if self.subflows is None or (rt.v4.address is None and rt.v6.address is None):
            return None
        return sum(self.subflows.get(f.address, 0) for f in rt.families if f.address)


def family_status(rt: PathRuntime, f: FamilyRuntime, now: float,
                  kernel: KernelView) -> dict[str, Any]:
    """One address family of a path (the `families` object of `path`)."""
    h = f.health
    return {
        "state": str(h.state),
        "reason": h.reason if h.state is not State.UP else "",
        "since": round(f.since_wall, 3),
        "probed": f.probed,  # False: no target of this family; it follows the other one
        "carrying": rt.cfg.name in kernel.carriers[f.family],  # has its endpoint and routes
        "backup": rt.backup_for(h),
        "address": f.address,
        "gateway": f.gateway,
        "endpoint_id": kernel.endpoint_id(f.address),
        "subflows": (None if kernel.subflows is None or f.address is None
                     else kernel.subflows.get(f.address, 0)),
        **measures(h),
        "rounds": h.rounds,
        "window": window(h),
        "targets": ([t.as_dict(now) for t in f.prober.stats.values()]
                    if f.prober else []),
    }


def path_status(rt: PathRuntime, params: Params, kernel: KernelView, *, ipv6: bool,
                detail: bool = False) -> dict[str, Any]:
    """One path as `status` lists it; with `detail`, as `path` answers (rounds, the last
    window, per-target results and each family)."""
    h = rt.health
    now = time.monotonic()
    out: dict[str, Any] = {
        "state": str(h.state),
        "reason": h.reason if h.state is not State.UP else "",
        "since": round(rt.since_wall, 3),
        "backup": rt.backup,
        "forced_backup": rt.forced_backup,
        **role_status(rt, kernel),
        "enabled": rt.enabled,
        "interface": rt.cfg.interface,
        "device": rt.device,
        "address": rt.address,
        "gateway": rt.gateway,
        "address6": rt.v6.address,
        **measures(h),
        "rx_bps": round(rt.rx_bps),
        "tx_bps": round(rt.tx_bps),
        "rx_bytes": rt.counters[1] if rt.counters else None,
        "tx_bytes": rt.counters[2] if rt.counters else None,
        "endpoint_id": kernel.endpoint_id(rt.address),
        "endpoint_id6": kernel.endpoint_id(rt.v6.address),
        "subflows": kernel.path_subflows(rt),
        "probe_timeout_ms": round(h.timeout_ms(params)),
    }
    if rt.resolve_error:
        out["error"] = rt.resolve_error
    if detail:
        out["rounds"] = h.rounds
        out["window"] = window(h)
        out["targets"] = [t.as_dict(now) for f in rt.families if f.prober
                          for t in f.prober.stats.values()]
        out["families"] = {f.label.lower(): family_status(rt, f, now, kernel)
                           for f in rt.families if f.family == 4 or ipv6}
    return out


class Endpoints(Protocol):
    @property
    def endpoint_ids(self) -> Mapping[str, int]: ...


class Rules(Protocol):
    def status(self, proxy_running: bool) -> list[dict[str, Any]]: ...


class Realtime(Protocol):
    def status(self) -> dict[str, Any] | None: ...


class Shaping(Protocol):
    def status(self) -> dict[str, Any]: ...


class KernelParts(Protocol):
    """What the status reads of bondingd.kernel.Kernel."""

    @property
    def fail_open(self) -> bool: ...
    @property
    def fail_open6(self) -> bool: ...
    @property
    def errors(self) -> list[str]: ...
    @property
    def carriers(self) -> dict[int, tuple[str, ...]]: ...
    @property
    def reconciler(self) -> Endpoints: ...
    @property
    def pinning(self) -> Rules: ...
    @property
    def realtime(self) -> Realtime: ...
    @property
    def shaper(self) -> Shaping: ...


class ProxyParts(Protocol):
    """What the status reads of bonding.dataplane.DataPlane."""

    @property
    def running(self) -> bool: ...
    def status(self) -> dict[str, Any]: ...
    def errors(self) -> list[str]: ...


class ServerParts(Protocol):
    """What the status reads of bonding.failover.Failover."""

    def status(self) -> list[dict[str, Any]]: ...
    def active_status(self) -> dict[str, Any]: ...


class BusParts(Protocol):
    @property
    def connected(self) -> bool: ...


class MptcpStatus(Protocol):
    def status(self, name: str, now: float) -> dict[str, Any]: ...


class MptcpParts(Protocol):
    """What the status reads of bondingd.mptcpwatch.MptcpGuard."""

    @property
    def watch(self) -> MptcpStatus: ...
    def settings(self, g: Globals) -> dict[str, Any]: ...


class Sources(Protocol):
    """What the `status` reply is made of (bondingd)."""

    @property
    def cfg(self) -> Config: ...
    @property
    def problems(self) -> list[Problem]: ...
    @property
    def params(self) -> Params: ...
    @property
    def paths(self) -> Mapping[str, PathRuntime]: ...
    @property
    def kernel(self) -> KernelParts | None: ...
    @property
    def dataplane(self) -> ProxyParts | None: ...
    @property
    def failover(self) -> ServerParts: ...
    @property
    def bus(self) -> BusParts | None: ...
    @property
    def bus_error(self) -> str | None: ...
    @property
    def started(self) -> float: ...  # monotonic
    @property
    def started_wall(self) -> float: ...
    @property
    def counters_at(self) -> float: ...  # uptime when the byte counters were read
    @property
    def subflows(self) -> Counter[str] | None: ...
    @property
    def cadence(self) -> Mapping[str, Cadence]: ...  # each path's probe interval
    def standings(self) -> Mapping[str, Standing]: ...  # each path's role at work
    @property
    def mptcp(self) -> MptcpParts: ...


def full_path_status(d: Sources, rt: PathRuntime, kv: KernelView,
                     detail: bool = False) -> dict[str, Any]:
    """A path as `status` and `path` show it: its state and whether its ISP blocks MPTCP."""
    out = path_status(rt, d.params, kv, ipv6=d.cfg.globals.ipv6, detail=detail)
    out["mptcp"] = d.mptcp.watch.status(rt.cfg.name, time.monotonic())
    if out["mptcp"]["blocked"] and not out["reason"]:
        out["reason"] = out["mptcp"]["reason"]
    return out


def kernel_view(d: Sources) -> KernelView:
    k, standing, cadence = d.kernel, dict(d.standings()), dict(d.cadence)
    if k is None:
        return KernelView(subflows=d.subflows, standing=standing, cadence=cadence)
    return KernelView(k.carriers, k.reconciler.endpoint_ids, d.subflows, standing, cadence)


def no_proxy(since: float) -> dict[str, Any]:
    """The `proxy` object before the data plane exists."""
    return {"backend": "none", "state": "disabled", "pid": None, "restarts": 0,
            "since": round(since, 3), "error": "",
            "ipv6": {"lan": "routed natively", "reason": "no proxy"}}


def status(d: Sources, detail: bool = False) -> dict[str, Any]:
    """The `status` reply (with `detail`: status.json, each path as `path` has it)."""
    k, dp = d.kernel, d.dataplane
    kv = kernel_view(d)
    return {
        "version": __version__,
        "uptime": round(time.monotonic() - d.started, 3),
        "counters_at": round(d.counters_at, 3),  # uptime when the byte counters were read
        "enabled": d.cfg.globals.enabled,
        "fail_open": k is not None and k.fail_open,
        "fail_open6": k is not None and k.fail_open6,
        "servers": d.failover.status(),
        "active_server": d.failover.active_status(),
        "paths": {name: full_path_status(d, rt, kv, detail) for name, rt in d.paths.items()},
        "proxy": dp.status() if dp is not None else no_proxy(d.started_wall),
        "rules": k.pinning.status(dp is not None and dp.running) if k is not None else [],
        "realtime": k.realtime.status() if k is not None else None,
        "shaping": k.shaper.status() if k is not None else {},
        "config_problems": [str(p) for p in d.problems],
        "errors": ((k.errors if k is not None else [])
                   + (dp.errors() if dp is not None else [])),
        "ubus": {"connected": d.bus is not None and d.bus.connected, "error": d.bus_error},
        "mptcp_checks": d.mptcp.settings(d.cfg.globals),
    }


def role_status(rt: PathRuntime, kernel: KernelView) -> dict[str, Any]:
    """The path's role, whether it stands by and why, and how often it is probed."""
    st = kernel.standing.get(rt.cfg.name)
    cad = kernel.cadence.get(rt.cfg.name)
    return {"role": rt.cfg.role, "standby": st is not None and st.standby,
            "standby_reason": st.reason if st is not None else "",
            "probe_interval_ms": cad.interval_ms if cad is not None else None,
            "probe_cadence": cad.why if cad is not None else ""}


class StatusFile:
    """<run-dir>/status.json, replaced atomically (a reader never sees half of it)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATUS_FILE

    def write(self, data: Mapping[str, Any]) -> None:
        tmp = self.path.with_name(STATUS_FILE + ".tmp")
        try:
            tmp.write_text(json.dumps(data, separators=(",", ":")))
            tmp.replace(self.path)
        except OSError as e:
            log.error("writing %s: %s", self.path, e)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
