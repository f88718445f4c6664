"""The lab's data: its addresses, a link's spec, the state of one lab instance, its error.

No I/O here but `missing_proxy_tools` and `find_ubusd` (they look for programs); the
topology these addresses make is drawn in bonding.lab.topology.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bonding import config
from bonding.lab.delay import tool_path

SERVER_ADDR = "203.0.113.10"
SERVER2_ADDR = "203.0.113.20"
INET_SERVER2_SIDE = "203.0.113.17"  # 203.0.113.16/28, inside the first server's /24
TARGET_ADDR = "198.51.100.10"
INET_SERVER_SIDE = "203.0.113.1"
LAN_ROUTER = "192.0.2.1"
LAN_HOST = "192.0.2.10"
SERVER_ADDR6 = "2001:db8:203::10"
TARGET_ADDR6 = "2001:db8:198::10"
INET_SERVER_SIDE6 = "2001:db8:203::1"
INET_TARGET_SIDE6 = "2001:db8:198::1"
LAN_NET6 = "2001:db8:192::/64"
LAN_ROUTER6 = "2001:db8:192::1"
LAN_HOST6 = "2001:db8:192::10"
LINK_NETS6 = "2001:db8:64::/47"  # 2001:db8:64:i::/64 and 2001:db8:65:i::/64
IPERF_PORT = 5201
MAX_LINKS = 8
QUEUE_MS = 50  # tbf queue: 50 ms of the link's rate, like a typical ISP shaper
DELAY_TABLE = 10
LAN_DEVICE = "lan0"
CLIENT_NAME = "lab"
PROXY_BACKEND = "sing-box"  # on both ends; "shadowsocks-libev" is the fallback
# The lab's links are clean wired links, so each path is set up as the shipped config sets up
# its wired 'wan' path: cubic for the subflows over it (the global default, bbr, stays on the
# first subflow and on radio links).  With bbr on every subflow, one bonded flow over these
# links stalled at 10-50% of their capacity for seconds in 2 of 40 transfers (cubic: 0 of 40).
WIRED_PATH: Mapping[str, str] = {"congestion_control": "cubic"}
# The built-in bypass list without the ranges the lab's internet lives in.
LAB_BYPASS = tuple(n for n in config.DEFAULT_BYPASS
                   if n not in ("198.51.100.0/24", "203.0.113.0/24"))
# The same for IPv6: the documentation range is the lab's internet, but its LAN and links are
# local (as the IPv4 ones are).
LAB_BYPASS6 = (*(n for n in config.DEFAULT_BYPASS6 if n != "2001:db8::/32"), LAN_NET6,
               LINK_NETS6)
# What each proxy needs on this machine (program → how to get it).
PROXY_TOOLS = {
    "sing-box": {"sing-box": "make deps (tools/install-deps.sh puts it in .venv/bin)"},
    "shadowsocks-libev": {"ss-redir": "apt-get install shadowsocks-libev",
                          "ss-server": "apt-get install shadowsocks-libev",
                          "mptcpize": "apt-get install mptcpize"},
}


def missing_proxy_tools(backend: str) -> list[str]:
    """The programs of `backend` the lab cannot find, each with how to get it."""
    if backend not in PROXY_TOOLS:
        raise LabError(f"proxy {backend!r}: the lab runs {' or '.join(PROXY_TOOLS)}")
    return [f"{t} ({how})" for t, how in PROXY_TOOLS[backend].items()
            if shutil.which(t, path=tool_path()) is None]


class LabError(Exception):
    """The lab could not be built or driven; the message says what failed."""



@dataclass(frozen=True)
class LinkSpec:
    rate_mbit: float
    delay_ms: float = 0.0

    def __str__(self) -> str:
        return f"{self.rate_mbit:g}/{self.delay_ms:g}ms"


_LINK_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?)\s*(?:ms)?)?\s*$")


def parse_links(text: str) -> list[LinkSpec]:
    """'50/10ms,30/20ms,20' → rate in Mbit/s and one-way delay in ms per link."""
    links = []
    for i, part in enumerate(text.split(","), 1):
        m = _LINK_RE.match(part)
        if not m:
            raise LabError(f"link {i}: {part!r} is not RATE or RATE/DELAYms (e.g. 50/10ms)")
        rate, delay = float(m.group(1)), float(m.group(2) or 0)
        if not 0.1 <= rate <= 10000:
            raise LabError(f"link {i}: rate {rate:g} Mbit/s out of range 0.1–10000")
        if delay > 2000:
            raise LabError(f"link {i}: delay {delay:g} ms out of range 0–2000")
        links.append(LinkSpec(rate, delay))
    if not 1 <= len(links) <= MAX_LINKS:
        raise LabError(f"{len(links)} links: the lab builds 1–{MAX_LINKS}")
    return links


@dataclass
class Link:
    name: str  # wan1 ...
    index: int  # 1-based
    rate_mbit: float
    delay_ms: float
    isp_ns: str
    router_dev: str  # in the router namespace
    router_addr: str
    isp_dev: str  # the ISP's side facing the router
    isp_addr: str  # the router's gateway
    isp_up_dev: str  # the ISP's side facing the internet
    inet_dev: str  # the internet's side facing the ISP
    router_addr6: str = ""
    isp_addr6: str = ""  # the router's IPv6 gateway


@dataclass
class LabState:
    prefix: str
    links: list[Link]
    namespaces: dict[str, str]  # role → namespace name
    addresses: dict[str, list[str]]  # role → addresses
    state_dir: str
    config_dir: str
    run_dir: str
    daemon_log: str
    daemon_pid: int | None = None
    pids: dict[str, int] = field(default_factory=dict)  # long-running helpers
    ubus_socket: str | None = None  # the router's ubusd, when the OpenWrt userland is found
    proxy: bool = False  # the full path: data plane on the router, bonding-server on the server
    backend: str = PROXY_BACKEND  # the proxy on both ends
    server_state_dir: str | None = None
    client_port: int | None = None
    servers: int = 1  # aggregation servers: 'server', then 'server2'
    client_ports: dict[str, int] = field(default_factory=dict)  # server role → client port
    tunnel6: bool = False  # the router reaches the server by its IPv6 address
    openwrt: bool = False  # the router is an OpenWrt root (bonding.lab.owrt.lab)
    package_manager: str = "opkg"  # which installed our packages there: opkg or apk


def find_ubusd() -> Path | None:
    """ubusd from ``$BONDING_UBUSD`` or ``$OWRT_PREFIX/{sbin,bin}``; None when absent."""
    explicit = os.environ.get("BONDING_UBUSD")
    if explicit:
        return Path(explicit) if os.access(explicit, os.X_OK) else None
    prefix = os.environ.get("OWRT_PREFIX")
    if not prefix:
        return None
    for sub in ("sbin", "bin"):
        cand = Path(prefix, sub, "ubusd")
        if os.access(cand, os.X_OK):
            return cand
    return None

