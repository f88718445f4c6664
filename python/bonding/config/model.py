"""The typed config: frozen dataclasses, one per UCI section type, and the value domains."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from bonding.config import realtime as realtime_cfg
from bonding.config.rules import Rule
from bonding.config.values import is_ipv4, is_ipv6

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error")
# 'auto': sing-box when it is installed (bondingd looks again while it is not; xray, which no
# test of this project runs, only when named); 'none': no data plane, bond the router's own
# traffic only.
PROXIES: Final = ("auto", "none", "shadowsocks-libev", "xray", "sing-box")
FAILBACK: Final = ("return", "stay")
# Destinations that never go through the proxy unless `list bypass` replaces this list: the
# local, private and reserved ranges of RFC 6890 (IPv4).
DEFAULT_BYPASS: Final = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)
# The same for IPv6 (`list bypass6` replaces it): unspecified and loopback, IPv4-mapped, the
# NAT64 prefixes (translated by the local ISP: the server cannot reach them), discard-only,
# benchmarking, documentation (RFC 3849, RFC 9637), SRv6 SIDs, unique local, link-local and
# multicast (RFC 6890 and its updates).
DEFAULT_BYPASS6: Final = (
    "::/127", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:2::/48",
    "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)

MAX_PATHS: Final = 32


@dataclass(frozen=True)
class Globals:
    """Section `config globals 'globals'`: one per file, every option optional."""

    enabled: bool = True
    log_level: str = "info"
    proxy: str = "auto"
    proxy_user: str = "bonding"  # the proxy runs as this user (bonding.dataplane.privdrop)
    # Probing: a round every probe_interval_ms; a round is good when any target answers, so it
    # asks the next target only while none has (bonding.probe).  The reply timeout adapts to the
    # path's RTT within these bounds.
    probe_interval_ms: int = 150
    # A role-backup path standing by is probed this rarely (bonding.core.cadence).
    standby_probe_interval_ms: int = 60000
    probe_timeout_min_ms: int = 250
    probe_timeout_ms: int = 1000
    down_count: int = 3  # down after this many failed rounds ...
    down_window: int = 5  # ... among the last this many
    up_count: int = 5  # up again after this many good rounds in a row
    # Degraded (the path becomes backup): loss at or above degraded_loss_pct over the last
    # loss_window rounds, or a smoothed RTT above both degraded_rtt_factor × the best path's and
    # the best path's + degraded_rtt_ms.
    degraded_loss_pct: int = 20
    degraded_rtt_factor: float = 3.0
    degraded_rtt_ms: int = 150
    loss_window: int = 20
    probe_targets: tuple[str, ...] = ()
    mptcp_subflows: int = 8
    mptcp_add_addr_accepted: int = 0
    route_table: int = 200  # the default route and the server routes
    path_table_base: int = 210  # path i (in file order) gets table path_table_base + i
    rule_priority: int = 1000  # our ip rules occupy rule_priority .. rule_priority + 100
    manage_default_route: bool = True
    # Data plane: routed TCP/UDP arriving on lan_devices goes to the local proxy by tproxy.
    lan_devices: tuple[str, ...] = ("br-lan",)
    tproxy_port: int = 1100
    tproxy_mark: int = 0xB0  # packets to the proxy carry mark & tproxy_mask == tproxy_mark
    tproxy_mask: int = 0xB0
    tproxy_table: int = 199  # holds 'local default dev lo'
    bypass: tuple[str, ...] = DEFAULT_BYPASS
    bypass6: tuple[str, ...] = DEFAULT_BYPASS6
    proxy_udp: bool = True
    # IPv6: the paths' IPv6 addresses are bonded too (endpoints, probes, policy routing), and
    # LAN IPv6 is proxied when the server has an IPv6 address.  0: IPv6 is left alone.
    ipv6: bool = True
    # TCP congestion control of the bonded subflows, set as 'congctl' on our routes ("": the
    # system's default).  bbr keeps a lossy link (4G, Wi-Fi) busy where cubic backs off.
    congestion_control: str = "bbr"
    # Server failover: every enabled server is probed through the live paths (a TCP connect to
    # its port) every server_probe_interval_ms; the active one is declared down after
    # server_down_count failed rounds in a row (a round fails when no path got an answer) and
    # new connections go to the next server by priority.  A server that stopped answering is
    # up again after server_up_count good rounds in a row.  server_failback: 'return' goes back
    # to a preferred server once it has answered for server_hold_s (connections through the
    # proxy are restarted then), 'stay' keeps the server in use until it fails.
    server_probe_interval_ms: int = 500
    server_down_count: int = 3
    server_up_count: int = 3
    server_failback: str = "return"
    server_hold_s: int = 60
    # Pinning (`config rule` with dest_domain): dnsmasq's nftset lines go to this file, which
    # dnsmasq reads from its conf-dir (bonding.dataplane.domains); "" writes none.
    dnsmasq_nftset: str = "/tmp/dnsmasq.d/bonding-rules.conf"
    # Realtime UDP (bonding.config.realtime): natively through the live path with the lowest
    # RTT (bonding.dataplane.realtime); shaping: each path's egress (and ingress, by ifb) just
    # below its declared rate, realtime first (bonding.dataplane.shaping).
    realtime: bool = False
    realtime_dscp: tuple[str, ...] = realtime_cfg.DEFAULT_DSCP
    realtime_ports: tuple[str, ...] = realtime_cfg.DEFAULT_PORTS
    realtime_devices: tuple[str, ...] = ()
    shaping: bool = False
    shaping_pct: int = 95  # of each path's upload_kbit / download_kbit
    # ISPs that block MPTCP (bonding.core.mptcpblock): an MPTCP connection to the server through
    # each path every mptcp_check_interval_s (0: none) tells stripped options; a connection
    # that lives mptcp_join_timeout_s (0: not judged) with no subflow over a path tells dropped
    # MP_JOINs, and such a block is lifted to try again after mptcp_retest_s.  A blocked path
    # gets no endpoint and no first subflow; mptcp_blocked_native keeps it for what needs no
    # MPTCP (pinned rules, the router's own traffic), 0 takes it out like a dead path.
    mptcp_check_interval_s: int = 60
    mptcp_join_timeout_s: int = 20
    mptcp_retest_s: int = 600
    mptcp_blocked_native: bool = True


@dataclass(frozen=True)
class Server:
    """Section `config server 'NAME'`: an aggregation server.  Credentials live elsewhere."""

    name: str
    address: str
    port: int = 65101
    protocol: str = "shadowsocks"
    cipher: str = "chacha20-ietf-poly1305"
    enabled: bool = True
    priority: int = 10  # lower is preferred; equal priorities in file order
    # The server takes UDP inside the bonded TCP connection (sing-box's UDP over TCP v2:
    # bonding-server with sing-box does): UDP flows then survive the death of a link.
    udp_over_tcp: bool = False
    address6: str | None = None  # its IPv6 address: it can then proxy the LAN's IPv6

    def addresses6(self) -> tuple[str, ...]:
        """Its IPv6 addresses: option address6, and option address when that is IPv6."""
        own = (self.address,) if is_ipv6(self.address) else ()
        extra = (self.address6,) if self.address6 and self.address6 not in own else ()
        return own + extra


@dataclass(frozen=True)
class PathConfig:
    """Section `config path 'NAME'`: one internet link."""

    name: str
    interface: str | None = None  # netifd logical interface (OpenWrt)
    device: str | None = None  # kernel device, where there is no netifd (the lab, Debian)
    gateway: str | None = None  # next hop; otherwise learnt from netifd or the main table
    gateway6: str | None = None  # IPv6 next hop; otherwise learnt from the main table
    enabled: bool = True
    backup: bool = False  # forced backup: carries traffic only when no other path is up
    # 'bond' (default) or 'backup': no endpoint and slow probing while a bond path is up
    # (bonding.core.roles, bonding.core.cadence)
    role: str = "bond"
    download_kbit: int | None = None
    upload_kbit: int | None = None
    probe_targets: tuple[str, ...] = ()  # replaces the global targets (per family) when set
    # Congestion control of the subflows that join over this link (None: the global one);
    # e.g. cubic on a clean wired link, bbr on a radio link that loses packets.
    congestion_control: str | None = None


@dataclass(frozen=True)
class Usb:
    """Section `config usb 'usb'`: USB netdevs and modems (hotplug)."""

    auto_dhcp: bool = True
    modem_mbim: bool = True
    metric_base: int = 40
    apn: str | None = None  # for modems brought up by MBIM/QMI (DHCP netdevs need none)


@dataclass(frozen=True)
class Config:
    globals: Globals = field(default_factory=Globals)
    servers: tuple[Server, ...] = ()
    paths: tuple[PathConfig, ...] = ()
    usb: Usb = field(default_factory=Usb)
    rules: tuple[Rule, ...] = ()  # `config rule` sections, in file order (bonding.config.rules)

    def path(self, name: str) -> PathConfig | None:
        return next((p for p in self.paths if p.name == name), None)

    def targets_for(self, path: PathConfig, family: int = 4) -> tuple[str, ...]:
        """Probe targets of a path in one address family (4 or 6): its own list, else the
        global list, else the servers (each of that family)."""
        v6 = family == 6
        for targets in (path.probe_targets, self.globals.probe_targets):
            mine = tuple(t for t in targets if is_ipv6(t) == v6)
            if mine:
                return mine
        return self.server_addresses6() if v6 else self.server_addresses()

    def ordered_servers(self) -> tuple[Server, ...]:
        """The enabled servers, preferred first: by priority, then in file order."""
        return tuple(sorted((s for s in self.servers if s.enabled), key=lambda s: s.priority))

    def server(self, name: str) -> Server | None:
        return next((s for s in self.servers if s.name == name), None)

    def server_addresses(self) -> tuple[str, ...]:
        """The enabled servers given as IPv4 addresses (routes and default probe targets)."""
        return tuple(s.address for s in self.servers if s.enabled and is_ipv4(s.address))

    def server_addresses6(self) -> tuple[str, ...]:
        """The enabled servers' IPv6 addresses (routes and default IPv6 probe targets)."""
        out: list[str] = []
        for s in self.servers:
            if s.enabled:
                out += [a for a in s.addresses6() if a not in out]
        return tuple(out)

