"""A default route for sing-box's network monitor to hold on to, while sing-box is the proxy.

sing-box (1.14) watches the first default route of the main table and, whenever its device
changes, closes *every* connection it proxies (route/network.go: the default interface monitor
calls NetworkManager.ResetNetwork, which calls CloseAll).  On OpenWrt netifd keeps one default
route per WAN in the main table: when the first one goes (its link loses carrier, its DHCP lease
or its modem session ends), every bonded connection of the LAN would be cut, which is exactly
what bonding is there to prevent.  Measured in the lab: a transfer through sing-box is reset the
moment the first default route of the main table changes device; with this route it goes on.

So while sing-box runs, bondingd keeps ``default dev lo tos 0x1c metric 0 proto 200`` in the
main table.  A route with a TOS sorts before every route without one, so it is the first default
route the monitor sees, and its device never changes.  No traffic takes it: it matches only
packets whose TOS is 0x1c (DSCP 7, unassigned), and bondingd's rule ``lookup main
suppress_prefixlength 0`` passes over every default route of the main table anyway.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Final

from bonding.actions import RTPROT_BONDING
from bonding.netlink.core import NetlinkError
from bonding.netlink.rtnl import RT_SCOPE_LINK, RT_TABLE_MAIN, Nexthop, Rtnl

log = logging.getLogger("bondingd.dataplane")

TOS: Final = 0x1C
METRIC: Final = 0
GONE: Final = (errno.ESRCH, errno.ENOENT)


class Anchor:
    """Adds or removes the route; :meth:`set` is idempotent."""

    def __init__(self, rtnl: Callable[[], Rtnl] = Rtnl) -> None:
        self._rtnl = rtnl
        self.present: bool | None = None  # None: not known (a bondingd before may have left it)

    def set(self, want: bool) -> None:
        """Make the route exist (or not); raises OSError (NetlinkError) when netlink refuses."""
        if want == self.present:
            return
        with self._rtnl() as nl:
            if want:
                nl.route_replace(RT_TABLE_MAIN, "default", 0, [Nexthop(None, nl.link_index("lo"))],
                                 metric=METRIC, protocol=RTPROT_BONDING, scope=RT_SCOPE_LINK,
                                 tos=TOS)
                log.info("route 'default dev lo tos %#x' in the main table: sing-box keeps its "
                         "connections when a WAN's default route changes", TOS)
            elif self.present or any(  # not known: one an earlier bondingd left?
                    r.dst == "default" and r.tos == TOS and r.protocol == RTPROT_BONDING
                    for r in nl.routes(RT_TABLE_MAIN)):
                try:
                    nl.route_del(RT_TABLE_MAIN, "default", 0, METRIC, tos=TOS)
                except NetlinkError as e:
                    if e.errno not in GONE:
                        raise
        self.present = want
