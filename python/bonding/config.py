"""/etc/config/bonding → typed, frozen objects, validated once at load.

Every problem names the section, the option and the value, and says what to do.  Errors make the
whole file unusable (the daemon then keeps its last good config); warnings (an unknown option, a
device that does not exist yet) are reported and the rest is used.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bonding import uci

PACKAGE: Final = "bonding"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config, precise enough to fix it without reading code."""

    severity: Severity
    section: str
    option: str | None
    value: str | None
    message: str
    package: str = PACKAGE

    def __str__(self) -> str:
        where = f"{self.package}.{self.section}"
        if self.option is not None:
            where += f".{self.option}"
        if self.value is not None:
            where += f"={self.value!r}"
        return f"{self.severity}: {where}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` says why (at least one error among them)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --- value parsers: str → value, or ValueError with the expectation in words ------------------

_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError("not a boolean: use 1 or 0")


def _int(lo: int, hi: int, unit: str = "") -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            v = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"not a whole number{unit}: use {lo}–{hi}") from None
        if not lo <= v <= hi:
            raise ValueError(f"out of range: use {lo}–{hi}{unit}")
        return v

    return parse


def _float(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            v = float(raw.strip())
        except ValueError:
            raise ValueError(f"not a number{unit}: use {lo:g}–{hi:g}") from None
        if not lo <= v <= hi:
            raise ValueError(f"out of range: use {lo:g}–{hi:g}{unit}")
        return v

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError("not one of: " + ", ".join(allowed))
        return raw

    return parse


def _cipher(raw: str) -> str:
    if raw in ("none", "plain", "table", "dummy"):
        raise ValueError("unencrypted transport is refused: router↔server traffic must be "
                         "encrypted and authenticated; use one of: " + ", ".join(CIPHERS))
    if raw not in CIPHERS:
        raise ValueError("not one of: " + ", ".join(CIPHERS))
    return raw


def _ipv4(raw: str) -> str:
    try:
        return str(ipaddress.IPv4Address(raw.strip()))
    except ValueError:
        raise ValueError("not an IPv4 address (like 192.0.2.1)") from None


def _gateway(raw: str) -> str:
    if _is_ipv6(raw.strip()):
        raise ValueError("an IPv6 address: an IPv6 gateway goes in option gateway6")
    return _ipv4(raw)


# --- IPv6 --------------------------------------------------------------------------------------

_LINK_LOCAL6 = ipaddress.IPv6Network("fe80::/10")
_ULA6 = ipaddress.IPv6Network("fc00::/7")


def _ipv6_unicast(raw: str, v4_hint: str) -> ipaddress.IPv6Address:
    """An IPv6 unicast address, or ValueError saying why not (`v4_hint`: where IPv4 goes)."""
    v = raw.strip()
    if "%" in v:
        raise ValueError("a zone index (%…) has no place here: the path says which link")
    try:
        ip = ipaddress.ip_address(v)
    except ValueError:
        raise ValueError("not an IPv6 address (like 2001:db8::10)") from None
    if ip.version == 4:
        raise ValueError(f"an IPv4 address: {v4_hint}")
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        raise ValueError(f"an IPv4-mapped address: write {ip.ipv4_mapped} as IPv4 ({v4_hint})")
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise ValueError("not a unicast address of another host (multicast, :: or ::1)")
    return ip


def global6(raw: str, v4_hint: str) -> str:
    """An IPv6 address reachable over the internet (what servers and probe targets are)."""
    ip = _ipv6_unicast(raw, v4_hint)
    if ip in _LINK_LOCAL6:
        raise ValueError("a link-local address (fe80::/10) is not reachable beyond its link: "
                         "use a global address")
    if ip in _ULA6:
        raise ValueError("a unique local address (fc00::/7) is not reachable over the "
                         "internet: use a global address")
    return str(ip)


def _server_address6(raw: str) -> str:
    return global6(raw, "the server's IPv4 address goes in option address")


def _gateway6(raw: str) -> str:
    """The next hop of a path's IPv6: global or, as routers announce it, link-local."""
    return str(_ipv6_unicast(raw, "an IPv4 gateway goes in option gateway"))


def _probe_target(raw: str) -> str:
    """An IPv4 address, or a global IPv6 address (probed over the paths' IPv6)."""
    v = raw.strip()
    if _is_ipv6(v):
        return global6(v, "probe targets may be IPv4 addresses too")
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address (like 192.0.2.1 or 2001:db8::1)") \
            from None


def _ipv6_net(raw: str) -> str:
    v = raw.strip()
    try:
        net = ipaddress.IPv6Network(v, strict=False)
    except ValueError:
        if _is_ipv4_net(v):
            raise ValueError("an IPv4 network: it goes in list bypass") from None
        raise ValueError("not an IPv6 network (like fd00::/8 or 2001:db8::7)") from None
    if net.network_address != ipaddress.IPv6Address(v.split("/")[0]):
        raise ValueError(f"has host bits set: did you mean {net}?")
    return str(net) if net.prefixlen < 128 else str(net.network_address)


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value.split("%")[0])
    except ValueError:
        return False
    return True


