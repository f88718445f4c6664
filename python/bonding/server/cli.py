"""bonding-server: the aggregation server's command line (a Debian/Ubuntu VPS, or the lab).

In the lab (no systemd; run inside the server's network namespace, as root)::

    ip netns exec NS bonding-server --state-dir DIR init --no-systemd \\
        --public-address 203.0.113.10
    ip netns exec NS bonding-server --state-dir DIR add-client --name lab --json
    ip netns exec NS bonding-server --state-dir DIR run &      # the foreground supervisor

`add-client --json` prints {"name", "address", "port", "protocol", "cipher", "key",
"rate_mbit", "udp_over_tcp"}; `run` starts one proxy per client (sing-box, the default when it
is installed, or ``mptcpize run ss-server``: `init --proxy`), restarts one that dies, re-reads
the records on SIGHUP (add-client and remove-client send it) and stops them all on SIGTERM.
On a VPS with systemd: ``bonding-server init`` then ``bonding-server add-client``; each
client's proxy is the unit ``bonding-server@NAME.service``.

Commands: init, add-client, remove-client, show-client, list, status, apply, start, stop, run,
guard.
`status --json`: {"address", "proxy", "mode": "supervisor"|"systemd", "supervisor_pid",
"refused_packets", "clients": [{"name", "port", "rate_mbit", "running", "state", "pid",
"restarts", "listening", "connections" (MPTCP), "subflows" (TCP), "bytes_in", "bytes_out"}]}
(bytes of the client's port, from nft counters: in = client → server).  `list --json`:
{"clients": [{"name", "port", "rate_mbit", "cipher", "created"}]}; no command prints a key
except add-client and show-client.  One bonding-server per network namespace (its nft table
and ifb device have fixed names).
Client ports come from 65101–65534 (the first free one unless --port is given).  Exit codes:
0 done, 1 runtime failure (not root, missing tool, not set up, a command failed), 2 usage error
(bad name, rate, port or address; unknown client; duplicate name; port taken).  Errors go to
stderr (with --json also as {"error": …, "exit": N} on stdout); client records are never left
changed by a failed command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bonding import __version__
from bonding.server import reconcile, service
from bonding.server.model import (
    DEFAULT_CIPHER,
    DEFAULT_CONGESTION,
    PORT_FIRST,
    PORT_LAST,
    PROXIES,
    ServerError,
    UsageError,
    client_json,
    client_uci,
    validate_address,
    validate_address6,
    validate_cipher,
    validate_interface,
    validate_name,
    validate_network,
    validate_port,
    validate_rate,
    validate_user,
)
from bonding.server.store import Store
from bonding.server.system import Host, HostAPI

DEFAULT_STATE_DIR = "/etc/bonding-server"
PROG = "bonding-server"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON for machines")
    p = argparse.ArgumentParser(
        prog=PROG, description="Aggregation server for bonding routers: one MPTCP "
        "Shadowsocks proxy (sing-box or ss-server) per client, each with its own port, key and "
        "rate limit.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help="settings and client records (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    init = sub.add_parser("init", parents=[common], help="set up sysctls, MPTCP limits, "
                          "firewall, shaping and systemd units (idempotent)")
    init.add_argument("--public-address", metavar="ADDR",
                      help="address the clients connect to (default: the routing table's)")
    init.add_argument("--public-address6", metavar="ADDR6",
                      help="this server's global IPv6 address, for the clients: add-client then "
                      "prints it (option address6) and the routers proxy their LAN's IPv6 "
                      "through this server (default: the stored one, none at first)")
    init.add_argument("--clear-address6", action="store_true",
                      help="forget the IPv6 address (the routers then route their LAN's IPv6 "
                      "natively)")
    mode = init.add_mutually_exclusive_group()
    mode.add_argument("--no-systemd", dest="systemd", action="store_false", default=None,
                      help="no units: `bonding-server run` supervises the proxies (the lab)")
    mode.add_argument("--systemd", dest="systemd", action="store_true", default=None,
                      help="one unit per client (default where systemd runs)")
    init.add_argument("--user", metavar="PREFIX", help="each client's proxy runs as its own "
                      "system user PREFIX-PORT, created when the client is added (default "
                      f"prefix: {service.DEFAULT_USER})")
    init.add_argument("--interface", metavar="DEV",
                      help="device facing the clients, for rate limits (default: the "
                      "default route's)")
    init.add_argument("--allow", metavar="CIDR", action="append",
                      help="a network the proxies may reach despite the block list "
                      "(repeatable; replaces the stored list)")
    init.add_argument("--clear-allow", action="store_true", help="forget the --allow list")
    init.add_argument("--proxy", choices=PROXIES,
                      help="the clients' proxy (default: the stored choice; at the first init "
                      "sing-box when it is installed, else shadowsocks-libev)")
    init.add_argument("--congestion-control", metavar="NAME",
                      help="TCP congestion control of the clients' connections, put on their "
                      "routes only (default: the stored choice; at the first init "
                      f"{DEFAULT_CONGESTION}, which fills bonded downloads best); '' keeps the "
                      "host's default")

    add = sub.add_parser("add-client", parents=[common],
                         help="new client: key, port, limit; prints its UCI")
    add.add_argument("--name", help="UCI section name: 1–32 of [A-Za-z0-9_] "
                     "(default: client1, client2, …)")
    add.add_argument("--rate-mbit", metavar="R", help="rate limit in Mbit/s, each direction "
                     "(default: none)")
    add.add_argument("--port", metavar="P", help=f"TCP/UDP port (default: the first free of "
                     f"{PORT_FIRST}–{PORT_LAST})")
    add.add_argument("--cipher", metavar="C", help="Shadowsocks cipher (default: "
                     f"{DEFAULT_CIPHER['sing-box']} with sing-box, "
                     f"{DEFAULT_CIPHER['shadowsocks-libev']} with shadowsocks-libev; "
                     "2022-blake3-chacha20-poly1305 for routers without AES instructions)")
    rm = sub.add_parser("remove-client", parents=[common], help="stop and forget a client")
    rm.add_argument("name")
    show = sub.add_parser("show-client", parents=[common], help="print a client's UCI again")
    show.add_argument("name")
    sub.add_parser("list", parents=[common], help="the clients (no keys)")
    sub.add_parser("status", parents=[common],
                   help="per client: running, connections, subflows, bytes in/out")
    sub.add_parser("apply", parents=[common], help="re-apply firewall, shaping and kernel "
                   "settings from the records (what the boot unit runs)")
    sub.add_parser("start", parents=[common], help="start the proxies (systemd units, or a "
                   "background supervisor)")
    sub.add_parser("stop", parents=[common], help="stop the proxies")
    sub.add_parser("run", parents=[common], help="foreground supervisor without systemd")
    sub.add_parser("guard", parents=[common], help="the handshake guard over the systemd "
                   "units' proxies (the unit bonding-server-guard.service runs it)")
    return p


# What _prevalidate checks of each command's options, in order (None: the option not given).
_PRECHECKS: dict[str, tuple[tuple[str, Callable[[Any], object]], ...]] = {
    "init": (("public_address", validate_address), ("public_address6", validate_address6),
             ("user", validate_user), ("interface", validate_interface)),
    "add-client": (("name", validate_name), ("rate_mbit", validate_rate), ("port", validate_port),
                   # the full list; the server's own is checked when it is known
                   ("cipher", lambda c: validate_cipher(c, "sing-box"))),
}


def _prevalidate(args: argparse.Namespace) -> None:
    """Check what the user typed before anything else (so a typo is named even as non-root)."""
    for attr, check in _PRECHECKS.get(args.cmd, ()):
        if getattr(args, attr) is not None:
            check(getattr(args, attr))
    if args.cmd == "init":
        for a in args.allow or ():
            validate_network(a)
        if args.allow and args.clear_allow:
            raise UsageError("--allow and --clear-allow contradict each other: give one")
        if args.public_address6 is not None and args.clear_address6:
            raise UsageError("--public-address6 and --clear-address6 contradict each other: "
                             "give one")
    elif args.cmd in ("remove-client", "show-client"):
        validate_name(args.name)


def _print_steps(cmd: str, out: reconcile.Outcome) -> None:
    for s in out.steps:
        mark = "changed  " if s.changed else "unchanged"
        print(f"  {mark} {s.what}" + (f": {s.detail}" if s.detail else ""))
    n = sum(s.changed for s in out.steps)
    print(f"{PROG} {cmd}: " + (f"{n} change(s) applied" if n else
                               "nothing to change, already set up as asked"))


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)


def _rate(r: float | None) -> str:
    return "-" if r is None else f"{r:g}"


def _init(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    allow = () if args.clear_allow else (tuple(args.allow) if args.allow else None)
    out = service.init(host, store, service.InitOptions(
        public_address=args.public_address,
        public_address6="" if args.clear_address6 else args.public_address6,
        systemd=args.systemd, user=args.user,
        interface=args.interface, allow=allow, proxy=args.proxy,
        congestion_control=args.congestion_control))
    _notes(out.notes)
    if not args.json:
        _print_steps(args.cmd, out)
    return {"changed": out.changed, "steps": [s.to_json() for s in out.steps]}


def _apply(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    out = service.apply(host, store)
    if not args.json:
        _print_steps(args.cmd, out)
    return {"changed": out.changed, "steps": [s.to_json() for s in out.steps]}


def _add_client(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    client, cfg, notes = service.add_client(host, store, service.AddOptions(
        name=args.name, rate_mbit=args.rate_mbit, port=args.port, cipher=args.cipher))
    _notes(notes)
    if not args.json:
        sys.stdout.write(client_uci(client, cfg))
    return client_json(client, cfg)


def _show_client(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    client, cfg = service.show_client(store, args.name)
    if not args.json:
        sys.stdout.write(client_uci(client, cfg))
    return client_json(client, cfg)


def _remove_client(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    port = store.load(args.name).port if store.exists(args.name) else None
    notes = service.remove_client(host, store, args.name)
    _notes(notes)
    if not args.json:
        print(f"removed client '{args.name}' (port {port})")
    return {"removed": args.name, "port": port}


def _list(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    rows = service.list_clients(store)
    if not args.json:
        print(f"{'NAME':32} {'PORT':>5} {'RATE_MBIT':>9}  CREATED")
        for r in rows:
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
            print(f"{r['name']:32} {r['port']:>5} {_rate(r['rate_mbit']):>9}  {created}")
    return {"clients": rows}


def _status(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    st = service.status(host, store, service.socket_counts)
    if not args.json:
        print(f"server {st['address']}, proxy {st['proxy']}, {st['mode']}"
              + (f" (pid {st['supervisor_pid']})" if st["supervisor_pid"] else "")
              + f", packets refused by the firewall: {st['refused_packets']}")
        print(f"{'NAME':20} {'PORT':>5} {'RATE':>6} {'STATE':13} {'PID':>7} {'RESTARTS':>8} "
              f"{'CONNS':>5} {'SUBFL':>5} {'IN':>10} {'OUT':>10}")
        for r in st["clients"]:
            restarts = "-" if r["restarts"] is None else r["restarts"]
            print(f"{r['name']:20} {r['port']:>5} {_rate(r['rate_mbit']):>6} "
                  f"{r['state']:13} {r['pid'] or '-':>7} {restarts:>8} {r['connections']:>5} "
                  f"{r['subflows']:>5} {_fmt_bytes(r['bytes_in']):>10} "
                  f"{_fmt_bytes(r['bytes_out']):>10}")
    return st


def _start(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    out = service.start(host, store)
    _notes(out.notes)
    if not args.json:
        _print_steps(args.cmd, out)
    return {"changed": out.changed, "steps": [s.to_json() for s in out.steps],
            "notes": out.notes}


def _stop(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    notes = service.stop(host, store)
    if not args.json:
        _notes(notes)
    return {"notes": notes}


def _run(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    from bonding.server.supervisor import Supervisor

    return {"exit": Supervisor(store, host).run()}


def _guard(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    from bonding.server import guard

    return {"exit": guard.run_forever(host, store)}


# command → what runs it: returns what --json prints, and prints the human form otherwise
_COMMANDS: dict[str, Callable[[argparse.Namespace, HostAPI, Store], Any]] = {
    "init": _init, "apply": _apply, "add-client": _add_client, "show-client": _show_client,
    "remove-client": _remove_client, "list": _list, "status": _status, "start": _start,
    "stop": _stop, "run": _run, "guard": _guard,
}


def dispatch(args: argparse.Namespace, host: HostAPI, store: Store) -> Any:
    """Run the command; return what --json prints (and print the human form otherwise)."""
    run = _COMMANDS.get(args.cmd)
    if run is None:
        raise UsageError(f"unknown command {args.cmd!r}")  # argparse prevents this
    return run(args, host, store)


def _notes(notes: Sequence[str]) -> None:
    for n in notes:
        print(f"{PROG}: {n}", file=sys.stderr)


def main(argv: Sequence[str] | None = None, host: HostAPI | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    if not hasattr(args, "json"):
        args.json = False
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"{PROG}: %(message)s")
    try:
        _prevalidate(args)
        if os.geteuid() != 0:
            raise ServerError(f"{PROG} must run as root: it changes nftables, tc and sysctls "
                              "and keeps the client keys in 0600 files (try sudo)")
        result = dispatch(args, host or Host(), Store(Path(args.state_dir)))
    except ServerError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(e), "exit": e.exit_code}))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    if args.json and args.cmd not in ("run", "guard"):
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
