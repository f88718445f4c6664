"""The UCI config texts the router tests (tests/owrt) and the package sandboxes (tests/package)
share: netifd's loopback interface; fw4's defaults, lan zone, a wan zone over given networks
and the Allow-Ping rule.  Both test packages import it as `uciconf` (pytest puts tests/ on
sys.path for them)."""

from __future__ import annotations

from collections.abc import Iterable

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