def _is_ipv4_net(value: str) -> bool:
    try:
        ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return False
    return True


_HOST_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _host(raw: str) -> str:
    v = raw.strip()
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        pass
    if _HOST_RE.match(v) and not v.replace(".", "").isdigit():
        return v
    raise ValueError("not an IP address or host name")


_IFNAME_RE = re.compile(r"^[^\s/:]{1,15}$")
_NETIFD_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")


def _ifname(raw: str) -> str:
    if not _IFNAME_RE.fullmatch(raw) or raw in (".", ".."):
        raise ValueError("not a network device name (1–15 characters, no spaces, '/' or ':')")
    return raw


def _mark(raw: str) -> tuple[int, int]:
    """'0xb0' or '0xb0/0xff' (decimal too) → (mark, mask); the mask defaults to the mark."""
    text = raw.strip()
    mark_s, _, mask_s = text.partition("/")
    try:
        mark = int(mark_s, 0)
        mask = int(mask_s, 0) if mask_s else mark
    except ValueError:
        raise ValueError("not a firewall mark: use MARK or MARK/MASK, like 0xb0 or 0xb0/0xff") \
            from None
    if not 0 < mark <= 0x7FFFFFFF or not 0 < mask <= 0x7FFFFFFF:
        raise ValueError("out of range: the mark and mask must be 0x1–0x7fffffff")
    if mark & ~mask:
        raise ValueError(f"the mark {mark:#x} has bits outside the mask {mask:#x}")
    return mark, mask


def _ipv4_net(raw: str) -> str:
    v = raw.strip()
    try:
        net = ipaddress.IPv4Network(v, strict=False)
    except ValueError:
        if ":" in v:
            raise ValueError("an IPv6 network: it goes in list bypass6") from None
        raise ValueError("not an IPv4 network (like 10.0.0.0/8 or 192.0.2.7)") from None
    if str(net.network_address) != v.split("/")[0]:
        raise ValueError(f"has host bits set: did you mean {net}?")
    return str(net) if net.prefixlen < 32 else str(net.network_address)


_CC_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


def _congestion(raw: str) -> str:
    v = raw.strip()
    if v and not _CC_RE.fullmatch(v):
        raise ValueError("not a congestion control name (like cubic or bbr)")
    return v


def _netifd_name(raw: str) -> str:
    if not _NETIFD_RE.fullmatch(raw):
        raise ValueError("not a netifd interface name (letters, digits and '_', at most 15)")
    return raw


