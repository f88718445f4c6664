"""Roles in the daemon: which paths stand by (from the planner's view of them) and at what
interval each path is probed.  Pure functions of the paths' runtime and views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bonding.bondingd.runtime import PathRuntime
from bonding.core.cadence import Cadence, probe_interval, solid
from bonding.core.plan import V4, V6, PathView
from bonding.core.roles import Member, Role, Standing, standings


def path_standings(views: Sequence[PathView]) -> dict[str, Standing]:
    """Each path's standing, decided in its IPv4 family (IPv6 for a path with IPv6 only), as
    the plan decides it per family."""
    out: dict[str, Standing] = {}
    for family in (V6, V4):  # IPv4's answer wins where a path has both
        members = [Member(p.name, p.role, f.state) for p in views
                   if (f := p.family(family)) is not None]
        out.update(standings(members))
    for p in views:
        out.setdefault(p.name, standings([Member(p.name, p.role, p.state)])[p.name])
    return out


def cadences(paths: Iterable[PathRuntime], standing: Mapping[str, Standing], *,
             normal_ms: int, standby_ms: int) -> dict[str, Cadence]:
    """The probe interval of each path (bonding.core.cadence)."""
    rts = list(paths)
    bonds_solid = any(rt.enabled and Role(rt.cfg.role) is Role.BOND
                      and any(solid(f.health) for f in rt.counted()) for rt in rts)
    out = {}
    for rt in rts:
        st = standing.get(rt.cfg.name)
        out[rt.cfg.name] = probe_interval(
            standby=st is not None and st.standby, bonds_solid=bonds_solid,
            own=[f.health for f in rt.counted()], normal_ms=normal_ms, standby_ms=standby_ms)
    return out
