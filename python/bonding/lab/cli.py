"""bonding-lab: build, describe, drive and remove the network-namespace lab."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bonding import __version__
from bonding.lab.demo import run_demo
from bonding.lab.owrt.lab import MANAGERS
from bonding.lab.topology import PROXY_BACKEND, PROXY_TOOLS, Lab, LabError, parse_links

DEFAULT_LINKS = "50/10ms,30/20ms,20/40ms"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bonding-lab",
        description="A bonding router and its world in network namespaces (root). Links are "
                    "RATE[/DELAYms]: Mbit/s shaped with tbf both ways, one-way delay in ms "
                    "(the link adds twice that to the RTT).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--prefix", default="bl", help="namespace name prefix (default: %(default)s)")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the lab and start bondingd in the router")
    up.add_argument("--links", default=DEFAULT_LINKS, help="default: %(default)s")
    up.add_argument("--no-daemon", action="store_true", help="do not start bondingd")
    up.add_argument("--no-proxy", action="store_true",
                    help="no data plane and no bonding-server: bondingd for the router's own "
                         "traffic only")
    up.add_argument("--servers", type=int, choices=[1, 2], default=1,
                    help="aggregation servers (2: server failover; default: %(default)s)")
    up.add_argument("--proxy", default=PROXY_BACKEND, choices=sorted(PROXY_TOOLS),
                    help="the proxy on the router and the server (default: %(default)s)")
    up.add_argument("--tunnel6", action="store_true",
                    help="the router's proxy reaches the server by its IPv6 address: the bonded "
                         "connections run over the links' IPv6")
    _openwrt_options(up)
    up.add_argument("--json", action="store_true", help="describe the lab as JSON")
    sub.add_parser("down", help="kill everything in the lab and remove its namespaces")
    d = sub.add_parser("describe", help="namespaces, links, addresses, bondingd's files")
    d.add_argument("--json", action="store_true")
    sub.add_parser("status", help="bondingd's status.json")
    f = sub.add_parser("link", help="faults on a link: blackhole, loss PCT, carrier down/up, "
                                    "clear")
    f.add_argument("name", help="wan1, wan2, …")
    f.add_argument("action", choices=["blackhole", "blackhole4", "blackhole6", "loss", "clear",
                                      "carrier-down", "carrier-up"],
                   help="blackhole4/blackhole6: drop only IPv4 or only IPv6")
    f.add_argument("pct", nargs="?", type=int, help="loss in percent (with 'loss')")
    sv = sub.add_parser("server", help="faults on an aggregation server: stop (its proxies), "
                                       "start, blackhole (drop all it receives), clear")
    sv.add_argument("role", choices=["server", "server2"])
    sv.add_argument("action", choices=["stop", "start", "blackhole", "clear"])
    demo = sub.add_parser("demo", help="build the full path, transfer LAN host → target, "
                                       "kill a link, restore it, tear down")
    demo.add_argument("--links", default=DEFAULT_LINKS, help="default: %(default)s")
    demo.add_argument("--victim", default=None, help="the link to kill (default: the first)")
    demo.add_argument("--proxy", default=PROXY_BACKEND, choices=sorted(PROXY_TOOLS),
                      help="the proxy on the router and the server (default: %(default)s)")
    _openwrt_options(demo)
    return p


def _openwrt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--openwrt", nargs="?", const="opkg", choices=MANAGERS, metavar="opkg|apk",
                   help="the router is an OpenWrt router: procd, netifd (DHCP WANs, the last "
                        "one static), fw4, LuCI, our packages installed by opkg (OpenWrt "
                        "24.10's, the default) or apk (25.12's), bondingd under procd with no "
                        "path sections (IPv4 only)")
    p.add_argument("--owrt-prefix", default=None, metavar="DIR",
                   help="the OpenWrt userland for --openwrt (tools/owrt-userland.sh; default: "
                        "$OWRT_PREFIX, else /opt/owrt)")


def _print_description(desc: dict[str, object]) -> None:
    print(f"lab '{desc['prefix']}', router: {desc['router']}")
    for ns in desc["namespaces"]:  # type: ignore[attr-defined]
        print(f"  {ns['role']:8} {ns['name']:14} {' '.join(ns['addresses'])}")
    print("links:")
    for x in desc["links"]:  # type: ignore[attr-defined]
        print(f"  {x['name']}: {x['rate_mbit']:g} Mbit/s, +{x['rtt_added_ms']:g} ms RTT, "
              f"router {x['router_device']} {x['router_address']} → gateway {x['gateway']} "
              f"in {x['isp_namespace']}")
    b = desc["bondingd"]
    print(f"bondingd: pid {b['pid']} in {b['namespace']}, "  # type: ignore[index]
          f"status {b['status']}, log {b['log']}")  # type: ignore[index]
    luci: dict[str, str] | None = desc.get("luci")  # type: ignore[assignment]
    if luci:
        print(f"LuCI: {luci['url']} from the LAN host (login {luci['user']}, password "
              f"{luci['password']})")
    srv = desc["server"]["bonding_server"]  # type: ignore[index]
    if srv:
        print(f"bonding-server: state {srv['state_dir']}, client '{srv['client']}' on port "
              f"{srv['port']}, pid {srv['pid']}, log {srv['log']}")
        print(f"proxy: {desc['proxy']['backend']} on {desc['proxy']['lan_device']}, "  # type: ignore[index]
              f"keys in {desc['proxy']['secrets']}")  # type: ignore[index]
    else:
        print("no data plane (built with --no-proxy)")
    servers: list[dict[str, object]] = desc.get("servers", [])  # type: ignore[assignment]
    for x in servers[1:]:
        print(f"{x['role']}: {x['address']} (section '{x['section']}'), port {x['port']}, "
              f"pid {x['pid']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        lab = Lab(args.prefix)
        if args.cmd in ("up", "describe"):
            if args.cmd == "up":
                lab.up(parse_links(args.links), daemon=not args.no_daemon,
                       proxy=not args.no_proxy, backend=args.proxy, servers=args.servers,
                       tunnel6=args.tunnel6, openwrt=args.openwrt is not None,
                       owrt=args.owrt_prefix, manager=args.openwrt or "opkg")
            desc = lab.describe()
            if args.json:
                print(json.dumps(desc, indent=2))
            else:
                _print_description(desc)
        elif args.cmd == "down":
            removed = lab.down()
            print(f"removed {len(removed)} namespaces" + (": " + " ".join(removed)
                                                          if removed else ""))
        elif args.cmd == "status":
            print(json.dumps(lab.status(), indent=2))
        elif args.cmd == "link":
            if args.action.startswith("blackhole"):
                family = args.action.removeprefix("blackhole")
                lab.blackhole(args.name, int(family) if family else None)
            elif args.action == "loss":
                if args.pct is None:
                    raise LabError("loss needs a percentage: bonding-lab link wan1 loss 5")
                lab.loss(args.name, args.pct)
            elif args.action == "clear":
                lab.clear(args.name)
            else:
                lab.carrier(args.name, args.action == "carrier-up")
        elif args.cmd == "server":
            if args.role not in lab.server_roles():
                raise LabError(f"no {args.role} in this lab: build it with --servers 2")
            if args.action == "stop":
                lab.stop_server(args.role)
            elif args.action == "start":
                lab.start_server(args.role)
            else:
                lab.server_blackhole(args.role, args.action == "blackhole")
        elif args.cmd == "demo":
            return run_demo(parse_links(args.links), prefix=args.prefix, victim=args.victim,
                            backend=args.proxy, openwrt=args.openwrt is not None,
                            owrt=args.owrt_prefix, manager=args.openwrt or "opkg")
    except LabError as e:
        print(f"bonding-lab: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
