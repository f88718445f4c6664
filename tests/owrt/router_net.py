"""The scratch OpenWrt root of router_root.py with its network run by OpenWrt itself (root only).

:class:`NetRouter` is a :class:`~.router_root.RouterRoot` whose links carry no address of the
test's: netifd (under procd, from /etc/init.d/network) configures them from
/etc/config/network, and fw4 is the firewall.

- wan1 and wan2 (interfaces `wan` and `wanb`) are DHCP WANs: busybox udhcpd serves each in the
  upstream namespace, 100.64.1.1 and 100.64.2.1 being the gateways;
- wan3 (interface `wanc`) is a static WAN, 100.64.3.2/24 via 100.64.3.1;
- lan1 is the LAN (interface `lan`, 192.168.1.1/24; no br-lan: the bridge netifd was asked
  for here stayed absent, "NO_DEVICE"); its peer is the host 192.168.1.2 in a LAN namespace
  ("<tag>l");
- /etc/config/firewall has OpenWrt's zones: lan (lan) and wan (wan wanb wanc) with masquerade,
  lan -> wan forwarding; the firewall service is enabled (its iface hotplug reloads fw4 on
  every ifup, as on a router).

:meth:`NetRouter.start_network` starts both services, as a router's boot does.  The udhcpd
processes run outside the root; :meth:`close` ends them.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import uciconf
from bonding.lab.owrt.dhcp import start_udhcpd
from bonding.lab.owrt.lab import NET_PARTS
from bonding.lab.topology import nsx, run

from .router_root import RouterRoot

DHCP_WANS = {"wan": 1, "wanb": 2}  # netifd interface -> its link number (wan<N>, isp<N>)
STATIC_WAN = ("wanc", 3)
WANS = (*DHCP_WANS, STATIC_WAN[0])
LAN_HOST = "192.168.1.2"
PROBE_TARGETS = ("203.0.113.10", "198.51.100.10")

# netifd's iface hotplug events, one a line: ACTION INTERFACE DEVICE
RECORD = 'echo "$ACTION $INTERFACE $DEVICE" >> /tmp/iface-events\n'

NETWORK = uciconf.LOOPBACK + """
config interface 'lan'
	option device 'lan1'
	option proto 'static'
	option ipaddr '192.168.1.1'
	option netmask '255.255.255.0'

config interface 'wan'
	option device 'wan1'
	option proto 'dhcp'

config interface 'wanb'
	option device 'wan2'
	option proto 'dhcp'
	option metric '20'

config interface 'wanc'
	option device 'wan3'
	option proto 'static'
	option ipaddr '100.64.3.2'
	option netmask '255.255.255.0'
	option gateway '100.64.3.1'
	option metric '30'
"""

FIREWALL = (uciconf.DEFAULTS + uciconf.LAN_ZONE
            + uciconf.wan_zone(["wan", "wanb", "wanc"], mtu_fix=True) + uciconf.LAN_TO_WAN
            + uciconf.ALLOW_DHCP_RENEW + uciconf.ALLOW_PING)


class NetRouter(RouterRoot):
    def __init__(self, prefix: Path, stage: Path, tag: str, parts: Iterable[str] = ()) -> None:
        super().__init__(prefix, stage, tag, (*NET_PARTS, *parts))
        self.lan_ns = f"{tag}l"
        self.udhcpd: dict[int, subprocess.Popen[bytes]] = {}

    # --- the links: no addresses of ours on the router's side ---------------------------------
    def _network(self) -> None:
        for ns in (self.ns, self.up_ns, self.lan_ns):
            if ns in run(["ip", "netns", "list"]).stdout.split():
                run(["ip", "netns", "del", ns])
            run(["ip", "netns", "add", ns])
            run(nsx(ns, "ip", "link", "set", "lo", "up"))
        for i in (1, 2, 3):
            self._veth(f"w{i}", self.ns, f"wan{i}", f"p{i}", self.up_ns, f"isp{i}")
            run(nsx(self.up_ns, "ip", "addr", "add", f"100.64.{i}.1/24", "dev", f"isp{i}"))
        for addr in ("203.0.113.10/32", "198.51.100.10/32"):
            run(nsx(self.up_ns, "ip", "addr", "add", addr, "dev", "lo"))
        self._veth("l1", self.ns, "lan1", "h1", self.lan_ns, "eth0")
        run(nsx(self.lan_ns, "ip", "addr", "add", f"{LAN_HOST}/24", "dev", "eth0"))
        run(nsx(self.lan_ns, "ip", "route", "add", "default", "via", "192.168.1.1"))
        for n in DHCP_WANS.values():
            self.start_udhcpd(n)

    def _veth(self, a: str, ns_a: str, name_a: str, b: str, ns_b: str, name_b: str) -> None:
        run(["ip", "link", "add", f"{self.tag}{a}", "netns", ns_a, "type", "veth", "peer",
             "name", f"{self.tag}{b}", "netns", ns_b])
        run(nsx(ns_a, "ip", "link", "set", f"{self.tag}{a}", "name", name_a))
        run(nsx(ns_b, "ip", "link", "set", f"{self.tag}{b}", "name", name_b))
        run(nsx(ns_b, "ip", "link", "set", name_b, "up"))

    def start_udhcpd(self, n: int) -> None:
        """busybox udhcpd serving ISP link n (again)."""
        self.stop_udhcpd(n)
        self.udhcpd[n] = start_udhcpd(self.up_ns, f"isp{n}", n, self.stage.parent)

    def stop_udhcpd(self, n: int) -> None:
        proc = self.udhcpd.pop(n, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def close(self) -> None:
        for n in list(self.udhcpd):
            with contextlib.suppress(OSError):
                self.stop_udhcpd(n)
        super().close()
        run(["ip", "netns", "del", self.lan_ns], check=False)

    # --- OpenWrt's network and firewall ---------------------------------------------------------
    def start_network(self) -> None:
        """Write network and firewall configs, enable and start both services, as at boot."""
        self.write("/etc/config/network", NETWORK)
        self.write("/etc/config/firewall", FIREWALL)
        self.write("/etc/hotplug.d/iface/99-record", RECORD, 0o755)
        self.sh("/etc/init.d/network enable; /etc/init.d/firewall enable; "
                "/etc/init.d/network start && /etc/init.d/firewall start")
        self.wait(lambda: all(self.iface(w).get("up") for w in (*WANS, "lan")), 20,
                  "netifd to bring lan and the three WANs up")

    def iface(self, name: str) -> dict[str, Any]:
        """netifd's status of one interface."""
        out = self.ubus("call", f"network.interface.{name}", "status")
        assert isinstance(out, dict), out
        return out

    def endpoints(self) -> list[str]:
        """`ip mptcp endpoint show` in the router's namespace."""
        return run(nsx(self.ns, "ip", "mptcp", "endpoint", "show")).stdout.splitlines()

    def endpoint_on(self, device: str) -> bool:
        return any(f" dev {device} " in e + " " for e in self.endpoints())
