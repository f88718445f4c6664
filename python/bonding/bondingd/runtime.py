"""A path's live state and each of its address families': config, device, addresses, probers,
health.  No I/O: the daemon and its parts update it; `health` combines the families'."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bonding.config import PathConfig
from bonding.core import health as hl
from bonding.core.health import Health, State
from bonding.probe import TargetStats


class Prober(Protocol):
    """A family's prober, as the daemon's parts use it (bonding.probe.PathProber)."""

    stats: dict[str, TargetStats]  # per target

    def start(self) -> None: ...
    def close(self) -> None: ...
    def probe_now(self) -> None: ...


@dataclass
class FamilyRuntime:
    """One address family (4 or 6) of a path: its address and gateway, probes and health."""

    family: int
    health: Health = field(default_factory=Health)
    address: str | None = None
    gateway: str | None = None
    targets: tuple[str, ...] = ()  # probe targets of this family (empty: not probed)
    prober: Prober | None = None
    probe_key: tuple[object, ...] = ()
    since_wall: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"IPv{self.family}"

    @property
    def probed(self) -> bool:
        return self.address is not None and bool(self.targets)


@dataclass
class PathRuntime:
    """One path's live state: its config, where it is in the kernel, its health.

    Each address family has its own health (fed by its own probes) in `v4` and `v6`; `health`
    is the path's, combined by bonding.core.health.combine: up while either family is."""

    cfg: PathConfig
    index: int
    device: str | None = None
    ifindex: int | None = None
    v4: FamilyRuntime = field(default_factory=lambda: FamilyRuntime(4))
    v6: FamilyRuntime = field(default_factory=lambda: FamilyRuntime(6))
    resolve_error: str | None = None
    enabled_override: bool | None = None  # set_path over ubus; cleared by reload
    backup_override: bool | None = None
    counters: tuple[float, int, int] | None = None  # (monotonic, rx_bytes, tx_bytes)
    rx_bps: float = 0.0
    tx_bps: float = 0.0
    since_wall: float = field(default_factory=time.time)
    family_states: tuple[State, State] = (State.DOWN, State.DOWN)  # last seen (v4, v6)

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled if self.enabled_override is None else self.enabled_override

    @property
    def forced_backup(self) -> bool:
        return self.cfg.backup if self.backup_override is None else self.backup_override

    @property
    def backup(self) -> bool:
        return self.backup_for(self.health)

    def backup_for(self, h: Health) -> bool:
        """Backup by configuration or override, or as `h` (the path's, or one family's) is
        degraded."""
        return self.forced_backup or h.state is State.DEGRADED

    @property
    def families(self) -> tuple[FamilyRuntime, FamilyRuntime]:
        return (self.v4, self.v6)

    def family(self, family: int) -> FamilyRuntime:
        return self.v6 if family == 6 else self.v4

    @property
    def address(self) -> str | None:
        """The IPv4 address (the IPv6 one is v6.address)."""
        return self.v4.address

    @property
    def gateway(self) -> str | None:
        return self.v4.gateway

    def counted(self) -> list[FamilyRuntime]:
        """The families the path's state comes from: those probed, else those with an address
        (judged by the link alone), else IPv4 (which says why it has none)."""
        present = [f for f in self.families if f.address is not None]
        return [f for f in self.families if f.probed] or present or [self.v4]

    @property
    def health(self) -> Health:
        """The path's health: the deciding family's, with the combined state and reason."""
        fams = self.counted()
        state, reason, i = hl.combine([(f.label, f.health) for f in fams])
        h = fams[i].health
        return h if (state, reason) == (h.state, h.reason) else replace(h, state=state,
                                                                        reason=reason)

    def on_link(self, ok: bool, reason: str, now: float,
                families: Sequence[FamilyRuntime] | None = None) -> None:
        """Carrier, device or address news for some families (all by default)."""
        for f in families if families is not None else self.families:
            f.health = hl.on_link(f.health, ok, reason, now)

    def set_enabled(self, enabled: bool, now: float) -> None:
        for f in self.families:
            f.health = hl.set_enabled(f.health, enabled, now)


def measures(h: Health) -> dict[str, Any]:
    """What the probes measured, as `path` and each of its `families` report it."""
    return {"rtt_ms": None if h.srtt_ms is None else round(h.srtt_ms, 2),
            "jitter_ms": None if h.jitter_ms is None else round(h.jitter_ms, 2),
            "loss_pct": None if h.loss_pct is None else round(h.loss_pct, 1)}


def window(h: Health) -> list[str]:
    return ["ok" if ok else "fail" for ok in h.window]


def rebuild(old: dict[str, PathRuntime], pcs: Sequence[PathConfig], *, reset_overrides: bool,
            enabled: bool, now: float) -> tuple[dict[str, PathRuntime], list[PathRuntime]]:
    """The paths of a new config: a path keeps its runtime (health, probers, counters) by
    name, and its ubus overrides unless `reset_overrides`; (the paths, those gone)."""
    rest = dict(old)
    paths: dict[str, PathRuntime] = {}
    for i, pc in enumerate(pcs):
        rt = rest.pop(pc.name, None)
        if rt is None:
            rt = PathRuntime(cfg=pc, index=i)
        else:
            rt = replace(rt, cfg=pc, index=i)
            if reset_overrides:
                rt.enabled_override = rt.backup_override = None
        rt.set_enabled(rt.enabled and enabled, now)
        paths[pc.name] = rt
    return paths, list(rest.values())