# --- the typed config -------------------------------------------------------------------------

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error")
# 'auto': sing-box, else xray, whichever is installed (bondingd looks again while it finds
# neither); 'none': no data plane, bond the router's own traffic only.
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
# Shadowsocks AEAD ciphers.  Unencrypted transport ('none', 'plain') is refused: router↔server
# traffic is always encrypted and authenticated (DESIGN 3.4).  shadowsocks-libev speaks only
# the first three; xray and sing-box speak all.
CIPHERS: Final = ("chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm",
                  "2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm",
                  "2022-blake3-chacha20-poly1305")
# Shadowsocks-2022 (SIP022) ciphers take as key the base64 of exactly this many random bytes;
# the older AEAD ciphers derive theirs from any password.
SS2022_KEY_BYTES: Final = {"2022-blake3-aes-128-gcm": 16, "2022-blake3-aes-256-gcm": 32,
                           "2022-blake3-chacha20-poly1305": 32}


def key_problem(cipher: str, key: str) -> str | None:
    """What is wrong with `key` for `cipher` (None: nothing).  Never quotes the key."""
    need = SS2022_KEY_BYTES.get(cipher)
    if need is None:
        return None
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return (f"the key is not base64, which cipher {cipher} needs (a {need}-byte key: "
                f"openssl rand -base64 {need})")
    if len(raw) != need:
        return (f"the key decodes to {len(raw)} bytes; cipher {cipher} needs exactly {need} "
                f"(openssl rand -base64 {need})")
    return None


@dataclass(frozen=True)
class Globals:
    """Section `config globals 'globals'`: one per file, every option optional."""

    enabled: bool = True
    log_level: str = "info"
    proxy: str = "auto"
    # Probing: a round every probe_interval_ms; a round is good when any target answers, so it
    # asks the next target only while none has (bonding.probe).  The reply timeout adapts to the
    # path's RTT within these bounds.
    probe_interval_ms: int = 150
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
        own = (self.address,) if _is_ipv6(self.address) else ()
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

    def path(self, name: str) -> PathConfig | None:
        return next((p for p in self.paths if p.name == name), None)

    def targets_for(self, path: PathConfig, family: int = 4) -> tuple[str, ...]:
        """Probe targets of a path in one address family (4 or 6): its own list, else the
        global list, else the servers (each of that family)."""
        v6 = family == 6
        for targets in (path.probe_targets, self.globals.probe_targets):
            mine = tuple(t for t in targets if _is_ipv6(t) == v6)
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


def is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


# option name in UCI → (field name, parser, is_list)
_Spec = dict[str, tuple[str, Callable[[str], Any], bool]]

_GLOBALS: _Spec = {
    "enabled": ("enabled", _bool, False),
    "log_level": ("log_level", _choice(*LOG_LEVELS), False),
    "proxy": ("proxy", _choice(*PROXIES), False),
    "probe_interval_ms": ("probe_interval_ms", _int(20, 60000, " ms"), False),
    "probe_timeout_min_ms": ("probe_timeout_min_ms", _int(10, 60000, " ms"), False),
    "probe_timeout_ms": ("probe_timeout_ms", _int(10, 60000, " ms"), False),
    "down_count": ("down_count", _int(1, 100), False),
    "down_window": ("down_window", _int(1, 100), False),
    "up_count": ("up_count", _int(1, 100), False),
    "degraded_loss_pct": ("degraded_loss_pct", _int(1, 100, " %"), False),
    "degraded_rtt_factor": ("degraded_rtt_factor", _float(1.0, 100.0), False),
    "degraded_rtt_ms": ("degraded_rtt_ms", _int(0, 60000, " ms"), False),
    "loss_window": ("loss_window", _int(2, 1000, " rounds"), False),
    "probe_target": ("probe_targets", _probe_target, True),
    "mptcp_subflows": ("mptcp_subflows", _int(0, 8), False),
    "mptcp_add_addr_accepted": ("mptcp_add_addr_accepted", _int(0, 8), False),
    "route_table": ("route_table", _int(1, 0x7FFFFFFF), False),
    "path_table_base": ("path_table_base", _int(1, 0x7FFFFFFF), False),
    "rule_priority": ("rule_priority", _int(1, 32000), False),
    "manage_default_route": ("manage_default_route", _bool, False),
    "lan_device": ("lan_devices", _ifname, True),
    "tproxy_port": ("tproxy_port", _int(1, 65535), False),
    "tproxy_mark": ("tproxy_mark", _mark, False),
    "tproxy_table": ("tproxy_table", _int(1, 0x7FFFFFFF), False),
    "bypass": ("bypass", _ipv4_net, True),
    "bypass6": ("bypass6", _ipv6_net, True),
    "proxy_udp": ("proxy_udp", _bool, False),
    "ipv6": ("ipv6", _bool, False),
    "congestion_control": ("congestion_control", _congestion, False),
    "server_probe_interval_ms": ("server_probe_interval_ms", _int(100, 60000, " ms"), False),
    "server_down_count": ("server_down_count", _int(1, 100), False),
    "server_up_count": ("server_up_count", _int(1, 100), False),
    "server_failback": ("server_failback", _choice(*FAILBACK), False),
    "server_hold_s": ("server_hold_s", _int(0, 86400, " s"), False),
}

