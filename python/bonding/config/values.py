"""Option values: parsers from the UCI text to a value, or ValueError saying what to write.

Each parser names the expectation in words (the message becomes a `Problem`); none knows which
option it serves (that is the spec tables in `bonding.config.loading`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from typing import Final, TypeVar

from bonding.core.roles import ROLES

# --- value parsers: str → value, or ValueError with the expectation in words ------------------

_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def boolean(raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError("not a boolean: use 1 or 0")


_N = TypeVar("_N", int, float)


def _ranged(convert: Callable[[str], _N], what: str, lo: _N, hi: _N,
            unit: str) -> Callable[[str], _N]:
    """A parser of `convert`ed numbers within lo–hi; `what` is the noun of its message."""
    span = f"{lo:g}–{hi:g}" if isinstance(lo, float) else f"{lo}–{hi}"

    def parse(raw: str) -> _N:
        try:
            v = convert(raw.strip())
        except ValueError:
            raise ValueError(f"not {what}{unit}: use {span}") from None
        if not lo <= v <= hi:
            raise ValueError(f"out of range: use {span}{unit}")
        return v

    return parse


def whole(lo: int, hi: int, unit: str = "") -> Callable[[str], int]:
    """Whole numbers (decimal) lo–hi; `unit` (like " ms") goes into the messages."""
    return _ranged(lambda s: int(s, 10), "a whole number", lo, hi, unit)


def number(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """Numbers lo–hi (decimals allowed)."""
    return _ranged(float, "a number", float(lo), float(hi), unit)


def port_or_range(what: str, example: str) -> Callable[[str], str]:
    """A port or a range low-high, normalised ("443", "8000-8100"); `what` ("a port") and
    `example` ("443 or 8000-8100") go into the message."""

    def parse(raw: str) -> str:
        m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", raw.strip())
        if not m:
            raise ValueError(f"not {what} or a range: write {example}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not 1 <= lo <= hi <= 65535:
            raise ValueError("out of range: ports are 1–65535, the range low-high")
        return str(lo) if lo == hi else f"{lo}-{hi}"

    return parse


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError("not one of: " + ", ".join(allowed))
        return raw

    return parse


def cipher_choice(raw: str) -> str:
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


def gateway(raw: str) -> str:
    if is_ipv6(raw.strip()):
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


def server_address6(raw: str) -> str:
    return global6(raw, "the server's IPv4 address goes in option address")


def gateway6(raw: str) -> str:
    """The next hop of a path's IPv6: global or, as routers announce it, link-local."""
    return str(_ipv6_unicast(raw, "an IPv4 gateway goes in option gateway"))


def probe_target(raw: str) -> str:
    """An IPv4 address, or a global IPv6 address (probed over the paths' IPv6)."""
    v = raw.strip()
    if is_ipv6(v):
        return global6(v, "probe targets may be IPv4 addresses too")
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address (like 192.0.2.1 or 2001:db8::1)") \
            from None


def _parses(kind: Callable[[str], object], value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def is_ipv6(value: str) -> bool:
    """An IPv6 address, with or without a zone index."""
    return _parses(ipaddress.IPv6Address, value.split("%")[0])


def is_ipv4(value: str) -> bool:
    return _parses(ipaddress.IPv4Address, value)


def _is_ipv4_net(value: str) -> bool:
    return _parses(lambda v: ipaddress.IPv4Network(v, strict=False), value)


_HOST_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def host(raw: str) -> str:
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


def ifname(raw: str) -> str:
    """A device name the kernel and nft both take: the kernel's rule (1–15 characters, not '.'
    or '..', no space, '/' or ':') and nothing an nft string cannot hold ('"', '\\', control
    characters), since the data plane names LAN devices in its table."""
    if (not _IFNAME_RE.fullmatch(raw) or raw in (".", "..") or not raw.isprintable()
            or '"' in raw or "\\" in raw):
        raise ValueError("not a network device name (1–15 characters, no spaces, '/', ':', "
                         "'\"' or '\\')")
    return raw


_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def username(raw: str) -> str:
    """A system user name (as busybox adduser takes them)."""
    if not _USER_RE.fullmatch(raw):
        raise ValueError("not a user name (a lower-case letter or '_', then up to 31 of "
                         "a-z, 0-9, '_' and '-')")
    return raw


def fwmark(raw: str) -> tuple[int, int]:
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


_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(kind: type[_Net], what: str, other_family: Callable[[str], bool],
             other_hint: str) -> Callable[[str], str]:
    """A parser of networks of one family (a bare address is its host network); an address of
    `other_family` is told `other_hint`, where it goes."""
    def parse(raw: str) -> str:
        v = raw.strip()
        try:
            net = kind(v, strict=False)
        except ValueError:
            if other_family(v):
                raise ValueError(other_hint) from None
            raise ValueError(f"not {what}") from None
        if net.network_address != ipaddress.ip_address(v.split("/")[0]):
            raise ValueError(f"has host bits set: did you mean {net}?")
        return str(net) if net.prefixlen < net.max_prefixlen else str(net.network_address)

    return parse


ipv4_net: Final = _network(
    ipaddress.IPv4Network, "an IPv4 network (like 10.0.0.0/8 or 192.0.2.7)",
    lambda v: ":" in v, "an IPv6 network: it goes in list bypass6")
ipv6_net: Final = _network(
    ipaddress.IPv6Network, "an IPv6 network (like fd00::/8 or 2001:db8::7)",
    _is_ipv4_net, "an IPv4 network: it goes in list bypass")


_CC_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


def congestion(raw: str) -> str:
    v = raw.strip()
    if v and not _CC_RE.fullmatch(v):
        raise ValueError("not a congestion control name (like cubic or bbr)")
    return v


def netifd_name(raw: str) -> str:
    if not _NETIFD_RE.fullmatch(raw):
        raise ValueError("not a netifd interface name (letters, digits and '_', at most 15)")
    return raw



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


_APN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")


def apn(raw: str) -> str:
    if not _APN_RE.match(raw) or raw.endswith("\n"):
        raise ValueError("not an APN: letters, digits, '.' and '-', at most 100 "
                         "(ask the mobile operator, e.g. 'internet')")
    return raw


def role(raw: str) -> str:
    """A path's role (bonding.core.roles)."""
    v = raw.strip()
    if v == "spill":
        raise ValueError("role 'spill' is not supported yet: use 'bond' (always used) or "
                         "'backup' (used only while no bond path is up)")
    if v not in ROLES:
        raise ValueError("not one of: " + ", ".join(ROLES)
                         + " ('backup': used only while no bond path is up)")
    return v
