"""The data of bonding-server: server settings, client records, validation, the client's config.

Everything here is pure (no I/O): the CLI validates every input with these functions before it
touches anything, and the tests drive them with tables of cases.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bonding import config

PROTOCOL: Final = "shadowsocks"
# The proxy that serves the clients: sing-box (the default when it is installed: MPTCP on the
# listener only, Shadowsocks-2022, UDP over the bonded connection) or ss-server under mptcpize.
PROXIES: Final = ("sing-box", "shadowsocks-libev")
DEFAULT_PROXY: Final = "sing-box"
DEFAULT_CONGESTION: Final = "cubic"  # bonding.server.congestion says why
# ss-libev 3.3.5 knows no Shadowsocks-2022 cipher; every client proxy speaks this one too.
CIPHER: Final = "chacha20-ietf-poly1305"
LIBEV_CIPHERS: Final = ("chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm")
CIPHERS: Final[Mapping[str, tuple[str, ...]]] = {"sing-box": config.CIPHERS,
                                                 "shadowsocks-libev": LIBEV_CIPHERS}
# What add-client hands out: Shadowsocks-2022 where the server speaks it (a fresh random key,
# replay protection); AES-128-GCM is the fast one on CPUs with AES instructions, a router
# without them does better with --cipher 2022-blake3-chacha20-poly1305.
DEFAULT_CIPHER: Final[Mapping[str, str]] = {"sing-box": "2022-blake3-aes-128-gcm",
                                            "shadowsocks-libev": CIPHER}
# Client ports are taken from PORT_FIRST..PORT_LAST (outside Linux's ephemeral range
# 32768–60999).  65535 is never used: `tc` gives the ingress qdisc handle ffff:, and a client's
# classes and queues are numbered by its port.
PORT_FIRST: Final = 65101
PORT_LAST: Final = 65534
PORT_MIN: Final = 1024  # an explicit --port may be anywhere in PORT_MIN..PORT_LAST
RATE_MIN_MBIT: Final = 0.1
RATE_MAX_MBIT: Final = 100_000.0
KEY_BYTES: Final = 32  # 256 random bits, URL-safe base64 (43 characters)
NAME_RE: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_USER_RE: Final = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
USER_PREFIX_MAX: Final = 26  # PREFIX-PORT fits the 32 characters of a user name
RECORD_VERSION: Final = 1


class ServerError(Exception):
    """A runtime failure: the message says what went wrong and what to do.  Exit code 1."""

    exit_code = 1


class UsageError(ServerError):
    """Wrong input from the user (a name, a rate, a port, an unknown client).  Exit code 2."""

    exit_code = 2


# --- validation -----------------------------------------------------------------------------------
def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"bad client name {name!r}: use 1–32 letters, digits or '_' (it becomes a UCI "
            "section name on the router), e.g. --name home_office")
    return name


def validate_rate(text: str | float) -> float:
    """A rate limit in Mbit/s: a number in RATE_MIN_MBIT..RATE_MAX_MBIT."""
    try:
        rate = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"bad rate {text!r}: give the limit in Mbit/s as a number, "
                         "e.g. --rate-mbit 20 or --rate-mbit 2.5") from None
    if not math.isfinite(rate) or not RATE_MIN_MBIT <= rate <= RATE_MAX_MBIT:
        raise UsageError(f"bad rate {text!r}: the limit must be {RATE_MIN_MBIT:g}–"
                         f"{RATE_MAX_MBIT:g} Mbit/s (leave --rate-mbit out for no limit)")
    return round(rate, 3)


def validate_port(text: str | int) -> int:
    try:
        port = int(str(text), 10)
    except ValueError:
        raise UsageError(f"bad port {text!r}: give a number {PORT_MIN}–{PORT_LAST}, "
                         f"or leave --port out to take a free one from {PORT_FIRST}") from None
    if not PORT_MIN <= port <= PORT_LAST:
        raise UsageError(f"bad port {port}: use {PORT_MIN}–{PORT_LAST} (65535 is reserved), "
                         f"or leave --port out to take a free one from {PORT_FIRST}")
    return port


def validate_address(text: str) -> str:
    """The server's public address as the clients reach it: an IP address or a DNS name."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if (len(name) <= 253 and len(labels) >= 2 and all(_HOST_LABEL.fullmatch(x) for x in labels)
            and not labels[-1].isdigit()):
        return name.lower()
    raise UsageError(f"bad public address {text!r}: give the IP address or DNS name the "
                     "clients use to reach this server, e.g. --public-address 203.0.113.10")