_SERVER: _Spec = {
    "address": ("address", _host, False),
    "port": ("port", _int(1, 65535), False),
    "protocol": ("protocol", _choice("shadowsocks", "vless"), False),
    "cipher": ("cipher", _cipher, False),
    "enabled": ("enabled", _bool, False),
    "priority": ("priority", _int(0, 1000), False),
    "udp_over_tcp": ("udp_over_tcp", _bool, False),
    "address6": ("address6", _server_address6, False),
}

_PATH: _Spec = {
    "interface": ("interface", _netifd_name, False),
    "device": ("device", _ifname, False),
    "gateway": ("gateway", _gateway, False),
    "gateway6": ("gateway6", _gateway6, False),
    "enabled": ("enabled", _bool, False),
    "backup": ("backup", _bool, False),
    "download_kbit": ("download_kbit", _int(1, 100_000_000, " kbit/s"), False),
    "upload_kbit": ("upload_kbit", _int(1, 100_000_000, " kbit/s"), False),
    "probe_target": ("probe_targets", _probe_target, True),
    "congestion_control": ("congestion_control", _congestion, False),
}

_APN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")


def _apn(raw: str) -> str:
    if not _APN_RE.match(raw) or raw.endswith("\n"):
        raise ValueError("not an APN: letters, digits, '.' and '-', at most 100 "
                         "(ask the mobile operator, e.g. 'internet')")
    return raw


_USB: _Spec = {
    "auto_dhcp": ("auto_dhcp", _bool, False),
    "modem_mbim": ("modem_mbim", _bool, False),
    "metric_base": ("metric_base", _int(1, 1000), False),
    "apn": ("apn", _apn, False),
}

MAX_PATHS: Final = 32

_SECTIONS: Final = {"globals": _GLOBALS, "server": _SERVER, "path": _PATH, "usb": _USB}
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def _section_label(s: uci.Section) -> str:
    return s.name if s.name is not None else f"@{s.type}[{s.type_index}]"


def _read_options(s: uci.Section, spec: _Spec, problems: list[Problem]) -> dict[str, Any]:
    label = _section_label(s)
    out: dict[str, Any] = {}
    for opt, raw in s.options.items():
        if opt not in spec:
            problems.append(Problem(
                Severity.WARNING, label, opt, _shown(raw),
                f"unknown option of a '{s.type}' section, ignored; "
                f"known: {', '.join(sorted(spec))}"))
            continue
        fname, parse, is_list = spec[opt]
        values = [raw] if isinstance(raw, str) else list(raw)
        if not is_list and not isinstance(raw, str):
            problems.append(Problem(Severity.ERROR, label, opt, _shown(raw),
                                    f"'{opt}' takes one value: write 'option {opt}', not 'list'"))
            continue
        parsed = []
        for v in values:
            try:
                parsed.append(parse(v))
            except ValueError as e:
                problems.append(Problem(Severity.ERROR, label, opt, v, str(e)))
        out[fname] = tuple(parsed) if is_list else (parsed[0] if parsed else None)
    return {k: v for k, v in out.items() if v is not None}


