"""The parts of /etc/config/firewall (fw4) the router tests (tests/owrt) and the package
sandboxes (tests/package) write: OpenWrt's defaults, its lan zone and a wan zone over given
networks.  Both test packages import it as `fw4conf` (pytest puts tests/ on sys.path for
them)."""

from __future__ import annotations

from collections.abc import Iterable

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
