"""bonding-image: turn a server's client entry into a ready OpenWrt firmware build.

Input: the client entry that `bonding-server add-client` printed (text or --json), or the
server's address, port and key given directly; flags for the hardware and extras the router
needs.  Output, into --output DIR: the first-boot script (uci-defaults), the package list, the
ASU build request and an imagebuilder script; the exact `make image` line is printed.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bonding import __version__
from bonding.image import build, client, packages, setup_script

PROG = "bonding-image"

_EPILOG = f"""\
WAN ports: OpenWrt's own 'wan' interface (when the board has one) stays as it is and is bonded.
Each --wan PORT adds one more WAN: the port leaves the LAN bridge and becomes DHCP interface
wanN (wan2, wan3, ... in flag order) in the firewall's wan zone.  Every other port stays where
it is, and the LAN address changes only with --lan-ip.  A port that is the LAN's own device or
the last port of its bridge is not moved (the router logs it: logread -e bonding-setup).

Package names per flag and release are in bonding/image/packages.py; 24.10 builds with opkg,
25.12 with apk.  The bonding packages are not in OpenWrt's own feeds: imagebuilder.sh takes them
from a local folder, and ASU needs --feed-url (an ASU server that allows that feed).

The outputs hold the server key (99-bonding-setup, files/, asu-request.json are mode 0600), and
so does the firmware built from them: keep them private.  Sending asu-request.json to an ASU
server (sysupgrade.openwrt.org or another) hands that server the key: it builds the image with
it and may keep both.  Build with imagebuilder.sh on your own machine to keep the key there.

examples:
  bonding-server add-client --name home > home.txt        (on the server)
  {PROG} --client home.txt --usb-modem --wan lan4 --release 24.10 \\
      --target mediatek/filogic --profile glinet_gl-mt6000 --output out/
  {PROG} --server 203.0.113.10 --port 65101 --key-file key.txt --no-luci --diag-tools \\
      --release 25.12.2 --target x86/64 --profile generic --output out/
"""


class _Once(argparse.Action):
    """A single-valued option that may be given once: a second one is an error, not a
    silent override (two --proxy flags are a conflict)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                  values: Any, option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice: give it once")
        setattr(namespace, self.dest, values)


class _OnceFlag(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if getattr(namespace, self.dest):
            parser.error(f"{option_string} given twice")
        setattr(namespace, self.dest, True)


_FEATURE_HELP = {
    "usb-modem": "USB dongle modems that appear as an Ethernet device (HiLink etc.: CDC-ECM, "
                 "RNDIS, CDC-NCM drivers, usb-modeswitch); each becomes a DHCP WAN by itself",
    "quectel": "Quectel (MBIM-capable) modems: switched to MBIM and brought up with umbim",
    "android-tethering": "Android USB tethering (RNDIS, CDC-NCM)",
    "ios-tethering": "iPhone/iPad USB tethering (ipheth, usbmuxd, libimobiledevice)",
    "usb-ethernet": "USB Ethernet adapters (RTL8152/8153, AX88179, CDC-ECM)",
    "diag-tools": "diagnostic tools: tcpdump, mtr, ss (with MPTCP diag), ethtool, curl, htop",
    "perf-tools": "measuring tools: iperf3, mptcpize",
}
_USB_FEATURES = ("usb-modem", "quectel", "android-tethering", "ios-tethering", "usb-ethernet")

_PORT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
_LANG_RE = re.compile(r"[a-z]{2,3}(-[a-z]{2,4})?")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make an OpenWrt firmware build that comes up bonded: from the client\n"
                    "entry of `bonding-server add-client` and what the router has, write the\n"
                    "first-boot setup script, the package list, an ASU build request and an\n"
                    "imagebuilder script into --output DIR.",
        epilog=_EPILOG)
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")

    g = p.add_argument_group("server (a client entry, or the server given directly)")
    g.add_argument("--client", metavar="FILE", action="append", default=[],
                   help="the output of `bonding-server add-client` (UCI text or --json), '-' "
                        "for standard input; repeat for more servers (failover)")
    g.add_argument("--server", metavar="ADDR", action=_Once,
                   help="the server's IP address or host name (instead of --client)")
    g.add_argument("--port", metavar="N", action=_Once, help="the server's port (with --server)")
    g.add_argument("--key", metavar="K", action=_Once,
                   help="the client's key (with --server; --key-file keeps it out of the "
                        "shell history)")
    g.add_argument("--key-file", metavar="FILE", action=_Once,
                   help="read the key from FILE (with --server)")
    g.add_argument("--cipher", metavar="C", action=_Once,
                   help=f"the cipher (with --server; default {client.DEFAULT_CIPHER})")
    g.add_argument("--name", metavar="N", action=_Once,
                   help="the server's section name (with --server; default vps1)")

    g = p.add_argument_group("hardware and extras")
    for name, text in _FEATURE_HELP.items():
        g.add_argument(f"--{name}", action=_OnceFlag, help=text)
    g.add_argument("--no-luci", action=_OnceFlag,
                   help="no web interface: removes LuCI (-luci) and leaves out luci-app-bonding")
    g.add_argument("--luci-lang", metavar="LANG", action=_Once,
                   help="add LuCI's translation for LANG (e.g. de, fr, pt-br)")
    g.add_argument("--proxy", choices=list(packages.PROXIES), action=_Once,
                   help=f"the proxy bondingd runs (default {packages.DEFAULT_PROXY}); "
                        "shadowsocks-libev is refused: OpenWrt 24.10/25.12 have no package")

    g = p.add_argument_group("ports")
    g.add_argument("--wan", metavar="PORT", action="append", default=[],
                   help="make PORT (its device name: lan4, eth2, ...; `ls /sys/class/net` on "
                        "the router) one more WAN; repeatable; see WAN ports below")
    g.add_argument("--lan-ip", metavar="ADDR/PREFIX", action=_Once,
                   help="set the LAN address (e.g. 192.168.4.1/24); unchanged without it")

    g = p.add_argument_group("image")
    g.add_argument("--release", metavar="REL", action=_Once,
                   help="OpenWrt 24.10 or 25.12, or a point release such as 24.10.6 (a bare "
                        f"branch means {build.POINT_RELEASES['24.10']} / "
                        f"{build.POINT_RELEASES['25.12']} in the ASU request); default 24.10")
    g.add_argument("--target", metavar="T/S", action=_Once,
                   help="target/subtarget, e.g. mediatek/filogic (required)")
    g.add_argument("--profile", metavar="P", action=_Once,
                   help="the imagebuilder profile of the device, e.g. glinet_gl-mt6000 "
                        "(`ubus call system board` → board_name, ',' written '_'; required)")
    g.add_argument("--feed-url", metavar="URL", action=_Once,
                   help="where ASU finds the bonding feed: the folder with Packages.gz (24.10) "
                        "or the packages.adb URL (25.12)")
    g.add_argument("--feed-key", metavar="FILE", action=_Once,
                   help="the feed's public key: usign key.pub (24.10) or PEM (25.12)")
    g.add_argument("--output", metavar="DIR", action=_Once, help="where to write (required)")
    return p