def _shown(raw: str | Sequence[str]) -> str:
    return raw if isinstance(raw, str) else " ".join(raw)


def from_sections(sections: Sequence[uci.Section]) -> tuple[Config, list[Problem]]:
    """Validate parsed UCI sections; the Config is meaningful only when no problem is an error."""
    problems: list[Problem] = []
    globals_: Globals | None = None
    usb: Usb | None = None
    servers: list[Server] = []
    paths: list[PathConfig] = []
    seen: dict[str, set[str]] = {"server": set(), "path": set()}
    path_devices: dict[str, str] = {}

    for s in sections:
        label = _section_label(s)
        spec = _SECTIONS.get(s.type)
        if spec is None:
            problems.append(Problem(Severity.WARNING, label, None, None,
                                    f"unknown section type '{s.type}', ignored; known: "
                                    + ", ".join(_SECTIONS)))
            continue
        values = _read_options(s, spec, problems)
        if s.type == "globals":
            if globals_ is not None:
                problems.append(Problem(Severity.ERROR, label, None, None,
                                        "a second 'globals' section: merge it into the first"))
                continue
            if "tproxy_mark" in values:
                values["tproxy_mark"], values["tproxy_mask"] = values["tproxy_mark"]
            globals_ = Globals(**values)
        elif s.type == "usb":
            usb = Usb(**values)
        else:
            name = s.name
            if name is None or not _NAME_RE.fullmatch(name):
                problems.append(Problem(Severity.ERROR, label, None, None,
                                        f"a '{s.type}' section needs a name of letters, digits "
                                        f"and '_' (config {s.type} 'wan1')"))
                continue
            if name in seen[s.type]:
                problems.append(Problem(Severity.ERROR, label, None, None,
                                        f"duplicate {s.type} '{name}': each name once"))
                continue
            seen[s.type].add(name)
            if s.type == "server":
                if "address" not in values:
                    if not any(p.option == "address" and p.section == label for p in problems):
                        problems.append(Problem(Severity.ERROR, label, "address", None,
                                                "missing: the server's IP address or host name"))
                    continue
                servers.append(Server(name=name, **values))
            else:
                path = PathConfig(name=name, **values)
                if path.interface is None and path.device is None:
                    if not any(p.section == label and p.option in ("interface", "device")
                               for p in problems):
                        problems.append(Problem(
                            Severity.ERROR, label, None, None,
                            "needs 'option interface' (netifd name) or 'option device'"))
                    continue
                key = path.device or f"netifd:{path.interface}"
                if key in path_devices:
                    problems.append(Problem(
                        Severity.ERROR, label, "device" if path.device else "interface",
                        path.device or path.interface,
                        f"already used by path '{path_devices[key]}': one path per link"))
                    continue
                if len(paths) == MAX_PATHS:
                    problems.append(Problem(Severity.ERROR, label, None, None,
                                            f"more than {MAX_PATHS} paths"))
                    continue
                path_devices[key] = name
                paths.append(path)

    g = globals_ or Globals()
    _check_globals(g, problems)
    if not g.ipv6:
        _check_ipv6_off(g, servers, paths, problems)
    return Config(globals=g, servers=tuple(servers), paths=tuple(paths),
                  usb=usb or Usb()), problems