def validate_address6(text: str) -> str:
    """The server's public IPv6 address: routers reach it over their links' IPv6 and proxy
    their LAN's IPv6 through it."""
    try:
        return config.global6(text, "the IPv4 address or DNS name goes in --public-address")
    except ValueError as e:
        raise UsageError(f"bad public IPv6 address {text!r}: {e}; give the global IPv6 address "
                         "the clients reach this server at, e.g. --public-address6 "
                         "2001:db8::10") from None


def validate_proxy(text: str) -> str:
    if text not in PROXIES:
        raise UsageError(f"bad proxy {text!r}: use one of {', '.join(PROXIES)}")
    return text


def validate_congestion(text: str) -> str:
    """A TCP congestion control's name (as the kernel's tcp_<name> module calls it), or ""
    for the host's default."""
    if text and not re.fullmatch(r"[a-z][a-z0-9_]{0,15}", text):
        raise UsageError(f"bad congestion control {text!r}: give a name the kernel knows, such "
                         "as cubic or bbr (sysctl net.ipv4.tcp_available_congestion_control), "
                         "or '' for the host's default")
    return text


def validate_cipher(text: str, proxy: str) -> str:
    if text not in CIPHERS[proxy]:
        raise UsageError(f"bad cipher {text!r}: this server's proxy ({proxy}) speaks "
                         f"{', '.join(CIPHERS[proxy])}")
    return text


def validate_user(text: str) -> str:
    """The prefix of the proxies' users: each client's proxy runs as PREFIX-PORT."""
    if not _USER_RE.fullmatch(text) or len(text) > USER_PREFIX_MAX or text == "root":
        raise UsageError(f"bad user prefix {text!r}: each client's proxy runs as its own "
                         f"system user PREFIX-PORT; use 1–{USER_PREFIX_MAX} of [a-z0-9_-] "
                         "starting with a letter, e.g. --user bonding-server")
    return text


def proxy_user(prefix: str, client: Client) -> str:
    """The system user that runs ``client``'s proxy, and no other: one uid per client, so that
    no proxy can ptrace another or read its memory, environment or key."""
    return f"{prefix}-{client.port}"


def validate_interface(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", text) or text in (".", ".."):
        raise UsageError(f"bad interface {text!r}: give a network device name such as eth0")
    return text


def validate_network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise UsageError(f"bad network {text!r}: give an address or CIDR prefix, "
                         "e.g. --allow 192.168.5.0/24") from None


# --- records --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerConfig:
    """What `init` decided; stored in STATE/server.json."""

    public_address: str
    systemd: bool
    user: str  # the prefix of the proxies' users (proxy_user)
    interface: str | None = None  # egress device for shaping; None: the default route's device
    allow: tuple[str, ...] = ()  # networks the proxies may reach despite the block list
    proxy: str = DEFAULT_PROXY
    public_address6: str | None = None  # its IPv6 address for the clients, when it has one
    # of the clients' connections (bonding.server.congestion); "": the host's default
    congestion_control: str = DEFAULT_CONGESTION

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "public_address": self.public_address,
                "public_address6": self.public_address6,
                "systemd": self.systemd, "user": self.user, "interface": self.interface,
                "allow": list(self.allow), "proxy": self.proxy,
                "congestion_control": self.congestion_control}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ServerConfig:
        if not isinstance(raw, Mapping):
            raise ValueError("not a JSON object")
        interface = raw.get("interface")
        address6 = raw.get("public_address6")  # absent in settings written before IPv6
        allow = raw.get("allow", [])
        if not isinstance(raw.get("systemd"), bool) or not isinstance(allow, list):
            raise ValueError("field 'systemd' or 'allow' has the wrong type")
        return cls(public_address=validate_address(str(raw["public_address"])),
                   public_address6=None if address6 is None else validate_address6(
                       str(address6)),
                   systemd=raw["systemd"], user=validate_user(str(raw["user"])),
                   interface=None if interface is None else validate_interface(str(interface)),
                   allow=tuple(validate_network(str(x)) for x in allow),
                   # settings written before sing-box came are ss-libev's
                   proxy=validate_proxy(str(raw.get("proxy", "shadowsocks-libev"))),
                   # settings written before it came take the default
                   congestion_control=validate_congestion(
                       str(raw.get("congestion_control", DEFAULT_CONGESTION))))


