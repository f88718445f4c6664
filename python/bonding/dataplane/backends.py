"""Proxy backends generated from UCI: what to run and the config file it reads.

Every backend listens on 127.0.0.1:tproxy_port for the connections and datagrams nftables hands
it by tproxy (and on [::1]:tproxy_port for IPv6 ones when LAN IPv6 is proxied:
:func:`bonding.dataplane.nft.lan_ipv6`; ss-redir takes one address, so it runs twice, under
bonding.dataplane.twin), and speaks Shadowsocks (an AEAD cipher: encrypted and
authenticated) over Multipath TCP to an aggregation server (:func:`launch` takes the one to use,
or the preferred enabled one):

- ``sing-box``: ``sing-box run -c FILE``; a ``tproxy`` inbound and a ``shadowsocks`` outbound
  with ``tcp_multi_path`` and ``routing_mark`` (sing-box's option/ structs; checked by the
  real binary in the tests).  With the server's ``udp_over_tcp``, UDP rides the bonded MPTCP
  connection (UDP over TCP v2), one per LAN flow, and so survives the death of the link it
  used; DNS (UDP port 53) takes Shadowsocks UDP instead, through a second outbound: a query is
  short and retried, and is not worth an MPTCP connection of its own.  Run with
  ``GODEBUG=multipathtcp=0``, as upstream's release builds are linked: Go would otherwise make
  every listener MPTCP, the tproxy one too; ``tcp_multi_path`` still asks for it where wanted.
- ``xray``: ``xray run -c FILE``; a ``dokodemo-door`` inbound with ``followRedirect`` and
  ``sockopt.tproxy = "tproxy"``, a ``shadowsocks`` outbound with ``sockopt.tcpMptcp`` and
  ``sockopt.mark``.  Field names are those of Xray-core's infra/conf structs.
- ``shadowsocks-libev``: ``mptcpize run ss-redir -c FILE -T [-u]`` (mptcpize turns its TCP
  sockets into MPTCP ones; Debian, the lab's fallback).

UDP otherwise goes over Shadowsocks UDP.  sing-box sends it from a connected socket whose source
address is fixed when the flow starts: the flow dies with its link (measured in the lab).
ss-redir sends from an unbound socket: its datagrams follow the server's route once bondingd
moves it off a dead link, and the server sees the flow come from a new address.  Every JSON file
holds the key: mode 0600.
The proxy's own connections are marked with :func:`bonding.dataplane.nft.proxy_mark` where the
backend can (ss-libev cannot, and needs not: see bonding.dataplane.nft).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bonding.config import Config, Secrets, Server, key_problem
from bonding.dataplane.nft import LISTEN_ADDRESS, LISTEN_ADDRESS6, lan_ipv6, proxy_mark
from bonding.dataplane.privdrop import ROOT, Identity, UserError, lookup

# Where a procd or systemd service finds programs, after $PATH.
SEARCH_DIRS: Final = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin",
                      "/usr/local/bin")
SS_LIBEV_CIPHERS: Final = ("chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm")
SS_TIMEOUT_S: Final = 600  # idle TCP connections are closed after this (ss-libev "timeout")
# bondingd's log level → the proxy's.  Both log every connection at "info": that is for
# bondingd's debug level only, or logd would be flooded.
XRAY_LOG: Final = {"debug": "info", "info": "warning", "notice": "warning",
                   "warning": "warning", "error": "error"}
INBOUND_TAGS: Final = ("tproxy-in", "tproxy-in6")  # by listen address: IPv4, IPv6
SING_BOX_LOG: Final = {"debug": "info", "info": "warn", "notice": "warn", "warning": "warn",
                       "error": "error"}


class BackendError(Exception):
    """The backend cannot be started with this config; the message says what to do."""


@dataclass(frozen=True)
class Launch:
    """One proxy process: its command line and the files it needs (name → content)."""

    backend: str
    program: str  # the proxy's own name (for messages): ss-redir, xray, sing-box
    argv: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    server: str = ""  # the server section it connects to
    env: Mapping[str, str] = field(default_factory=dict)  # its own variables (privdrop.clean_env)
    user: Identity = ROOT  # it runs as this user (privdrop.drop), and owns its files
    drops_itself: bool = False  # started as root, it drops to `user` itself (the twin)

    def key(self) -> tuple[object, ...]:
        """Equal keys: the running process already does what this launch asks."""
        return (self.backend, self.argv, tuple(sorted(self.files.items())),
                tuple(sorted(self.env.items())), self.user)


@dataclass(frozen=True)
class Binary:
    name: str
    install: str  # how to get it, for the error message


BINARIES: Final[Mapping[str, tuple[Binary, ...]]] = {
    "shadowsocks-libev": (
        Binary("ss-redir", "OpenWrt: opkg/apk add shadowsocks-libev-ss-redir; "
                           "Debian: apt install shadowsocks-libev"),
        Binary("mptcpize", "Debian: apt install mptcpize (OpenWrt has no mptcpize: use "
                           "option proxy 'xray' or 'sing-box' there)"),
    ),
    "xray": (Binary("xray", "OpenWrt: opkg/apk add xray-core"),),
    "sing-box": (Binary("sing-box", "OpenWrt: opkg/apk add sing-box"),),
}


def search_path(path: str | None = None) -> str:
    """`path` as given, or $PATH followed by the usual program directories."""
    if path is not None:
        return path
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    dirs += [d for d in SEARCH_DIRS if d not in dirs]
    return os.pathsep.join(dirs)


def which(name: str, path: str) -> str | None:
    """The first executable file `name` in the directories of `path` (shutil.which's search,
    without loading shutil: 0.3 MB of bondingd's RSS)."""
    for d in path.split(os.pathsep):
        full = os.path.join(d, name)
        if d and os.path.isfile(full) and os.access(full, os.X_OK):
            return full
    return None


def find(backend: str, path: str) -> dict[str, str]:
    """The backend's programs by name → full path; BackendError names the missing one."""
    found: dict[str, str] = {}
    for b in BINARIES[backend]:
        where = which(b.name, path)
        if where is None:
            raise BackendError(f"{b.name} not found (proxy '{backend}'): {b.install}")
        found[b.name] = where
    return found


def pick_server(cfg: Config, secrets: Secrets, server: Server | None = None,
                ) -> tuple[Server, str]:
    """`server` (default: the preferred enabled one, by priority then file order) and its key,
    checked for its cipher."""
    if server is None:
        enabled = cfg.ordered_servers()
        if not enabled:
            raise BackendError("no enabled server: add a 'config server' section "
                               "(bonding-server add-client prints one)")
        server = enabled[0]
    key = secrets.key(server.name)
    if key is None:
        raise BackendError(f"no key for server '{server.name}': add it to "
                           f"/etc/config/bonding_secrets (config server '{server.name}' / "
                           "option key '...'), as bonding-server add-client printed it")
    if server.protocol != "shadowsocks":
        raise BackendError(f"server '{server.name}': protocol '{server.protocol}' is not "
                           "supported by the data plane yet: use shadowsocks")
    bad = key_problem(server.cipher, key)
    if bad is not None:
        raise BackendError(f"server '{server.name}': {bad}; fix option key in "
                           f"/etc/config/bonding_secrets (config server '{server.name}')")
    return server, key


def listen_addresses(cfg: Config, server: Server) -> tuple[str, ...]:
    """Where the proxy listens: 127.0.0.1, and ::1 when LAN IPv6 is proxied too."""
    return (LISTEN_ADDRESS,) if lan_ipv6(cfg.globals, server) else (LISTEN_ADDRESS,
                                                                    LISTEN_ADDRESS6)


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


# --- shadowsocks-libev ------------------------------------------------------------------------

def ss_libev_config(cfg: Config, server: Server, key: str,
                    listen: str = LISTEN_ADDRESS) -> dict[str, Any]:
    """ss-redir's JSON (keys as in shadowsocks-libev(8), CONFIG FILE), listening on `listen`."""
    g = cfg.globals
    if server.cipher not in SS_LIBEV_CIPHERS:
        raise BackendError(f"server '{server.name}': shadowsocks-libev does not speak "
                           f"{server.cipher}; use one of {', '.join(SS_LIBEV_CIPHERS)} (or "
                           "option proxy 'xray'/'sing-box')")
    return {
        "server": server.address,
        "server_port": server.port,
        "local_address": listen,
        "local_port": g.tproxy_port,
        "password": key,
        "method": server.cipher,
        "timeout": SS_TIMEOUT_S,
        "mode": "tcp_and_udp" if g.proxy_udp else "tcp_only",
        "tcp_tproxy": True,
        "no_delay": True,
    }


TWIN: Final = "bonding.dataplane.twin"


def has_file_caps(program: str) -> bool:
    """`program` carries file capabilities (security.capability), as `getcap` shows them."""
    try:
        return bool(os.getxattr(program, "security.capability"))
    except OSError:
        return False


def _check_preload(built: Launch) -> None:
    """mptcpize works by LD_PRELOAD, which the kernel has ignored (secure execution) when a
    non-root user runs a program with file capabilities: Debian's ss-redir has them.  That
    proxy would speak plain TCP over one link; say so instead."""
    for i, arg in enumerate(built.argv[:-2]):
        if os.path.basename(arg) == "mptcpize" and built.argv[i + 1] == "run":
            program = built.argv[i + 2]
            if has_file_caps(program):
                raise BackendError(
                    f"{program} has file capabilities (getcap {program}): run as a user other "
                    "than root, the kernel then ignores mptcpize's LD_PRELOAD and the proxy "
                    f"would not use MPTCP; remove them (setcap -r {program}: it needs none, "
                    "bondingd grants them) or set option proxy_user 'root'")


def ss_libev(cfg: Config, server: Server, key: str, run_dir: Path, path: str) -> Launch:
    bins = find("shadowsocks-libev", path)
    files: dict[str, str] = {}
    argvs: list[list[str]] = []
    for listen, name in zip(listen_addresses(cfg, server), ("ss-redir.json", "ss-redir6.json"),
                            strict=False):
        files[name] = _json(ss_libev_config(cfg, server, key, listen))
        argvs.append([bins["mptcpize"], "run", bins["ss-redir"], "-c", str(run_dir / name),
                      "-T", *(["-u"] if cfg.globals.proxy_udp else [])])
    argv = argvs[0] if len(argvs) == 1 else [sys.executable, "-m", TWIN,
                                             *argvs[0], "--", *argvs[1]]
    return Launch("shadowsocks-libev", "ss-redir", tuple(argv), files, server.name,
                  drops_itself=len(argvs) > 1)


# --- xray-core --------------------------------------------------------------------------------

def xray_config(cfg: Config, server: Server, key: str) -> dict[str, Any]:
    """Xray-core JSON: dokodemo-door (tproxy) in, shadowsocks over MPTCP out."""
    g = cfg.globals
    network = "tcp,udp" if g.proxy_udp else "tcp"
    return {
        "log": {"loglevel": XRAY_LOG.get(g.log_level, "warning")},
        "inbounds": [{
            "tag": tag,
            "protocol": "dokodemo-door",
            "listen": listen,
            "port": g.tproxy_port,
            "settings": {"network": network, "followRedirect": True},
            "streamSettings": {"sockopt": {"tproxy": "tproxy"}},
        } for listen, tag in zip(listen_addresses(cfg, server), INBOUND_TAGS, strict=False)],
        "outbounds": [{
            "tag": "bonding",
            "protocol": "shadowsocks",
            "settings": {"servers": [{
                "address": server.address,
                "port": server.port,
                "method": server.cipher,
                "password": key,
            }]},
            "streamSettings": {"sockopt": {
                "tcpMptcp": True,
                "mark": proxy_mark(g.tproxy_mask),
            }},
        }],
    }


def _run_json(program: str, make: Callable[[Config, Server, str], dict[str, Any]],
              cfg: Config, server: Server, key: str, run_dir: Path, path: str, *,
              flags: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> Launch:
    """`PROGRAM run [FLAGS] -c RUN_DIR/PROGRAM.json` with the config `make` builds."""
    bins = find(program, path)
    file = run_dir / f"{program}.json"
    return Launch(program, program, (bins[program], "run", *flags, "-c", str(file)),
                  {file.name: _json(make(cfg, server, key))}, server.name, env or {})


def xray(cfg: Config, server: Server, key: str, run_dir: Path, path: str) -> Launch:
    return _run_json("xray", xray_config, cfg, server, key, run_dir, path)


# --- sing-box ---------------------------------------------------------------------------------

SING_BOX_ENV: Final = {"GODEBUG": "multipathtcp=0"}  # MPTCP only where tcp_multi_path asks
SING_BOX_FLAGS: Final = ("--disable-color",)  # plain lines for bondingd's log
DNS_PORT: Final = 53
UDP_TIMEOUT_S: Final = 60  # a UDP flow is forgotten this long after its last packet


def sing_box_config(cfg: Config, server: Server, key: str) -> dict[str, Any]:
    """sing-box JSON: tproxy in, Shadowsocks over MPTCP (tcp_multi_path) out."""
    g = cfg.globals
    inbounds: list[dict[str, Any]] = [
        {"type": "tproxy", "tag": tag, "listen": listen, "listen_port": g.tproxy_port,
         "udp_timeout": UDP_TIMEOUT_S}
        for listen, tag in zip(listen_addresses(cfg, server), INBOUND_TAGS, strict=False)]
    outbound: dict[str, Any] = {
        "type": "shadowsocks",
        "tag": "bonding",
        "server": server.address,
        "server_port": server.port,
        "method": server.cipher,
        "password": key,
        "tcp_multi_path": True,
        "routing_mark": proxy_mark(g.tproxy_mask),
    }
    outbounds = [outbound]
    route: dict[str, Any] = {"final": "bonding"}
    if not g.proxy_udp:
        for inbound in inbounds:
            inbound["network"] = "tcp"
            del inbound["udp_timeout"]
        outbound["network"] = "tcp"
    elif server.udp_over_tcp:
        outbound["udp_over_tcp"] = {"enabled": True, "version": 2}
        dns = {k: v for k, v in outbound.items() if k not in ("tcp_multi_path", "udp_over_tcp")}
        outbounds.append({**dns, "tag": "bonding-dns", "network": "udp"})
        # (a rule without "action" routes to its "outbound": sing-box before 1.11 reads it too)
        route["rules"] = [{"network": "udp", "port": DNS_PORT, "outbound": "bonding-dns"}]
    return {
        "log": {"level": SING_BOX_LOG.get(g.log_level, "warn"), "timestamp": False},
        "inbounds": inbounds,
        "outbounds": outbounds,
        "route": route,
    }


def sing_box(cfg: Config, server: Server, key: str, run_dir: Path, path: str) -> Launch:
    if ":" in server.address:
        # sing-box (1.14, common/dialer/default.go) turns tcp_multi_path on for its IPv4 dialer
        # only: to an IPv6 address it dials plain TCP, one link, nothing bonded (seen in the lab)
        raise BackendError(
            f"server '{server.name}': sing-box bonds (Multipath TCP) only towards an IPv4 "
            f"address, and option address is {server.address}: give the server's IPv4 address "
            "in option address (its IPv6 one in option address6 still carries the LAN's IPv6), "
            "or use option proxy 'xray' or 'shadowsocks-libev'")
    return _run_json("sing-box", sing_box_config, cfg, server, key, run_dir, path,
                     flags=SING_BOX_FLAGS, env=SING_BOX_ENV)


BACKENDS: Final = {"shadowsocks-libev": ss_libev, "xray": xray, "sing-box": sing_box}


# option proxy 'auto' takes the first of these that is installed: only backends this project's
# tests run.  xray is not among them: no package registry this project's CI reaches ships it, so
# its config is checked field by field against xray's own struct tags but xray itself has never
# carried a byte here.  It stays for who asks for it by name (option proxy 'xray').
AUTO: Final = ("sing-box",)
UNTESTED: Final = {"xray": "xray is not run by bonding's tests (its config is checked against "
                           "xray's struct tags only): sing-box is the tested choice"}


def resolve(proxy: str, path: str | None = None) -> str:
    """The backend option proxy names: 'auto' → the first of AUTO that is installed, else
    'none'; any other value as it is."""
    if proxy != "auto":
        return proxy
    where = search_path(path)
    for backend in AUTO:
        try:
            find(backend, where)
        except BackendError:
            continue
        return backend
    return "none"


def auto_missing() -> str:
    """Why option proxy 'auto' finds nothing, and what to do."""
    return ("option proxy 'auto': sing-box is not installed, LAN traffic is not bonded: "
            "install it (opkg install sing-box, or apk add sing-box); bondingd takes it up "
            "within a minute (or name another proxy in option proxy, or set 'none' to bond the "
            "router's own traffic only)")


def launch(cfg: Config, secrets: Secrets, run_dir: Path, path: str | None = None, *,
           server: Server | None = None, backend: str | None = None) -> Launch:
    """What to run for `backend` (default: cfg.globals.proxy; not 'none' or 'auto') towards
    `server` (default: the preferred enabled one); BackendError says why not."""
    backend = backend or cfg.globals.proxy
    if backend not in BACKENDS:
        raise BackendError(f"unknown proxy '{backend}'")
    srv, key = pick_server(cfg, secrets, server)
    try:
        user = lookup(cfg.globals.proxy_user)
    except UserError as e:
        raise BackendError(str(e)) from None
    built = BACKENDS[backend](cfg, srv, key, run_dir, search_path(path))
    if user.uid != 0:
        _check_preload(built)
    if built.drops_itself:
        # the twin (our stdlib code, whose interpreter the proxy user may not be able to run)
        # starts as root and drops to the user for both programs: `python -m TWIN --user ...`
        return dataclasses.replace(
            built, user=user,
            argv=(*built.argv[:3], "--user", f"{user.uid}:{user.gid}", *built.argv[3:]))
    return dataclasses.replace(built, user=user)


VERSION_ARGS: Final = {"sing-box": ("version",), "xray": ("version",), "ss-redir": ("-h",)}


def program_version(backend: str, path: str | None = None) -> str:
    """The backend and its program's version, like 'sing-box 1.14.4' (the demo prints it);
    BackendError when the program is missing or names no version."""
    program = BINARIES[backend][0].name
    where = find(backend, search_path(path))[program]
    try:
        r = subprocess.run([where, *VERSION_ARGS[program]], capture_output=True, text=True,
                           timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendError(f"{where}: cannot run it: {e}") from None
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", r.stdout + r.stderr)
    if m is None:
        raise BackendError(f"{where} printed no version")
    return f"{backend} {m.group(1)}"
