"""The data plane: nftables tproxy of LAN traffic to a proxy that speaks MPTCP to the server."""

from bonding.dataplane.backends import BackendError, Launch
from bonding.dataplane.nft import Ruleset, proxy_mark
from bonding.dataplane.plane import DataPlane
from bonding.dataplane.supervisor import State

__all__ = ["BackendError", "DataPlane", "Launch", "Ruleset", "State", "proxy_mark"]
