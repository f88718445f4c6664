"""ctnetlink: forget the connection-tracking entries that carry a ct mark (standard library).

Realtime flows (bonding.dataplane.realtime) are masqueraded to the address of the path they
leave by; the NAT binding lives in their conntrack entry.  When they move to another path the
entries are deleted, so the next datagram of each flow is tracked anew and masqueraded to the
new path's address.  One IPCTNL_MSG_CT_DELETE without a tuple and with CTA_MARK/CTA_MARK_MASK
is the kernel's filtered flush (net/netfilter/nf_conntrack_netlink.c, ctnetlink_flush_conntrack).
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from bonding.netlink.core import NetlinkClient, NetlinkSocket, nla

NETLINK_NETFILTER: Final = 12
NFNL_SUBSYS_CTNETLINK: Final = 1
IPCTNL_MSG_CT_DELETE: Final = 2
CTA_MARK: Final = 8
CTA_MARK_MASK: Final = 21
_NFGEN = struct.Struct("=BBH")  # family, version, res_id (big endian)


def flush_request(mark: int, mask: int, family: int = socket.AF_INET) -> tuple[int, bytes]:
    """The message type and payload that delete every entry with ct mark & mask == mark."""
    payload = (_NFGEN.pack(family, 0, 0) + nla(CTA_MARK, struct.pack("!I", mark))
               + nla(CTA_MARK_MASK, struct.pack("!I", mask)))
    return (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, payload


class Conntrack(NetlinkClient):
    def __init__(self) -> None:
        self.nl = NetlinkSocket(NETLINK_NETFILTER)

    def flush_mark(self, mark: int, mask: int, family: int = socket.AF_INET) -> None:
        """Delete the entries with ct mark & mask == mark (NetlinkError when refused)."""
        msg_type, payload = flush_request(mark, mask, family)
        self.nl.request(msg_type, 0, payload, "conntrack flush by mark")
