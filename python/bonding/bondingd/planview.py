"""What the planner (bonding.core.plan) is told of each path and family: pure functions of the
paths' runtime."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from bonding.bondingd.runtime import FamilyRuntime, PathRuntime
from bonding.core.health import State
from bonding.core.plan import FamilyView, PathView
from bonding.core.roles import Role


def state_for_plan(rt: PathRuntime, f: FamilyRuntime) -> tuple[State, bool]:
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


def path_views(paths: Iterable[PathRuntime], congctl: Callable[[str], str | None],
               mptcp_blocked: frozenset[str] = frozenset(),
               blocked_native: bool = True) -> list[PathView]:
    """Every path as the planner sees it; `congctl` names a path's congestion control;
    `mptcp_blocked`: the paths whose ISP blocks MPTCP, which still carry what needs no MPTCP
    when `blocked_native`, and nothing (as if down) when not."""
    out = []
    for rt in paths:
        blocked = rt.cfg.name in mptcp_blocked
        state, backup = state_for_plan(rt, rt.v4)
        if blocked and not blocked_native and state is not State.DISABLED:
            state = State.DOWN
        v6 = None
        if rt.v6.address is not None:
            state6, backup6 = state_for_plan(rt, rt.v6)
            if blocked and not blocked_native and state6 is not State.DISABLED:
                state6 = State.DOWN
            v6 = FamilyView(rt.v6.address, rt.v6.gateway, state6, rt.v6.health.link_ok,
                            backup6)
        out.append(PathView(
            name=rt.cfg.name, index=rt.index, device=rt.device, ifindex=rt.ifindex,
            address=rt.v4.address, gateway=rt.v4.gateway, state=state,
            link_ok=rt.v4.health.link_ok, backup=backup, weight_kbit=rt.cfg.upload_kbit,
            congctl=congctl(rt.cfg.name), v6=v6, role=Role(rt.cfg.role),
            rtt_ms=rt.v4.health.srtt_ms, mptcp_blocked=blocked))
    return out


def server_probe_paths(paths: Iterable[PathRuntime],
                       standby: Collection[str] = ()) -> list[PathRuntime]:
    """The paths servers are probed through: those carrying traffic (every path with a link
    when none passes its probes, as routing does); never a backup path standing by
    (`standby`, bonding.core.roles: its probing must cost almost nothing)."""
    usable = [rt for rt in paths if rt.enabled and rt.device and rt.address
              and rt.health.link_ok and rt.health.state is not State.DISABLED
              and rt.cfg.name not in standby]
    return [rt for rt in usable if state_for_plan(rt, rt.v4)[0].live] or usable
