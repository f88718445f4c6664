"""The nftables side of the data plane: LAN traffic to the local proxy by tproxy.

One table of our own, ``table inet bonding``, generated from the config and loaded with
``nft -f`` as a single transaction that deletes and re-adds it (so a reload never leaves half a
ruleset, and never touches anyone else's tables):

    table inet bonding {}            # create it if missing, so the delete cannot fail
    delete table inet bonding
    table inet bonding { ... }

On OpenWrt the same text is also written to :data:`FW4_INCLUDE` (``/var/run/bonding/fw4.nft``),
which the package links from ``/usr/share/nftables.d/ruleset-post/30-bonding.nft``: fw4 deletes
only its own table on reload, and a firewall restart after ``fw4 flush`` re-reads the include,
which brings our table back (fw4 skips the link while the file does not exist).

What the table does (IPv4, and IPv6 when the server has an IPv6 address: :func:`lan_ipv6`;
otherwise LAN IPv6 is routed natively, not bonded):
- hook ``prerouting`` at priority ``mangle`` (-150, where tproxy must run, after conntrack);
- only packets arriving on a LAN device (``lan_device``) are looked at;
- they go on unchanged (``return``) when they answer a connection opened from outside
  (``ct direction reply``: port forwards keep working), are addressed to the router itself or
  are broadcast/multicast (``fib daddr type``: DNS, DHCP, LuCI, SSH to the router), go to a
  destination of the bypass list or to an aggregation server, or are DHCP;
- they go on unchanged too when they carry a pin mark: `config rule` sections pinned them
  (bonding.dataplane.pinning's table, which runs just before this one);
- everything else, TCP (and UDP when ``proxy_udp``), is handed to the proxy listening on
  127.0.0.1:tproxy_port (``tproxy ip to``) and marked so that the policy rule
  ``fwmark tproxy_mark/tproxy_mask lookup tproxy_table`` (table: ``local default dev lo``)
  delivers it locally.
- IPv6 alike in chain ``lan6`` (sets ``bypass6`` and ``servers6``, DHCPv6 left alone),
  handed to the proxy's second listener, [::1]:tproxy_port (``tproxy ip6 to``).  Both
  listeners are on loopback addresses: nothing but tproxy reaches them.

The proxy's own connections never loop back into it: they are generated locally, so they pass
the output and postrouting hooks, never prerouting where the tproxy rules live; and the marks
the proxy puts on them (xray ``sockopt.mark``, sing-box ``routing_mark``: :func:`proxy_mark`)
lie outside ``tproxy_mask``, so the fwmark rule never sends them to ``lo`` either.  The servers
are in a bypass set of their own besides.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from bonding.config import Globals, Server
from bonding.dataplane import command

TABLE: Final = "bonding"
FAMILY: Final = "inet"
FW4_INCLUDE: Final = Path("/var/run/bonding/fw4.nft")
NFT_TIMEOUT_S: Final = 10.0
DHCP_PORTS: Final = (67, 68)
DHCP6_PORTS: Final = (546, 547)
LISTEN_ADDRESS: Final = "127.0.0.1"  # where tproxy hands IPv4
LISTEN_ADDRESS6: Final = "::1"  # where tproxy hands IPv6 (the proxy's second listener)


class NftError(Exception):
    """nft refused the ruleset or could not be run; the message says which and why."""


def lan_ipv6(g: Globals, server: Server | None) -> str:
    """Why LAN IPv6 is routed natively instead of proxied, or "" when it is proxied.

    It is proxied when IPv6 is on (option ipv6) and the server the proxy uses has an IPv6
    address: the server then reaches IPv6 destinations, whatever family the paths carry."""
    if not g.ipv6:
        return "option ipv6 is 0"
    if server is None:
        return "no enabled server"
    if not server.addresses6():
        return (f"server '{server.name}' has no IPv6 address (option address6): it could not "
                "reach IPv6 destinations")
    return ""


def proxy_mark(mask: int) -> int:
    """The mark the proxy puts on its own connections: the bit just above the tproxy mask.

    It can never satisfy ``mark & mask == tproxy_mark`` (it shares no bit with the mask), so
    the tproxy policy rule never routes the proxy's traffic back to ``lo``.
    """
    return 1 << mask.bit_length()


@dataclass(frozen=True)
class Ruleset:
    """The table as data (what tests check); :meth:`render` makes the nft text."""

    lan_devices: tuple[str, ...]
    bypass: tuple[str, ...]  # networks, collapsed
    servers: tuple[str, ...]  # IPv4 addresses of the enabled servers
    port: int
    mark: int
    mask: int
    udp: bool
    ipv6: bool = False  # LAN IPv6 is proxied too
    bypass6: tuple[str, ...] = ()
    servers6: tuple[str, ...] = ()
    # packets with a bit of this mask set were pinned by bonding.dataplane.pinning's table
    # (native: not proxied)
    pin_mask: int = 0

    @property
    def protocols(self) -> tuple[str, ...]:
        return ("tcp", "udp") if self.udp else ("tcp",)

    def mark_statement(self) -> str:
        """Set our bits, keep the others (other software's marks survive)."""
        keep = ~self.mask & 0xFFFFFFFF
        return f"meta mark set meta mark & {keep:#010x} | {self.mark:#010x}"

    def render(self) -> str:
        devices = ", ".join(quote(d) for d in self.lan_devices)
        lines = [
            "# Generated by bondingd from /etc/config/bonding: do not edit (it is rewritten).",
            f"table {FAMILY} {TABLE} {{}}",
            f"delete table {FAMILY} {TABLE}",
            f"table {FAMILY} {TABLE} {{",
            *_set("bypass", "ipv4_addr", self.bypass, interval=True),
            "", *_set("servers", "ipv4_addr", self.servers),
        ]
        if self.ipv6:
            lines += ["", *_set("bypass6", "ipv6_addr", self.bypass6, interval=True),
                      "", *_set("servers6", "ipv6_addr", self.servers6)]
        lines += [
            "",
            "\tchain prerouting {",
            "\t\ttype filter hook prerouting priority mangle; policy accept;",
        ]
        if self.lan_devices:
            lines.append(f"\t\tiifname {{ {devices} }} meta nfproto ipv4 jump lan")
            if self.ipv6:
                lines.append(f"\t\tiifname {{ {devices} }} meta nfproto ipv6 jump lan6")
        lines.append("\t}")
        lines += self._lan_chain("lan", "ip", "broadcast, ", DHCP_PORTS,
                                 f"{LISTEN_ADDRESS}:{self.port}")
        if self.ipv6:
            lines += self._lan_chain("lan6", "ip6", "", DHCP6_PORTS,
                                     f"[{LISTEN_ADDRESS6}]:{self.port}", suffix="6")
        lines += ["}", ""]
        return "\n".join(lines)

    def _lan_chain(self, name: str, ip: str, broadcast: str, dhcp: tuple[int, ...], to: str,
                   suffix: str = "") -> list[str]:
        """What arrives from the LAN in one family (`ip`: ip or ip6): what goes on, and what
        tproxy hands the proxy's listener `to`."""
        lines = [
            "",
            f"\tchain {name} {{",
            "\t\tct direction reply return",
            *([f"\t\tmeta mark & {self.pin_mask:#010x} != 0 return"] if self.pin_mask else []),
            f"\t\tfib daddr type {{ local, {broadcast}anycast, multicast }} return",
            f"\t\t{ip} daddr @bypass{suffix} return",
            f"\t\t{ip} daddr @servers{suffix} return",
            "\t\tudp dport { " + ", ".join(map(str, dhcp)) + " } return",
        ]
        for proto in self.protocols:
            lines.append(f"\t\tmeta l4proto {proto} tproxy {ip} to {to} "
                         f"{self.mark_statement()} accept")
        return [*lines, "\t}"]


def _set(name: str, kind: str, elements: Sequence[str], *, interval: bool = False) -> list[str]:
    lines = [f"\tset {name} {{", f"\t\ttype {kind}"]
    if interval:
        lines += ["\t\tflags interval", "\t\tauto-merge"]
    if elements:
        lines.append("\t\telements = { " + ", ".join(elements) + " }")
    return [*lines, "\t}"]


def quote(name: str) -> str:
    if '"' in name or "\\" in name:
        raise NftError(f"the device name {name!r} cannot be written in an nft string: rename "
                       "it or leave it out of lan_device")
    return f'"{name}"'


def collapse(networks: Sequence[str], version: int = 4) -> tuple[str, ...]:
    """Merge overlapping and adjacent networks (of IP `version`); host routes are written as
    plain addresses."""
    nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
    if version == 6:
        nets = ipaddress.collapse_addresses(ipaddress.IPv6Network(n) for n in networks)
    else:
        nets = ipaddress.collapse_addresses(ipaddress.IPv4Network(n) for n in networks)
    return tuple(str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                 for n in nets)


def _addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(addresses), key=ipaddress.ip_address))


