"""OpenWrt's network and firewall configs (UCI texts): netifd's loopback interface; fw4's
defaults, lan zone, a wan zone over given networks and the Allow-Ping rule, which the router
tests (tests/owrt) and the package sandboxes (tests/package) share too (through tests/uciconf.py);
and the lab's OpenWrt router's whole /etc/config/network and /etc/config/firewall
(`lab_network`, `lab_firewall`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

LOOPBACK = """
config interface 'loopback'
	option device 'lo'
	option proto 'static'
	option ipaddr '127.0.0.1'
	option netmask '255.0.0.0'
"""

DEFAULTS = """
config defaults
	option input 'REJECT'
	option output 'ACCEPT'
	option forward 'REJECT'
"""

LAN_ZONE = """
config zone
	option name 'lan'
	list network 'lan'
	option input 'ACCEPT'
	option output 'ACCEPT'
	option forward 'ACCEPT'
"""


def wan_zone(networks: Iterable[str], *, mtu_fix: bool = False) -> str:
    """OpenWrt's wan zone (masqueraded) over `networks`."""
    lines = ["", "config zone", "\toption name 'wan'"]
    lines += [f"\tlist network '{n}'" for n in networks]
    lines += ["\toption input 'REJECT'", "\toption output 'ACCEPT'", "\toption forward 'REJECT'",
              "\toption masq '1'"]
    if mtu_fix:
        lines.append("\toption mtu_fix '1'")
    return "\n".join(lines) + "\n"


ALLOW_PING = """
config rule
	option name 'Allow-Ping'
	option src 'wan'
	option proto 'icmp'
	option icmp_type 'echo-request'
	option family 'ipv4'
	option target 'ACCEPT'
"""

ALLOW_DHCP_RENEW = """
config rule
	option name 'Allow-DHCP-Renew'
	option src 'wan'
	option proto 'udp'
	option dest_port '68'
	option target 'ACCEPT'
	option family 'ipv4'
"""

LAN_TO_WAN = """
config forwarding
	option src 'lan'
	option dest 'wan'
"""


def _iface(name: str, options: Sequence[tuple[str, str]]) -> str:
    return "\n".join([f"\nconfig interface '{name}'",
                      *(f"\toption {k} '{v}'" for k, v in options)]) + "\n"


def lab_network(lan_device: str, lan_cidr: tuple[str, str],
                wans: Sequence[tuple[str, int, bool]]) -> str:
    """/etc/config/network: the LAN (`lan_device`, address and netmask) and each WAN (interface
    and device name, link number n, DHCP or else static 100.64.<n>.2/24 via 100.64.<n>.1), the
    n-th WAN's default route at metric 10·n."""
    out = LOOPBACK + _iface("lan", [("device", lan_device), ("proto", "static"),
                                    ("ipaddr", lan_cidr[0]), ("netmask", lan_cidr[1])])
    for name, n, dhcp in wans:
        opts = [("device", name)]
        opts += [("proto", "dhcp")] if dhcp else [
            ("proto", "static"), ("ipaddr", f"100.64.{n}.2"), ("netmask", "255.255.255.0"),
            ("gateway", f"100.64.{n}.1")]
        out += _iface(name, [*opts, ("metric", str(10 * n))])
    return out


def lab_firewall(wans: Iterable[str]) -> str:
    """/etc/config/firewall: OpenWrt's zones, lan -> wan forwarding, DHCP renew and ping."""
    return (DEFAULTS + LAN_ZONE + wan_zone(wans, mtu_fix=True) + LAN_TO_WAN + ALLOW_DHCP_RENEW
            + ALLOW_PING)
