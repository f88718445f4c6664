"""The UCI config texts the router tests (tests/owrt) and the package sandboxes (tests/package)
share, from the lab's OpenWrt router (bonding.lab.owrt.netconf): netifd's loopback interface;
fw4's defaults, lan zone, a wan zone over given networks, the lan -> wan forwarding and the
Allow-DHCP-Renew and Allow-Ping rules.  Both test packages import it as `uciconf` (pytest puts
tests/ on sys.path for them)."""

from bonding.lab.owrt.netconf import (
    ALLOW_DHCP_RENEW,
    ALLOW_PING,
    DEFAULTS,
    LAN_TO_WAN,
    LAN_ZONE,
    LOOPBACK,
    wan_zone,
)

__all__ = ["ALLOW_DHCP_RENEW", "ALLOW_PING", "DEFAULTS", "LAN_TO_WAN", "LAN_ZONE", "LOOPBACK",
           "wan_zone"]
