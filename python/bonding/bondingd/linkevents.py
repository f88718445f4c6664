"""Link and address events from the kernel (bonding.netlink.monitor), acted on at once: a
removed device, a lost carrier or a removed address takes its path (or family) down without
waiting for probes; anything else that may change a path makes the daemon look again.

The decisions are here; what they do goes through `Core`, so they are tested with a fake.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from bonding.bondingd.runtime import FamilyRuntime, PathRuntime
from bonding.netlink.monitor import AddrEvent, Event, LinkEvent, Resync
from bonding.netlink.rtnl import AF_INET6

log = logging.getLogger("bondingd")


class Core(Protocol):
    """What the events act on (bondingd)."""

    def on_link(self, rt: PathRuntime, ok: bool, why: str,
                families: Sequence[FamilyRuntime] | None = None) -> None: ...
    def link_state(self, rt: PathRuntime, up: bool, carrier: bool) -> None: ...
    def resolve(self) -> None: ...
    def schedule_reconcile(self) -> None: ...


def on_event(core: Core, paths: Iterable[PathRuntime], ev: Event, *, ipv6: bool) -> None:
    if isinstance(ev, Resync):
        log.warning("netlink events were lost: re-reading links and addresses")
        core.resolve()
        return
    if isinstance(ev, LinkEvent):
        _on_link_event(core, paths, ev)
    elif isinstance(ev, AddrEvent):
        v6 = ev.family == AF_INET6
        if v6 and (not ipv6 or ev.address.startswith("fe80:")):
            return
        _on_addr_event(core, paths, ev, v6)
    core.schedule_reconcile()


def _on_link_event(core: Core, paths: Iterable[PathRuntime], ev: LinkEvent) -> None:
    for rt in paths:
        if not (rt.device == ev.name or (rt.ifindex == ev.index and ev.removed)):
            continue
        if ev.removed:
            rt.ifindex = rt.v4.address = rt.v6.address = None
            core.on_link(rt, False, f"{rt.device} was removed")
        elif rt.ifindex != ev.index or rt.address is None:
            core.resolve()
        else:
            core.link_state(rt, ev.up, ev.carrier)


def _on_addr_event(core: Core, paths: Iterable[PathRuntime], ev: AddrEvent, v6: bool) -> None:
    for rt in paths:
        if rt.ifindex != ev.index:
            continue
        f = rt.v6 if v6 else rt.v4
        if not ev.added and ev.address == f.address:
            f.address = None
            core.on_link(rt, False, f"address {ev.address} removed from {rt.device}", [f])
            core.resolve()  # another address may remain
        elif ev.added and (f.address is None or v6):
            # IPv6: an address turns usable (DAD over) or unusable (deprecated) by
            # RTM_NEWADDR too: look again
            core.resolve()
