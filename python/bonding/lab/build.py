"""Building the lab's topology (namespaces, veths, addresses, routes, shaping, delay) and
tearing it down.  The picture and the addressing plan: bonding.lab.topology."""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from bonding.lab.base import LabBase
from bonding.lab.commands import kill_netns, nft, nsx, run
from bonding.lab.delay import setup_delay, start_delay
from bonding.lab.model import (
    DELAY_TABLE,
    INET_SERVER2_SIDE,
    INET_SERVER_SIDE,
    INET_SERVER_SIDE6,
    INET_TARGET_SIDE6,
    LAN_HOST,
    LAN_HOST6,
    LAN_NET6,
    LAN_ROUTER,
    LAN_ROUTER6,
    QUEUE_MS,
    SERVER2_ADDR,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    TARGET_ADDR6,
    LabError,
    LabState,
    Link,
    LinkSpec,
)
from bonding.lab.owrt.lab import kill_root


def tbf_args(rate_mbit: float) -> list[str]:
    """A shaper sized like a real link's: burst of ~1 ms (≥ 4 frames), 50 ms of queue."""
    rate_bps = rate_mbit * 1e6
    burst = max(int(rate_bps / 8 * 0.001), 4 * 1514)
    limit = int(rate_bps / 8 * QUEUE_MS / 1000) + burst
    return ["tbf", "rate", f"{rate_mbit:g}mbit", "burst", str(burst), "limit", str(limit)]


def plan_state(prefix: str, specs: Sequence[LinkSpec], servers: int, state_dir: Path) -> LabState:
    """The state of a lab about to be built: its namespaces, links and addresses."""
    roles = ["lan", "router", "inet", "server", "target"]
    roles += ["server2"] if servers == 2 else []
    roles += [f"isp{i}" for i in range(1, len(specs) + 1)]
    namespaces = {r: f"{prefix}-{r}" for r in roles}
    links = [
        Link(name=f"wan{i}", index=i, rate_mbit=s.rate_mbit, delay_ms=s.delay_ms,
             isp_ns=namespaces[f"isp{i}"], router_dev=f"wan{i}",
             router_addr=f"100.64.{i}.2", isp_dev="cpe", isp_addr=f"100.64.{i}.1",
             isp_up_dev="net", inet_dev=f"isp{i}", router_addr6=f"2001:db8:64:{i}::2",
             isp_addr6=f"2001:db8:64:{i}::1")
        for i, s in enumerate(specs, 1)
    ]
    sd = state_dir
    state = LabState(
        prefix=prefix, links=links, namespaces=namespaces,
        addresses={"lan": [LAN_HOST, LAN_HOST6],
                   "router": [LAN_ROUTER, LAN_ROUTER6]
                   + [a for x in links for a in (x.router_addr, x.router_addr6)],
                   "server": [SERVER_ADDR, SERVER_ADDR6],
                   "target": [TARGET_ADDR, TARGET_ADDR6],
                   "inet": [INET_SERVER_SIDE, "198.51.100.1", INET_SERVER_SIDE6,
                            INET_TARGET_SIDE6]},
        state_dir=str(sd), config_dir=str(sd / "etc"), run_dir=str(sd / "run"),
        daemon_log=str(sd / "bondingd.log"), servers=servers)
    if servers == 2:
        state.addresses["server2"] = [SERVER2_ADDR]
        state.addresses["inet"].append(INET_SERVER2_SIDE)
    return state


def fault_chain_script(link: Link) -> str:
    """The ISP's nftables table: its forwarded packets go through the (empty) fault chain."""
    return ("add table inet lab\n"
            "add chain inet lab transit { type filter hook forward priority 0; }\n"
            "add chain inet lab fault\n"
            f"add rule inet lab transit iifname {{ \"{link.isp_dev}\", "
            f"\"{link.isp_up_dev}\" }} jump fault\n")


