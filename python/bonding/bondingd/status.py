"""What `status` and `path` say of each path, and the status.json snapshot.

Rendering is pure: it reads the paths' runtime and a `KernelView` of what the kernel holds
(which paths carry traffic, endpoint ids, subflow counts).  `StatusFile` writes the snapshot
atomically for scripts and hosts with no ubusd.
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
from typing import Any

from bonding.bondingd.runtime import FamilyRuntime, PathRuntime, measures, window
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