def _check_globals(g: Globals, problems: list[Problem]) -> None:
    def err(option: str, value: object, msg: str) -> None:
        problems.append(Problem(Severity.ERROR, "globals", option, str(value), msg))

    if g.down_count > g.down_window:
        err("down_count", g.down_count,
            f"larger than down_window ({g.down_window}): a path could never go down")
    if g.probe_timeout_min_ms > g.probe_timeout_ms:
        err("probe_timeout_min_ms", g.probe_timeout_min_ms,
            f"larger than probe_timeout_ms ({g.probe_timeout_ms})")
    last = g.path_table_base + MAX_PATHS - 1
    if g.path_table_base <= g.route_table <= last:
        err("route_table", g.route_table,
            f"inside the path tables {g.path_table_base}–{last}: move one")
    reserved = (253, 254, 255)
    if g.route_table in reserved:
        err("route_table", g.route_table, "253–255 are the kernel's default, main and local tables")
    if any(g.path_table_base <= t <= last for t in reserved):
        err("path_table_base", g.path_table_base,
            f"the path tables ({g.path_table_base}–{last}) must not include 253–255, "
            "the kernel's own tables")
    if g.tproxy_table in reserved:
        err("tproxy_table", g.tproxy_table,
            "253–255 are the kernel's default, main and local tables")
    elif g.tproxy_table == g.route_table or g.path_table_base <= g.tproxy_table <= last:
        err("tproxy_table", g.tproxy_table,
            f"already used: route_table is {g.route_table}, the path tables "
            f"{g.path_table_base}–{last}")
    if len(set(g.lan_devices)) != len(g.lan_devices):
        err("lan_device", " ".join(g.lan_devices), "a device is listed twice")
    if g.tproxy_mask.bit_length() >= 31:
        err("tproxy_mark", f"{g.tproxy_mark:#x}/{g.tproxy_mask:#x}",
            "the mask must leave bit 31 free (the proxy's own connections are marked with the "
            "bit above the mask)")


def _check_ipv6_off(g: Globals, servers: Sequence[Server], paths: Sequence[PathConfig],
                    problems: list[Problem]) -> None:
    """With option ipv6 '0', the IPv6 options do nothing: say so where one is set."""
    def warn(section: str, option: str, value: str, msg: str) -> None:
        problems.append(Problem(Severity.WARNING, section, option, value, msg))

    off = "option ipv6 is 0 in globals"
    for s in servers:
        if s.enabled and _is_ipv6(s.address):
            warn(s.name, "address", s.address,
                 f"the proxy reaches this server over IPv6, but {off}: its connection is not "
                 "bonded (one link, the main table's route); set ipv6 '1'")
    for section, targets in (("globals", g.probe_targets),
                             *((p.name, p.probe_targets) for p in paths)):
        for t in targets:
            if _is_ipv6(t):
                warn(section, "probe_target", t, f"an IPv6 target, unused: {off}")
    for p in paths:
        if p.gateway6:
            warn(p.name, "gateway6", p.gateway6, f"unused: {off}")


def load(config_dir: Path) -> tuple[Config, list[Problem]]:
    """Read and validate `<config_dir>/bonding`.  A missing file means the defaults."""
    try:
        package = uci.load(config_dir, PACKAGE)
    except FileNotFoundError:
        return Config(), [Problem(Severity.WARNING, "(file)", None, None,
                                  f"{config_dir / PACKAGE} does not exist: using the defaults")]
    except uci.UciParseError as e:
        return Config(), [Problem(Severity.ERROR, "(file)", None, None, str(e))]
    return from_sections(package.sections)


SECRETS_PACKAGE: Final = "bonding_secrets"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,256}$")


class Secrets:
    """Server keys from /etc/config/bonding_secrets, by server section name.

    Nothing here is ever shown: repr() and str() name the servers only.
    """

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        self._keys = dict(keys or {})

    def key(self, server: str) -> str | None:
        return self._keys.get(server)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secrets) and other._keys == self._keys

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._keys.items())))

    def __repr__(self) -> str:
        return f"Secrets(servers={list(self.names())})"

    __str__ = __repr__