def _read(path: str, what: str, stdin_used: list[bool]) -> str:
    if path == "-":
        if stdin_used[0]:
            raise client.ClientError(f"{what}: standard input can be read once")
        stdin_used[0] = True
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise client.ClientError(f"{what} {path}: cannot read: {e}") from None


def _servers(args: argparse.Namespace, fail: Any) -> list[client.ServerEntry]:
    direct = [f for f in ("server", "port", "key", "key_file", "cipher", "name")
              if getattr(args, f) is not None]
    stdin_used = [False]
    if args.client and direct:
        fail("--client and --" + direct[0].replace("_", "-") + " do not go together: the "
             "client entry says the server, port, key and cipher")
    entries: list[client.ServerEntry] = []
    if args.client:
        for path in args.client:
            text = _read(path, "--client", stdin_used)
            entries += client.parse(text, "stdin" if path == "-" else path)
    elif direct:
        missing = [f"--{f}" for f in ("server", "port") if getattr(args, f) is None]
        if args.key is None and args.key_file is None:
            missing.append("--key or --key-file")
        if missing:
            fail("--server needs " + ", ".join(missing))
        if args.key is not None and args.key_file is not None:
            fail("--key and --key-file do not go together: give one")
        key = args.key if args.key is not None else _read(args.key_file, "--key-file",
                                                          stdin_used).strip()
        opts = {"address": args.server, "port": args.port,
                "cipher": args.cipher or client.DEFAULT_CIPHER}
        entries.append(client.make_entry("--server", args.name or "vps1", opts, key))
    else:
        fail("no server: give --client FILE (from `bonding-server add-client`) or --server "
             "ADDR --port N --key K")
    seen: set[str] = set()
    for e in entries:
        if e.name in seen:
            fail(f"two servers are named '{e.name}': each needs its own name "
                 "(add-client --name)")
        seen.add(e.name)
    return entries