@dataclass(frozen=True)
class Client:
    """One client (one router): its own port, key, cipher, rate limit and proxy process."""

    name: str
    port: int
    key: str = field(repr=False)
    rate_mbit: float | None = None
    cipher: str = CIPHER
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "name": self.name, "port": self.port,
                "key": self.key, "cipher": self.cipher, "rate_mbit": self.rate_mbit,
                "created": self.created}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Client:
        if not isinstance(raw, Mapping):
            raise ValueError("not a JSON object")
        key = raw["key"]
        if not isinstance(key, str) or len(key) < 16:
            raise ValueError("field 'key' is missing or too short")
        rate = raw.get("rate_mbit")
        cipher = raw.get("cipher", CIPHER)
        if cipher not in config.CIPHERS:
            raise ValueError(f"cipher {cipher!r} is not one of {', '.join(config.CIPHERS)}")
        bad = config.key_problem(cipher, key)
        if bad is not None:
            raise ValueError(bad)
        return cls(name=validate_name(str(raw["name"])), port=validate_port(raw["port"]),
                   key=key, rate_mbit=None if rate is None else validate_rate(rate),
                   cipher=cipher, created=float(raw.get("created", 0.0)))

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()


def new_key(cipher: str = CIPHER) -> str:
    """A random key: base64 of the cipher's key size for Shadowsocks-2022, else 256 bits."""
    size = config.SS2022_KEY_BYTES.get(cipher)
    if size is not None:
        return base64.b64encode(os.urandom(size)).decode()
    return secrets.token_urlsafe(KEY_BYTES)


def new_client(name: str, port: int, rate_mbit: float | None, cipher: str = CIPHER) -> Client:
    return Client(name=name, port=port, key=new_key(cipher), rate_mbit=rate_mbit,
                  cipher=cipher, created=round(time.time(), 3))


def default_name(taken: Collection[str]) -> str:
    for i in range(1, 10_000):
        if f"client{i}" not in taken:
            return f"client{i}"
    raise UsageError("no free default name: give one with --name")


def pick_port(taken: Collection[int], is_free: Callable[[int], bool]) -> int:
    """The lowest port of PORT_FIRST..PORT_LAST no record holds and nothing else listens on."""
    for port in range(PORT_FIRST, PORT_LAST + 1):
        if port not in taken and is_free(port):
            return port
    raise ServerError(f"no free port left in {PORT_FIRST}–{PORT_LAST}: remove a client or "
                      "give one with --port")


# --- what the client (the router) needs ---------------------------------------------------------
def udp_over_tcp(server: ServerConfig) -> bool:
    """The server takes UDP inside the bonded connection (sing-box's UDP over TCP v2)."""
    return server.proxy == "sing-box"


def client_json(client: Client, server: ServerConfig) -> dict[str, Any]:
    return {"name": client.name, "address": server.public_address,
            "address6": server.public_address6, "port": client.port, "protocol": PROTOCOL,
            "cipher": client.cipher, "key": client.key,
            "rate_mbit": client.rate_mbit, "udp_over_tcp": udp_over_tcp(server)}


def client_uci(client: Client, server: ServerConfig) -> str:
    """The ready-to-paste UCI for the router: /etc/config/bonding, bonding_secrets, uci batch."""
    n, addr = client.name, server.public_address
    options = [("address", addr), ("port", str(client.port)), ("protocol", PROTOCOL),
               ("cipher", client.cipher)]
    if server.public_address6:  # the router proxies its LAN's IPv6 through this server too
        options.insert(1, ("address6", server.public_address6))
    if udp_over_tcp(server):
        options.append(("udp_over_tcp", "1"))
    lines = [f"# bonding client '{n}' for server {addr}", f"config server '{n}'"]
    lines += [f"\toption {k} '{v}'" for k, v in options]
    lines += ["", "# /etc/config/bonding_secrets (mode 0600)", f"config server '{n}'",
              f"\toption key '{client.key}'", "", "# or in one go:",
              "touch /etc/config/bonding_secrets; chmod 600 /etc/config/bonding_secrets",
              "uci batch <<'EOF'", f"set bonding.{n}=server"]
    lines += [f"set bonding.{n}.{k}='{v}'" for k, v in options]
    lines += [f"set bonding_secrets.{n}=server", f"set bonding_secrets.{n}.key='{client.key}'",
              "commit bonding", "commit bonding_secrets", "EOF"]
    return "\n".join(lines) + "\n"
