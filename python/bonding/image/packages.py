"""Which OpenWrt packages each `bonding-image` flag puts into the firmware, per release.

The table below is the one place that says it.  Every name was checked against the package
Makefiles of the release branches (openwrt/packages ``openwrt-24.10`` and ``openwrt-25.12``,
openwrt/openwrt ``package/``) and the names agreed for this project's own feed (interfaces.md):

- 24.10 installs with opkg, 25.12 with apk; the imagebuilder takes the same ``PACKAGES`` syntax
  for both (a leading ``-`` removes a package of the default set).  apk also finds ABI-versioned
  libraries by their base name, so the names below are the same on both releases except where an
  entry says otherwise.
- Where a package is not built for a release at all the entry holds `Unavailable` with the
  reason, and asking for it is an error (shadowsocks-libev was dropped from openwrt/packages
  before 24.10 branched, commit 49b83809b3 "shadowsocks-libev: drop the package").
- Variants are named exactly: ``mtr`` is only a virtual name (PROVIDES) of ``mtr-nojson`` and
  ``mtr-json``, which opkg's imagebuilder cannot resolve, so the table says ``mtr-nojson``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

RELEASES: Final = ("24.10", "25.12")
"""Release branches this tool builds for (24.10: opkg, Python 3.11; 25.12: apk, Python 3.13)."""

PACKAGE_MANAGER: Final = {"24.10": "opkg", "25.12": "apk"}


@dataclass(frozen=True)
class Unavailable:
    """A choice that no package of that release provides."""

    reason: str


Entry = tuple[str, ...] | Unavailable


def _same(*packages: str) -> dict[str, Entry]:
    """The same package names on every release."""
    return dict.fromkeys(RELEASES, packages)


# Always installed: the client core (bondingd, hotplug, fw4 include; it pulls python3-bonding,
# ip-full and kmod-nft-tproxy).  `luci-app-bonding` is added unless --no-luci.
BASE: Final[Mapping[str, Entry]] = _same("bonding")
LUCI_APP: Final[Mapping[str, Entry]] = _same("luci-app-bonding")

# The proxy backend bondingd runs (UCI bonding.globals.proxy → package).
PROXIES: Final[Mapping[str, Mapping[str, Entry]]] = {
    "xray": _same("xray-core"),
    # `sing-box` is the full variant; `sing-box-tiny` lacks nothing we use but CONFLICTS with it.
    "sing-box": _same("sing-box"),
    "shadowsocks-libev": dict.fromkeys(RELEASES, Unavailable(
        "shadowsocks-libev is not packaged for OpenWrt 24.10 or 25.12 (dropped from "
        "openwrt/packages before 24.10); use --proxy xray or --proxy sing-box on the router "
        "(the server side speaks the same Shadowsocks AEAD ciphers)")),
}
DEFAULT_PROXY: Final = "sing-box"  # the backend the lab and CI run (real sing-box)

# Feature flags → packages.  Keys are the flag names without the leading "--".
FEATURES: Final[Mapping[str, Mapping[str, Entry]]] = {
    # USB dongle modems that show up as an Ethernet device (Huawei HiLink, ZTE, ...): CDC-ECM,
    # RNDIS and CDC-NCM class drivers, and usb-modeswitch for sticks that first pose as a CD-ROM.
    "usb-modem": _same("bonding-usb", "kmod-usb-net-cdc-ether", "kmod-usb-net-rndis",
                       "kmod-usb-net-cdc-ncm", "usb-modeswitch"),
    # Quectel (and other MBIM-capable) modems: bonding-usb switches them to MBIM over the AT
    # port (option serial driver), cdc_mbim gives the netdev, umbim drives the session.
    "quectel": _same("bonding-usb", "kmod-usb-net-cdc-mbim", "kmod-usb-serial-option", "umbim"),
    # Android USB tethering: RNDIS on most phones, CDC-NCM on newer ones (Android 11+ option).
    "android-tethering": _same("bonding-usb", "kmod-usb-net-rndis", "kmod-usb-net-cdc-ncm",
                               "kmod-usb-net-cdc-ether"),
    # iPhone/iPad tethering: ipheth netdev; usbmuxd (with libimobiledevice) does the pairing
    # handshake the phone needs before it starts the link.
    "ios-tethering": _same("bonding-usb", "kmod-usb-net-ipheth", "usbmuxd", "libimobiledevice"),
    # USB Ethernet adapters: Realtek RTL8152/8153, ASIX AX88179, and CDC-ECM class adapters.
    "usb-ethernet": _same("bonding-usb", "kmod-usb-net-rtl8152", "kmod-usb-net-asix-ax88179",
                          "kmod-usb-net-cdc-ether"),
    # Looking at links from the router: captures, path and socket views (ss -M lists MPTCP
    # sockets with kmod-inet-mptcp-diag), NIC settings, HTTP through a chosen interface.
    "diag-tools": _same("tcpdump", "mtr-nojson", "ss", "kmod-inet-mptcp-diag", "ethtool",
                        "curl", "htop"),
    # Measuring: iperf3 (3.17 on 24.10, 3.20 on 25.12; both have --mptcp) and mptcpize to run
    # any other TCP program over MPTCP.
    "perf-tools": _same("iperf3", "mptcpize"),
}

# Removals (imagebuilder "-name"): --no-luci drops the LuCI meta package of release images.
NO_LUCI_REMOVALS: Final[Mapping[str, Entry]] = _same("-luci")


def luci_language(release: str, lang: str) -> tuple[str, ...]:
    """LuCI's own translation for --luci-lang (same name on both releases)."""
    del release
    return (f"luci-i18n-base-{lang}",)


class PackageError(ValueError):
    """A combination no release can install."""


def _take(entry: Entry, what: str) -> tuple[str, ...]:
    if isinstance(entry, Unavailable):
        raise PackageError(f"{what}: {entry.reason}")
    return entry


def resolve(release: str, *, proxy: str, features: Sequence[str], luci: bool = True,
            luci_lang: str | None = None) -> list[str]:
    """The imagebuilder/ASU package list: additions in a stable order, each once, then the
    removals.  `features` are FEATURES keys."""
    if release not in RELEASES:
        raise PackageError(f"release {release!r}: use one of {', '.join(RELEASES)}")
    if proxy not in PROXIES:
        raise PackageError(f"proxy {proxy!r}: use one of {', '.join(PROXIES)}")
    out: list[str] = []

    def add(names: Sequence[str]) -> None:
        for n in names:
            if n not in out:
                out.append(n)

    add(_take(BASE[release], "bonding"))
    if luci:
        add(_take(LUCI_APP[release], "luci-app-bonding"))
    add(_take(PROXIES[proxy][release], f"--proxy {proxy}"))
    for f in FEATURES:  # table order, whatever order the flags came in
        if f in features:
            add(_take(FEATURES[f][release], f"--{f}"))
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise PackageError(f"unknown feature(s): {', '.join(unknown)}")
    if luci and luci_lang:
        add(luci_language(release, luci_lang))
    if not luci:
        add(_take(NO_LUCI_REMOVALS[release], "--no-luci"))
    return out
