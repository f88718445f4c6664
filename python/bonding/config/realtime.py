"""Realtime traffic (voice, video calls, games): which LAN datagrams are realtime, as UCI says.

    config globals 'globals'
        option realtime '1'                 # classify and steer realtime UDP (default 0)
        list realtime_dscp 'ef'             # DSCP classes (default: ef cs4 cs5 af41 af42 af43)
        list realtime_port '5060-5061'      # UDP port or range, either end (default: below)
        list realtime_device 'aa:bb:cc:dd:ee:ff'  # a LAN device (MAC or IPv4): all its UDP

Realtime is UDP only: a datagram that waits behind bulk data or a lost segment is worse than
one lost, and TCP (SIP over TCP/TLS included) is bonded, which survives a link's death.

Default ports, and why (a datagram to or from one of them is realtime):
- 5060-5061: SIP (signalling; UDP is the phones' default);
- 3478-3481: STUN/TURN: WebRTC (browsers' calls), Microsoft Teams (3478-3481), Zoom, FaceTime,
  WhatsApp and PlayStation Network all use 3478 for their media or NAT traversal;
- 8801-8810: Zoom's media;
- 19302-19309: Google Meet's and Duo's media;
- 10000-20000: RTP of Asterisk and FreeSWITCH-based PBXes and most SIP providers;
- 16384-32767: RTP of phones and routers (Cisco, Fritz!Box, Apple's FaceTime);
- 3074: Xbox Live and Call of Duty; 27015-27030: Steam / Source game servers.

The RTP ranges are wide: bulk UDP to a port in them (rare: clients send from ephemeral ports
32768-65535 to well-known ones) would be realtime too.  The shaper's realtime class is capped
(bonding.dataplane.shaping) so it cannot starve the bond.
"""

from __future__ import annotations

import re
from typing import Final

from bonding.config.values import ipv4_net, port_or_range

# DSCP names nft knows, with their code points (RFC 4594: EF telephony, CS4 realtime
# interactive, CS5 signalling/broadcast video, AF4x multimedia conferencing).
DSCP: Final = {"ef": 46, "cs4": 32, "cs5": 40, "af41": 34, "af42": 36, "af43": 38,
               "cs3": 24, "cs6": 48, "af31": 26, "af32": 28, "af33": 30, "va": 44}
DEFAULT_DSCP: Final = ("ef", "cs4", "cs5", "af41", "af42", "af43")
DEFAULT_PORTS: Final = ("5060-5061", "3478-3481", "8801-8810", "19302-19309", "10000-20000",
                        "16384-32767", "3074", "27015-27030")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def dscp(raw: str) -> str:
    """A DSCP class by name (ef, cs4, af41…) or number 0–63, as nft writes it."""
    v = raw.strip().lower()
    if v in DSCP:
        return v
    if v.isdigit() and 0 <= int(v) <= 63:
        return str(int(v))
    raise ValueError("not a DSCP class: write one of " + ", ".join(DSCP) + " or 0–63")


port = port_or_range("a UDP port", "5060 or 10000-20000")  # a UDP port or range low-high


def device(raw: str) -> str:
    """A LAN device: its MAC address (aa:bb:cc:dd:ee:ff) or IPv4 address / prefix."""
    v = raw.strip().lower().replace("-", ":")
    if _MAC_RE.fullmatch(v):
        return v
    if ":" in v:
        raise ValueError("not a MAC or IPv4 address: write aa:bb:cc:dd:ee:ff or 192.168.1.20 "
                         "(realtime steering is IPv4: IPv6 is not NATed through one WAN)")
    try:
        return ipv4_net(v)
    except ValueError:
        raise ValueError("not a MAC or IPv4 address: write aa:bb:cc:dd:ee:ff or "
                         "192.168.1.20") from None


def is_mac(value: str) -> bool:
    return bool(_MAC_RE.fullmatch(value))