def _plan(args: argparse.Namespace, fail: Any) -> tuple[setup_script.Plan, list[str]]:
    servers = _servers(args, fail)
    release = build.parse_release(args.release or "24.10")
    proxy = args.proxy or packages.DEFAULT_PROXY
    features = [f for f in _FEATURE_HELP if getattr(args, f.replace("-", "_"))]
    if args.no_luci and args.luci_lang:
        fail("--no-luci and --luci-lang do not go together: there is no LuCI to translate")
    if args.luci_lang is not None and not _LANG_RE.fullmatch(args.luci_lang):
        fail(f"--luci-lang {args.luci_lang!r}: a LuCI language code such as de, fr, zh-cn")
    if args.luci_lang == "en":
        fail("--luci-lang en: LuCI is in English already (there is no luci-i18n-base-en)")

    ports: list[str] = []
    for port in args.wan:
        if not _PORT_RE.fullmatch(port):
            fail(f"--wan {port!r}: a network device name (letters, digits, '.', '_', '-'; at "
                 "most 15), like lan4 or eth2")
        if port == "lo" or port.startswith("br-"):
            fail(f"--wan {port!r}: a port, not a bridge or loopback")
        if port in ports:
            fail(f"--wan {port} given twice")
        ports.append(port)
    if len(ports) > setup_script.MAX_WANS:
        fail(f"{len(ports)} --wan ports: at most {setup_script.MAX_WANS}")

    lan_ip = None
    if args.lan_ip is not None:
        if "/" not in args.lan_ip:
            fail(f"--lan-ip {args.lan_ip!r}: give the prefix too, e.g. {args.lan_ip}/24")
        try:
            lan_ip = ipaddress.IPv4Interface(args.lan_ip)
        except ValueError:
            fail(f"--lan-ip {args.lan_ip!r}: not an IPv4 address with prefix (192.168.4.1/24)")
        assert lan_ip is not None
        net = lan_ip.network
        if net.prefixlen > 30 or lan_ip.ip in (net.network_address, net.broadcast_address):
            fail(f"--lan-ip {args.lan_ip}: not a usable router address in {net}")

    plan = setup_script.Plan(
        servers=tuple(servers), proxy=proxy, wan_ports=tuple(ports),
        usb_auto_dhcp=any(f in features for f in _USB_FEATURES),
        modem_mbim="quectel" in features, lan_ip=lan_ip, release=release.branch)
    taken = {n: "a path" for n in plan.path_names()} | {"globals": "a section", "usb": "a section"}
    for s in servers:
        if s.name in taken:
            fail(f"server name '{s.name}' is also {taken[s.name]} name in /etc/config/bonding: "
                 "give the client another name (add-client --name, or --name)")
    summary = [
        f"OpenWrt {release.branch} ({release.package_manager}), proxy {proxy}.",
        "Servers: " + ", ".join(f"{s.name} ({s.address}:{s.port}, {s.protocol} {s.cipher})"
                                for s in servers) + ".",
        "WAN: OpenWrt's 'wan'" + "".join(f", {p} as {i}" for p, i, _ in plan.wan_interfaces())
        + ".",
        f"USB: auto DHCP {'on' if plan.usb_auto_dhcp else 'off'}, MBIM switching "
        f"{'on' if plan.modem_mbim else 'off'}."
        + (f" LAN address: {lan_ip}." if lan_ip is not None else ""),
    ]
    plan = setup_script.Plan(**{**plan.__dict__, "summary": tuple(summary)})
    return plan, features


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(msg: str) -> NoReturn:
        parser.error(msg)

    for req in ("target", "profile", "output"):
        if getattr(args, req) is None:
            fail(f"--{req} is required")
    try:
        plan, features = _plan(args, fail)
        release = build.parse_release(args.release or "24.10")
        build.check_target(args.target, args.profile)
        pkgs = packages.resolve(release.branch, proxy=plan.proxy, features=features,
                                luci=not args.no_luci, luci_lang=args.luci_lang)
        feed = None
        if args.feed_url is not None:
            key_text = None
            if args.feed_key is not None:
                key_text = _read(args.feed_key, "--feed-key", [False])
            feed = build.make_feed(release, args.feed_url, key_text, args.feed_key or "")
        elif args.feed_key is not None:
            fail("--feed-key goes with --feed-url")
        script = setup_script.render(plan)
        asu = build.asu_request(release=release, target=args.target, profile=args.profile,
                                packages=pkgs, defaults=script, feed=feed)
        ib = build.imagebuilder_script(release=release, target=args.target,
                                       profile=args.profile, packages=pkgs)
    except (client.ClientError, build.BuildError, packages.PackageError) as e:
        fail(str(e))

    out = Path(args.output)
    try:
        written = build.write_outputs(out, script=script, packages=pkgs, asu=asu, ib_script=ib)
    except OSError as e:
        print(f"{PROG}: cannot write into {out}: {e}", file=sys.stderr)
        return 1
    files_dir = str((out / "files").resolve())
    print(f"{PROG} {__version__}: OpenWrt {release.version} {args.target} {args.profile}")
    for what, path in written.items():
        print(f"  {what:<12} {path}")
    print("packages:", " ".join(pkgs))
    print("imagebuilder (in its folder, after copying the bonding packages into packages/):")
    print("  " + build.make_command(args.profile, pkgs, files_dir))
    if release.defaulted:
        print(f"note: the ASU request asks for {release.version}, the newest {release.branch} "
              f"release known to this tool; --release {release.branch}.N picks another",
              file=sys.stderr)
    print("note: asu-request.json holds the server key: an ASU server you send it to gets the "
          "key (and builds it into the image); imagebuilder.sh keeps it on this machine",
          file=sys.stderr)
    if feed is None:
        print("note: the bonding packages are not in OpenWrt's feeds: ASU can build "
              "asu-request.json only with --feed-url (and a server that allows that feed)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