def build(g: Globals, servers: Sequence[str], servers6: Sequence[str] = (), *,
          ipv6: bool = False, pin_mask: int = 0) -> Ruleset:
    """The ruleset for the config's globals and the servers' IPv4 (and IPv6) addresses;
    `ipv6`: LAN IPv6 is proxied too; `pin_mask`: the marks of pinned traffic (left alone)."""
    return Ruleset(lan_devices=tuple(g.lan_devices), bypass=collapse(g.bypass),
                   servers=_addresses(servers),
                   port=g.tproxy_port, mark=g.tproxy_mark, mask=g.tproxy_mask,
                   udp=g.proxy_udp, ipv6=ipv6,
                   bypass6=collapse(g.bypass6, 6) if ipv6 else (),
                   servers6=_addresses(servers6) if ipv6 else (), pin_mask=pin_mask)


REMOVE: Final = (f"# bondingd is not proxying: no table of its own.\n"
                 f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n")


def has_fw4() -> bool:
    """OpenWrt's firewall4 is installed (the ruleset is then also kept as its include)."""
    return any(Path(p).is_file() for p in ("/sbin/fw4", "/usr/sbin/fw4"))


class Renders(Protocol):
    def render(self) -> str: ...


class Removes(Protocol):
    def remove(self) -> None: ...


def remove_quietly(table: Removes, log: logging.Logger, what: str) -> None:
    """Remove a table (ours, or one an earlier bondingd left) where a router without nft is
    fine without it: a failure goes to `log` at debug level only."""
    try:
        table.remove()
    except (NftError, OSError) as e:
        log.debug("nftables: removing %s: %s", what, e)


class Nft:
    """Loads and removes our table; keeps the fw4 include file in step when there is one.

    `remove_text`: the script that removes the table (another table than ``inet bonding``:
    bonding.dataplane.pinning's)."""

    def __init__(self, *, nft: str = "nft", include: Path | None = None,
                 remove_text: str | None = None) -> None:
        self.nft = nft
        self.include = include
        self.remove_text = REMOVE if remove_text is None else remove_text
        self.applied: str | None = None

    def _run(self, text: str) -> None:
        r = command.run([self.nft, "-f", "-"], input=text, error=NftError, what="nft -f",
                        install="nftables (OpenWrt: the nftables package; Debian: apt install "
                        "nftables)", timeout_s=NFT_TIMEOUT_S)
        if r.returncode != 0:
            msg = " ".join(r.stderr.split())[:400]
            if "tproxy" in r.stderr.lower() or "No such file or directory" in r.stderr:
                msg += " (is kmod-nft-tproxy installed?)"
            raise NftError(f"nft -f failed: {msg}")

    def _write_include(self, text: str) -> None:
        if self.include is None:
            return
        self.include.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.include.with_name(self.include.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.include)

    def apply(self, ruleset: Renders) -> bool:
        """Load the table (one transaction); False when it was already loaded as is."""
        text = ruleset.render()
        if text == self.applied:
            return False
        self._run(text)
        self.applied = text
        self._write_include(text)
        return True

    def remove(self) -> None:
        """Delete our table; the fw4 include then deletes it too on a firewall reload."""
        self.applied = None
        self._write_include(self.remove_text)
        self._run(self.remove_text)

    def forget_include(self) -> None:
        """Remove the include file (bondingd stops; fw4 then skips the include)."""
        if self.include is not None:
            with contextlib.suppress(FileNotFoundError):
                self.include.unlink()
