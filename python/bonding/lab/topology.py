"""The lab: a bonding router and its world in network namespaces on one Linux machine.

    lan ── router ──wan1── isp1 ──┐          ┌── server   (aggregation server, 203.0.113.10)
                  ──wan2── isp2 ──┼── inet ──┼── server2  (a second one, 203.0.113.20: servers=2)
                  ──wanN── ispN ──┘          └── target   (an internet host, 198.51.100.10)

Every link and host has an IPv6 address too, all inside 2001:db8::/32 (documentation): the LAN
2001:db8:192::/64, link i 2001:db8:64:i::/64 (router ::2, ISP ::1) and 2001:db8:65:i::/64
(ISP ::2, internet ::1), the server 2001:db8:203::10, the target 2001:db8:198::10 (the IPv4
ranges' numbers, for the eye).  The router
learns each link's IPv6 gateway from its main table, where the lab puts OpenWrt-style
source-specific default routes (as netifd would from the ISP's router advertisements): one per
link for the link's own prefix, and the LAN prefix on wan1 (ISP 1 delegated it, and routes it
back).  The server's IPv6 address is in the router's config (option address6): LAN IPv6 is
proxied.  With `tunnel6`, the router reaches the server by its IPv6 address: the bonded
connections (MPTCP subflows) then run over the links' IPv6.

The full path (the default, `proxy=True`): the LAN host's ordinary TCP and UDP reach the router,
whose bondingd runs the data plane (nftables tproxy on lan0 and the proxy: sing-box by default,
or ss-redir under mptcpize), over all links as MPTCP subflows to the server, set up with
`bonding-server` exactly as on a VPS (init --no-systemd --proxy, add-client, run) with the same
proxy, which speaks to the target with its own address.  The lab's
bypass list leaves out the documentation ranges of the server and the target, so its
"internet" is proxied.  With `servers=2` a second aggregation server is set up the same way and
bondingd gets both (sections 'lab' and 'lab2', the first preferred): server failover.

Each ISP namespace shapes its link with tbf in both directions (egress of `cpe` towards the
router = download, egress of `up` towards the internet = upload) and delays it with the TUN stage
of bonding.lab.delay (one-way delay D each way, so the link adds 2·D of RTT).  Faults (blackhole,
random loss) are nftables rules in the ISP's forward chain, matched on the first pass only so a
packet that goes round the delay stage is not judged twice.

Only addresses of documentation and shared ranges are used, only inside namespaces the lab
creates; the host's own interfaces, routes and rules are never touched.  `down()` kills every
process in the lab's namespaces and deletes them, whatever state they are in.

Where each part lives: bonding.lab.model (addresses, LinkSpec, LabState, LabError),
bonding.lab.commands (run, nsx, nft, killing a namespace's processes), bonding.lab.build (the
topology and `down()`), bonding.lab.routerconf (bondingd's config), bonding.lab.processes
(ubusd, bondingd, bonding-server), bonding.lab.faults, bonding.lab.observe (status, counters,
describe).  `Lab` here puts them together; the names its callers use are importable from
here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from bonding.lab.build import Build
from bonding.lab.commands import nsx, run
from bonding.lab.faults import Faults
from bonding.lab.model import (
    LAN_HOST6,
    PROXY_BACKEND,
    PROXY_TOOLS,
    SERVER2_ADDR,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    TARGET_ADDR6,
    WIRED_PATH,
    LabError,
    LabState,
    Link,
    LinkSpec,
    find_ubusd,
    missing_proxy_tools,
    parse_links,
)
from bonding.lab.observe import Observe
from bonding.lab.owrt.lab import OwrtRouter, owrt_prefix
from bonding.lab.processes import Processes
from bonding.lab.routerconf import RouterConfig

# What the lab's callers (bonding.lab.cli, demo, traffic, bench, tests) take from here.
__all__ = [
    "LAN_HOST6", "PROXY_BACKEND", "PROXY_TOOLS", "SERVER2_ADDR", "SERVER_ADDR", "SERVER_ADDR6",
    "TARGET_ADDR", "TARGET_ADDR6", "Lab", "LabError", "LabState", "Link", "LinkSpec",
    "find_ubusd", "missing_proxy_tools", "nsx", "parse_links", "run",
]


class Lab(Build, RouterConfig, Processes, Faults, Observe, OwrtRouter):
    """Build, describe, drive and remove one lab instance (namespaces named `<prefix>-…`)."""

    def up(self, links: Sequence[LinkSpec], *, daemon: bool = True, config_extra: str = "",
           proxy: bool = True, options: Mapping[str, str] | None = None,
           path_options: Mapping[str, str] | None = None,
           backend: str = PROXY_BACKEND, servers: int = 1,
           tunnel6: bool = False, openwrt: bool = False,
           owrt: str | None = None, manager: str = "opkg") -> LabState:
        """Build the lab; with `proxy`, the full path (data plane and bonding-server, both
        running `backend`).

        `options`: more options of bondingd's globals section (e.g. congestion_control);
        `path_options`: the options every path section gets beyond its device, gateway and
        rates (default WIRED_PATH; {} for none);
        `servers`: 1 or 2 aggregation servers; `tunnel6`: the router's proxy reaches the
        (first) server by its IPv6 address; `openwrt`: the router is an OpenWrt router
        (bonding.lab.owrt.lab) of the userland in `owrt` (default $OWRT_PREFIX, /opt/owrt),
        our packages installed by `manager` (opkg: OpenWrt 24.10; apk: 25.12)."""
        if servers not in (1, 2):
            raise LabError(f"{servers} servers: the lab builds 1 or 2")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, nftables, tc)")
        if proxy:
            missing = missing_proxy_tools(backend)
            if missing:
                raise LabError(f"the full path with {backend} needs " + ", ".join(missing)
                               + "; or build the lab without it (--no-proxy)")
        prefix = owrt_prefix(owrt, manager) if openwrt else None
        if openwrt and (tunnel6 or not daemon or config_extra):
            raise LabError("the OpenWrt router runs bondingd under procd, IPv4 only: no "
                           "--tunnel6, --no-daemon or extra config with --openwrt")
        if self.existing_namespaces():
            raise LabError(f"lab '{self.prefix}' is already up: run `bonding-lab down "
                           f"--prefix {self.prefix}` first")
        try:
            self._build(links, servers, openwrt=openwrt)
            assert self.state is not None
            self.state.package_manager = manager
            self.state.backend = backend
            self.state.tunnel6 = tunnel6
            clients = ([self._setup_server(r) for r in self.server_roles()] if proxy else None)
            paths = WIRED_PATH if path_options is None else path_options
            if prefix is not None:
                self._owrt_router(prefix, clients, options or {}, paths)
                return self.state
            self._write_config(config_extra, clients, options or {}, paths)
            self.start_ubusd()
            if daemon:
                self.start_daemon()
        except BaseException:
            self.down()
            raise
        assert self.state is not None
        return self.state
