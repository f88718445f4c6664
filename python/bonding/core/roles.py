"""Link roles (`option role` of a path): which paths stand by, and why.  Pure.

- `bond` (the default): carries traffic whenever it is live;
- `backup`: stands by (no MPTCP endpoint, no server route, slow probing: bonding.core.cadence)
  while any `bond` path is up in the same address family, and carries traffic while none is.
  A `bond` path that is only degraded does not count as up: when every `bond` path is degraded
  the backup joins (the degraded paths' endpoints are MPTCP backups then, so it takes the
  traffic).

This differs from `option backup 1` (a forced backup): that path keeps an MPTCP endpoint with
the backup flag, so subflows over it are open and ready, and it is probed at the normal rate;
a `role backup` path opens no subflow and sends almost no probe while it stands by, which is
what a metered link needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from bonding.core.health import State


class Role(StrEnum):
    BOND = "bond"
    BACKUP = "backup"


ROLES: Final = tuple(str(r) for r in Role)


@dataclass(frozen=True)
class Member:
    """One path in one address family, as the role decision sees it."""

    name: str
    role: Role
    state: State  # its state for the plan (live: up or degraded)


@dataclass(frozen=True)
class Standing:
    standby: bool
    reason: str


def standings(members: Sequence[Member]) -> dict[str, Standing]:
    """Whether each path stands by, with the reason status shows.

    Only `backup` paths ever stand by: while some `bond` path is up."""
    bond_up = [m.name for m in members if m.role is Role.BOND and m.state is State.UP]
    out: dict[str, Standing] = {}
    for m in members:
        if m.role is Role.BOND:
            out[m.name] = Standing(False, "bond path: carries traffic while live")
        elif bond_up:
            out[m.name] = Standing(True, "standing by: bond path " + ", ".join(bond_up)
                                   + (" is" if len(bond_up) == 1 else " are") + " up")
        else:
            out[m.name] = Standing(False, "in use: no bond path is up")
    return out


def standby_names(members: Sequence[Member]) -> frozenset[str]:
    """The paths that stand by (no endpoint, no route)."""
    return frozenset(n for n, s in standings(members).items() if s.standby)