def secrets_from_sections(sections: Sequence[uci.Section]) -> tuple[Secrets, list[Problem]]:
    """Validate parsed `bonding_secrets` sections.  A problem never carries a key."""
    problems: list[Problem] = []
    keys: dict[str, str] = {}

    def problem(sev: Severity, label: str, option: str | None, msg: str) -> None:
        problems.append(Problem(sev, label, option, None, msg, package=SECRETS_PACKAGE))

    for s in sections:
        label = _section_label(s)
        if s.type != "server":
            problem(Severity.WARNING, label, None,
                    f"unknown section type '{s.type}', ignored; known: server")
            continue
        if s.name is None or not _NAME_RE.fullmatch(s.name):
            problem(Severity.ERROR, label, None, "needs the name of its server section "
                    "(config server 'vps1', as in /etc/config/bonding)")
            continue
        for opt in s.options:
            if opt != "key":
                problem(Severity.WARNING, label, opt, "unknown option, ignored; known: key")
        raw = s.options.get("key")
        if raw is None:
            problem(Severity.ERROR, label, "key", "missing: the key bonding-server add-client "
                    "printed")
            continue
        if not isinstance(raw, str):
            problem(Severity.ERROR, label, "key", "takes one value: write 'option key', not "
                    "'list'")
            continue
        if not _KEY_RE.fullmatch(raw):
            problem(Severity.ERROR, label, "key", "must be 1–256 printable characters without "
                    "spaces (value not shown)")
            continue
        keys[label] = raw
    return Secrets(keys), problems


def secrets_mode_problem(path: Path, mode: int) -> Problem | None:
    """The problem of a bonding_secrets file others may read: an error when every user can
    (any local user or service gets the keys), a warning when its group can."""
    if not mode & 0o077:
        return None
    who = "every user" if mode & 0o007 else "its group"
    return Problem(Severity.ERROR if mode & 0o007 else Severity.WARNING, "(file)", None, None,
                   f"{path} has mode {mode & 0o777:04o}: {who} can read or change the keys; "
                   f"chmod 600 {path}", package=SECRETS_PACKAGE)


def load_secrets(config_dir: Path) -> tuple[Secrets, list[Problem]]:
    """Read `<config_dir>/bonding_secrets`; a missing file means no keys (a warning)."""
    path = config_dir / SECRETS_PACKAGE
    problems: list[Problem] = []
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return Secrets(), [Problem(Severity.WARNING, "(file)", None, None,
                                   f"{path} does not exist: no server keys",
                                   package=SECRETS_PACKAGE)]
    except OSError as e:
        return Secrets(), [Problem(Severity.ERROR, "(file)", None, None, f"{path}: {e.strerror}",
                                   package=SECRETS_PACKAGE)]
    mode_problem = secrets_mode_problem(path, mode)
    if mode_problem is not None:
        problems.append(mode_problem)
    try:
        package = uci.load(config_dir, SECRETS_PACKAGE)
    except uci.UciParseError as e:
        # The parser's message quotes the offending text, which may be a key: say where only.
        at = f" at line {e.line}" if e.line > 0 else ""
        return Secrets(), [*problems, Problem(Severity.ERROR, "(file)", None, None,
                                              f"{path} is not a valid UCI file{at}: {e.reason}",
                                              package=SECRETS_PACKAGE)]
    except OSError as e:
        return Secrets(), [*problems, Problem(Severity.ERROR, "(file)", None, None,
                                              f"{path}: {e.strerror}", package=SECRETS_PACKAGE)]
    secrets, more = secrets_from_sections(package.sections)
    return secrets, problems + more


def load_strict(config_dir: Path) -> tuple[Config, list[Problem]]:
    """Like load(), but raise ConfigError when any problem is an error."""
    cfg, problems = load(config_dir)
    if any(p.severity is Severity.ERROR for p in problems):
        raise ConfigError(problems)
    return cfg, problems


def as_dict(cfg: Config) -> Mapping[str, Any]:
    """The config as plain data (for status and logs); holds no secret by construction."""

    def dc(obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in fields(obj)}

    return {
        "globals": dc(cfg.globals),
        "servers": [dc(s) for s in cfg.servers],
        "paths": [dc(p) for p in cfg.paths],
        "usb": dc(cfg.usb),
    }