class Build(LabBase):
    """The topology's namespaces and wiring, and `down()`."""

    def _build(self, specs: Sequence[LinkSpec], servers: int = 1, *,
               openwrt: bool = False) -> None:
        """The namespaces and their wiring; with `openwrt`, the router's side of its links has
        no address nor route (netifd in the router sets them: bonding.lab.owrt.lab)."""
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        self.state = plan_state(self.prefix, specs, servers, self.state_dir)
        self.state.openwrt = openwrt
        n = self.state.namespaces
        for ns in n.values():
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        self.save()
        self._wire_hosts(n, servers)
        for link in self.state.links:
            self._wire_link(n, link)
            self._shape_link(link)
        # The servers accept many subflows per connection.
        for role in self.server_roles():
            run(["ip", "-n", n[role], "mptcp", "limits", "set", "subflows", "8",
                 "add_addr_accepted", "8"])
        self.save()

    def _wire_hosts(self, n: Mapping[str, str], servers: int) -> None:
        """The LAN host, the servers and the target, each on its own veth."""
        # Offloads stay on where nothing is emulated (LAN, server, target: real NICs have
        # them); they are off on the links that are shaped, delayed and made lossy.
        for ns in n.values():  # before the links: no router advertisement is taken
            run(nsx(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_ra=0",
                    "net.ipv6.conf.default.accept_ra=0"))
        for ns in (n["router"], n["inet"]):
            run(nsx(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1"))
        self._veth(n["lan"], "eth0", n["router"], "lan0", offload=True)
        self._addr(n["lan"], "eth0", f"{LAN_HOST}/24", f"{LAN_HOST6}/64")
        if not self.state or not self.state.openwrt:
            self._addr(n["router"], "lan0", f"{LAN_ROUTER}/24", f"{LAN_ROUTER6}/64")
        self._default(n["lan"], LAN_ROUTER, LAN_ROUTER6)
        self._veth(n["inet"], "srv", n["server"], "eth0", offload=True)
        self._addr(n["inet"], "srv", f"{INET_SERVER_SIDE}/24", f"{INET_SERVER_SIDE6}/64")
        self._addr(n["server"], "eth0", f"{SERVER_ADDR}/24", f"{SERVER_ADDR6}/64")
        self._default(n["server"], INET_SERVER_SIDE, INET_SERVER_SIDE6)
        if servers == 2:  # IPv4 only: LAN IPv6 is routed natively while it is the one in use
            self._veth(n["inet"], "srv2", n["server2"], "eth0", offload=True)
            self._addr(n["inet"], "srv2", f"{INET_SERVER2_SIDE}/28")
            self._addr(n["server2"], "eth0", f"{SERVER2_ADDR}/28")
            run(["ip", "-n", n["server2"], "route", "add", "default", "via", INET_SERVER2_SIDE])
        self._veth(n["inet"], "tgt", n["target"], "eth0", offload=True)
        self._addr(n["inet"], "tgt", "198.51.100.1/24", f"{INET_TARGET_SIDE6}/64")
        self._addr(n["target"], "eth0", f"{TARGET_ADDR}/24", f"{TARGET_ADDR6}/64")
        self._default(n["target"], "198.51.100.1", INET_TARGET_SIDE6)

    def _wire_link(self, n: Mapping[str, str], link: Link) -> None:
        """Router ── ISP ── internet for one link: veths, addresses, routes."""
        isp = link.isp_ns
        i = link.index
        self._veth(n["router"], link.router_dev, isp, link.isp_dev)
        # Faults.carrier takes the ISP's end down and up: its IPv6 address must outlive that,
        # as IPv4's does (the kernel drops IPv6 addresses of a device set down by default)
        run(nsx(isp, "sysctl", "-q", "-w", f"net.ipv6.conf.{link.isp_dev}.keep_addr_on_down=1"))
        plain = not self.state or not self.state.openwrt  # else netifd addresses the router
        if plain:
            self._addr(n["router"], link.router_dev, f"{link.router_addr}/24",
                       f"{link.router_addr6}/64")
        self._addr(isp, link.isp_dev, f"{link.isp_addr}/24", f"{link.isp_addr6}/64")
        self._veth(isp, link.isp_up_dev, n["inet"], link.inet_dev)
        self._addr(isp, link.isp_up_dev, f"100.65.{i}.2/24", f"2001:db8:65:{i}::2/64")
        self._addr(n["inet"], link.inet_dev, f"100.65.{i}.1/24", f"2001:db8:65:{i}::1/64")
        self._default(isp, f"100.65.{i}.1", f"2001:db8:65:{i}::1")
        run(["ip", "-n", n["inet"], "route", "add", f"100.64.{i}.0/24",
             "via", f"100.65.{i}.2"])
        run(["ip", "-n", n["inet"], "-6", "route", "add", f"2001:db8:64:{i}::/64",
             "via", f"2001:db8:65:{i}::2"])
        if not plain:
            return
        # What netifd makes of the ISP's router advertisement: a default route for the
        # link's own prefix (the router learns its IPv6 gateway from it)
        run(["ip", "-n", n["router"], "-6", "route", "add", "default", "from",
             f"2001:db8:64:{i}::/64", "via", link.isp_addr6, "dev", link.router_dev])
        if i == 1:  # ISP 1 delegated the LAN prefix: natively routed LAN IPv6 goes there
            run(["ip", "-n", n["router"], "-6", "route", "add", "default", "from",
                 LAN_NET6, "via", link.isp_addr6, "dev", link.router_dev])
            run(["ip", "-n", isp, "-6", "route", "add", LAN_NET6, "via",
                 link.router_addr6])
            run(["ip", "-n", n["inet"], "-6", "route", "add", LAN_NET6, "via",
                 f"2001:db8:65:{i}::2"])

    def _shape_link(self, link: Link) -> None:
        """The ISP's shaper (tbf both ways), its fault chain, and its delay stage."""
        isp = link.isp_ns
        for dev in (link.isp_dev, link.isp_up_dev):
            run(["tc", "-n", isp, "qdisc", "replace", "dev", dev, "root",
                 *tbf_args(link.rate_mbit)])
        nft(isp, fault_chain_script(link))
        setup_delay(isp, "dly", [link.isp_dev, link.isp_up_dev], DELAY_TABLE)
        log = open(self.state_dir / f"delay-{link.name}.log", "ab")  # noqa: SIM115
        try:
            proc = start_delay(isp, "dly", link.delay_ms, stderr=log)
        finally:
            log.close()
        assert self.state is not None
        self.state.pids[f"delay-{link.name}"] = proc.pid

    @staticmethod
    def _veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str, *, offload: bool = False) -> None:
        run(["ip", "-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b,
             "netns", ns_b])
        # Off: tbf and the loss rules see real 1514-byte frames.  On: like a real NIC (a veth
        # has TSO and GSO but no GRO by default).
        state = "on" if offload else "off"
        for ns, dev in ((ns_a, dev_a), (ns_b, dev_b)):
            run(nsx(ns, "ethtool", "-K", dev, "tso", state, "gso", state, "gro", state),
                check=False)
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    @staticmethod
    def _addr(ns: str, dev: str, *cidrs: str) -> None:
        """Addresses on a device; IPv6 ones usable at once (nodad: no DAD wait)."""
        for cidr in cidrs:
            extra = ["nodad"] if ":" in cidr else []
            run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev, *extra])

    @staticmethod
    def _default(ns: str, gateway: str, gateway6: str) -> None:
        run(["ip", "-n", ns, "route", "add", "default", "via", gateway])
        run(["ip", "-n", ns, "-6", "route", "add", "default", "via", gateway6])

    def down(self, *, purge: bool = False) -> list[str]:
        """Kill everything in the lab's namespaces and delete them; returns what was removed.
        The state directory (logs, configs) stays for a look afterwards, unless `purge`."""
        removed = []
        st = self.state
        if st is None and self.state_file.exists():
            with contextlib.suppress(LabError, ValueError, TypeError):
                st = self.load()
        kill_root(st)
        for ns in self.existing_namespaces():
            kill_netns(ns, (signal.SIGTERM, signal.SIGKILL), 2.0)
            run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
        if self.state_file.exists():
            self.state_file.unlink()
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state = None
        return removed
