"""The lab: a bonding router and its world in network namespaces on one Linux machine.

    lan ── router ──wan1── isp1 ──┐          ┌── server   (aggregation server, 203.0.113.10)
                  ──wan2── isp2 ──┼── inet ──┼── server2  (a second one, 203.0.113.20: servers=2)
                  ──wanN── ispN ──┘          └── target   (an internet host, 198.51.100.10)

Every link and host has an IPv6 address too, all inside 2001:db8::/32 (documentation): the LAN
2001:db8:192::/64, link i 2001:db8:64:i::/64 (router ::2, ISP ::1) and 2001:db8:65:i::/64
(ISP ::2, internet ::1), the server 2001:db8:203::10, the target 2001:db8:198::10 (the IPv4
ranges' numbers, for the eye).  The router
learns each link's IPv6 gateway from its main table, where the lab puts OpenWrt-style
source-specific default routes (as netifd would from the ISP's router advertisements): one per
link for the link's own prefix, and the LAN prefix on wan1 (ISP 1 delegated it, and routes it
back).  The server's IPv6 address is in the router's config (option address6): LAN IPv6 is
proxied.  With `tunnel6`, the router reaches the server by its IPv6 address: the bonded
connections (MPTCP subflows) then run over the links' IPv6.

The full path (the default, `proxy=True`): the LAN host's ordinary TCP and UDP reach the router,
whose bondingd runs the data plane (nftables tproxy on lan0 and the proxy: sing-box by default,
or ss-redir under mptcpize), over all links as MPTCP subflows to the server, set up with
`bonding-server` exactly as on a VPS (init --no-systemd --proxy, add-client, run) with the same
proxy, which speaks to the target with its own address.  The lab's
bypass list leaves out the documentation ranges of the server and the target, so its
"internet" is proxied.  With `servers=2` a second aggregation server is set up the same way and
bondingd gets both (sections 'lab' and 'lab2', the first preferred): server failover.

Each ISP namespace shapes its link with tbf in both directions (egress of `cpe` towards the
router = download, egress of `up` towards the internet = upload) and delays it with the TUN stage
of bonding.lab.delay (one-way delay D each way, so the link adds 2·D of RTT).  Faults (blackhole,
random loss) are nftables rules in the ISP's forward chain, matched on the first pass only so a
packet that goes round the delay stage is not judged twice.

Only addresses of documentation and shared ranges are used, only inside namespaces the lab
creates; the host's own interfaces, routes and rules are never touched.  `down()` kills every
process in the lab's namespaces and deletes them, whatever state they are in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bonding import config, uci
from bonding.lab.delay import (
    STATE_ROOT,
    parse_stats,
    python_env,
    setup_delay,
    start_delay,
    tool_path,
)

SERVER_ADDR = "203.0.113.10"
SERVER2_ADDR = "203.0.113.20"
INET_SERVER2_SIDE = "203.0.113.17"  # 203.0.113.16/28, inside the first server's /24
TARGET_ADDR = "198.51.100.10"
INET_SERVER_SIDE = "203.0.113.1"
LAN_ROUTER = "192.0.2.1"
LAN_HOST = "192.0.2.10"
SERVER_ADDR6 = "2001:db8:203::10"
TARGET_ADDR6 = "2001:db8:198::10"
INET_SERVER_SIDE6 = "2001:db8:203::1"
INET_TARGET_SIDE6 = "2001:db8:198::1"
LAN_NET6 = "2001:db8:192::/64"
LAN_ROUTER6 = "2001:db8:192::1"
LAN_HOST6 = "2001:db8:192::10"
LINK_NETS6 = "2001:db8:64::/47"  # 2001:db8:64:i::/64 and 2001:db8:65:i::/64
IPERF_PORT = 5201
MAX_LINKS = 8
QUEUE_MS = 50  # tbf queue: 50 ms of the link's rate, like a typical ISP shaper
DELAY_TABLE = 10
LAN_DEVICE = "lan0"
CLIENT_NAME = "lab"
PROXY_BACKEND = "sing-box"  # on both ends; "shadowsocks-libev" is the fallback
# The lab's links are clean wired links, so each path is set up as the shipped config sets up
# its wired 'wan' path: cubic for the subflows over it (the global default, bbr, stays on the
# first subflow and on radio links).  With bbr on every subflow, one bonded flow over these
# links stalled at 10-50% of their capacity for seconds in 2 of 40 transfers (cubic: 0 of 40).
WIRED_PATH: Mapping[str, str] = {"congestion_control": "cubic"}
# The built-in bypass list without the ranges the lab's internet lives in.
LAB_BYPASS = tuple(n for n in config.DEFAULT_BYPASS
                   if n not in ("198.51.100.0/24", "203.0.113.0/24"))
# The same for IPv6: the documentation range is the lab's internet, but its LAN and links are
# local (as the IPv4 ones are).
LAB_BYPASS6 = (*(n for n in config.DEFAULT_BYPASS6 if n != "2001:db8::/32"), LAN_NET6,
               LINK_NETS6)
# What each proxy needs on this machine (program → how to get it).
PROXY_TOOLS = {
    "sing-box": {"sing-box": "make deps (tools/install-deps.sh puts it in .venv/bin)"},
    "shadowsocks-libev": {"ss-redir": "apt-get install shadowsocks-libev",
                          "ss-server": "apt-get install shadowsocks-libev",
                          "mptcpize": "apt-get install mptcpize"},
}


def missing_proxy_tools(backend: str) -> list[str]:
    """The programs of `backend` the lab cannot find, each with how to get it."""
    if backend not in PROXY_TOOLS:
        raise LabError(f"proxy {backend!r}: the lab runs {' or '.join(PROXY_TOOLS)}")
    return [f"{t} ({how})" for t, how in PROXY_TOOLS[backend].items()
            if shutil.which(t, path=tool_path()) is None]


class LabError(Exception):
    """The lab could not be built or driven; the message says what failed."""


@dataclass(frozen=True)
class LinkSpec:
    rate_mbit: float
    delay_ms: float = 0.0

    def __str__(self) -> str:
        return f"{self.rate_mbit:g}/{self.delay_ms:g}ms"


_LINK_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?)\s*(?:ms)?)?\s*$")


def parse_links(text: str) -> list[LinkSpec]:
    """'50/10ms,30/20ms,20' → rate in Mbit/s and one-way delay in ms per link."""
    links = []
    for i, part in enumerate(text.split(","), 1):
        m = _LINK_RE.match(part)
        if not m:
            raise LabError(f"link {i}: {part!r} is not RATE or RATE/DELAYms (e.g. 50/10ms)")
        rate, delay = float(m.group(1)), float(m.group(2) or 0)
        if not 0.1 <= rate <= 10000:
            raise LabError(f"link {i}: rate {rate:g} Mbit/s out of range 0.1–10000")
        if delay > 2000:
            raise LabError(f"link {i}: delay {delay:g} ms out of range 0–2000")
        links.append(LinkSpec(rate, delay))
    if not 1 <= len(links) <= MAX_LINKS:
        raise LabError(f"{len(links)} links: the lab builds 1–{MAX_LINKS}")
    return links


@dataclass
class Link:
    name: str  # wan1 ...
    index: int  # 1-based
    rate_mbit: float
    delay_ms: float
    isp_ns: str
    router_dev: str  # in the router namespace
    router_addr: str
    isp_dev: str  # the ISP's side facing the router
    isp_addr: str  # the router's gateway
    isp_up_dev: str  # the ISP's side facing the internet
    inet_dev: str  # the internet's side facing the ISP
    router_addr6: str = ""
    isp_addr6: str = ""  # the router's IPv6 gateway


@dataclass
class LabState:
    prefix: str
    links: list[Link]
    namespaces: dict[str, str]  # role → namespace name
    addresses: dict[str, list[str]]  # role → addresses
    state_dir: str
    config_dir: str
    run_dir: str
    daemon_log: str
    daemon_pid: int | None = None
    pids: dict[str, int] = field(default_factory=dict)  # long-running helpers
    ubus_socket: str | None = None  # the router's ubusd, when the OpenWrt userland is found
    proxy: bool = False  # the full path: data plane on the router, bonding-server on the server
    backend: str = PROXY_BACKEND  # the proxy on both ends
    server_state_dir: str | None = None
    client_port: int | None = None
    servers: int = 1  # aggregation servers: 'server', then 'server2'
    client_ports: dict[str, int] = field(default_factory=dict)  # server role → client port
    tunnel6: bool = False  # the router reaches the server by its IPv6 address


def find_ubusd() -> Path | None:
    """ubusd from ``$BONDING_UBUSD`` or ``$OWRT_PREFIX/{sbin,bin}``; None when absent."""
    explicit = os.environ.get("BONDING_UBUSD")
    if explicit:
        return Path(explicit) if os.access(explicit, os.X_OK) else None
    prefix = os.environ.get("OWRT_PREFIX")
    if not prefix:
        return None
    for sub in ("sbin", "bin"):
        cand = Path(prefix, sub, "ubusd")
        if os.access(cand, os.X_OK):
            return cand
    return None


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30,
        capture: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=capture, text=True, timeout=timeout,
                       check=False)
    if check and r.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed ({r.returncode}): {(r.stderr or '').strip()}")
    return r


def nsx(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def tbf_args(rate_mbit: float) -> list[str]:
    """A shaper sized like a real link's: burst of ~1 ms (≥ 4 frames), 50 ms of queue."""
    rate_bps = rate_mbit * 1e6
    burst = max(int(rate_bps / 8 * 0.001), 4 * 1514)
    limit = int(rate_bps / 8 * QUEUE_MS / 1000) + burst
    return ["tbf", "rate", f"{rate_mbit:g}mbit", "burst", str(burst), "limit", str(limit)]


class Lab:
    """Build, describe, drive and remove one lab instance (namespaces named `<prefix>-…`)."""

    def __init__(self, prefix: str = "bl") -> None:
        if not re.match(r"^[a-z][a-z0-9]{0,7}$", prefix):
            raise LabError(f"prefix {prefix!r}: 1–8 lowercase letters/digits, starting a letter")
        self.prefix = prefix
        self.state_dir = STATE_ROOT / prefix
        self.state: LabState | None = None

    # --- naming ---------------------------------------------------------------------------------
    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    def load(self) -> LabState:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab '{self.prefix}' is up ({self.state_file} is missing)") from None
        raw["links"] = [Link(**x) for x in raw["links"]]
        self.state = LabState(**raw)
        return self.state

    def save(self) -> None:
        assert self.state is not None
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=2))
        tmp.replace(self.state_file)

    def existing_namespaces(self) -> list[str]:
        out = run(["ip", "netns", "list"]).stdout
        names = [line.split()[0] for line in out.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.prefix + "-")]

    # --- build ----------------------------------------------------------------------------------
    def up(self, links: Sequence[LinkSpec], *, daemon: bool = True, config_extra: str = "",
           proxy: bool = True, options: Mapping[str, str] | None = None,
           path_options: Mapping[str, str] | None = None,
           backend: str = PROXY_BACKEND, servers: int = 1,
           tunnel6: bool = False) -> LabState:
        """Build the lab; with `proxy`, the full path (data plane and bonding-server, both
        running `backend`).

        `options`: more options of bondingd's globals section (e.g. congestion_control);
        `path_options`: the options every path section gets beyond its device, gateway and
        rates (default WIRED_PATH; {} for none);
        `servers`: 1 or 2 aggregation servers; `tunnel6`: the router's proxy reaches the
        (first) server by its IPv6 address."""
        if servers not in (1, 2):
            raise LabError(f"{servers} servers: the lab builds 1 or 2")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, nftables, tc)")
        if proxy:
            missing = missing_proxy_tools(backend)
            if missing:
                raise LabError(f"the full path with {backend} needs " + ", ".join(missing)
                               + "; or build the lab without it (--no-proxy)")
        if self.existing_namespaces():
            raise LabError(f"lab '{self.prefix}' is already up: run `bonding-lab down "
                           f"--prefix {self.prefix}` first")
        try:
            self._build(links, servers)
            assert self.state is not None
            self.state.backend = backend
            self.state.tunnel6 = tunnel6
            clients = ([self._setup_server(r) for r in self.server_roles()] if proxy else None)
            self._write_config(config_extra, clients, options or {},
                               WIRED_PATH if path_options is None else path_options)
            self.start_ubusd()
            if daemon:
                self.start_daemon()
        except BaseException:
            self.down()
            raise
        assert self.state is not None
        return self.state

    def _build(self, specs: Sequence[LinkSpec], servers: int = 1) -> None:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        roles = ["lan", "router", "inet", "server", "target"]
        roles += ["server2"] if servers == 2 else []
        roles += [f"isp{i}" for i in range(1, len(specs) + 1)]
        namespaces = {r: self.ns(r) for r in roles}
        links = [
            Link(name=f"wan{i}", index=i, rate_mbit=s.rate_mbit, delay_ms=s.delay_ms,
                 isp_ns=namespaces[f"isp{i}"], router_dev=f"wan{i}",
                 router_addr=f"100.64.{i}.2", isp_dev="cpe", isp_addr=f"100.64.{i}.1",
                 isp_up_dev="net", inet_dev=f"isp{i}", router_addr6=f"2001:db8:64:{i}::2",
                 isp_addr6=f"2001:db8:64:{i}::1")
            for i, s in enumerate(specs, 1)
        ]
        sd = self.state_dir
        self.state = LabState(
            prefix=self.prefix, links=links, namespaces=namespaces,
            addresses={"lan": [LAN_HOST, LAN_HOST6],
                       "router": [LAN_ROUTER, LAN_ROUTER6]
                       + [a for x in links for a in (x.router_addr, x.router_addr6)],
                       "server": [SERVER_ADDR, SERVER_ADDR6],
                       "target": [TARGET_ADDR, TARGET_ADDR6],
                       "inet": [INET_SERVER_SIDE, "198.51.100.1", INET_SERVER_SIDE6,
                                INET_TARGET_SIDE6]},
            state_dir=str(sd), config_dir=str(sd / "etc"), run_dir=str(sd / "run"),
            daemon_log=str(sd / "bondingd.log"), servers=servers)
        if servers == 2:
            self.state.addresses["server2"] = [SERVER2_ADDR]
            self.state.addresses["inet"].append(INET_SERVER2_SIDE)
        for ns in namespaces.values():
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        self.save()
        n = namespaces
        # Offloads stay on where nothing is emulated (LAN, server, target: real NICs have
        # them); they are off on the links that are shaped, delayed and made lossy.
        for ns in namespaces.values():  # before the links: no router advertisement is taken
            run(nsx(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_ra=0",
                    "net.ipv6.conf.default.accept_ra=0"))
        for ns in (n["router"], n["inet"]):
            run(nsx(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1"))
        self._veth(n["lan"], "eth0", n["router"], "lan0", offload=True)
        self._addr(n["lan"], "eth0", f"{LAN_HOST}/24", f"{LAN_HOST6}/64")
        self._addr(n["router"], "lan0", f"{LAN_ROUTER}/24", f"{LAN_ROUTER6}/64")
        self._default(n["lan"], LAN_ROUTER, LAN_ROUTER6)
        self._veth(n["inet"], "srv", n["server"], "eth0", offload=True)
        self._addr(n["inet"], "srv", f"{INET_SERVER_SIDE}/24", f"{INET_SERVER_SIDE6}/64")
        self._addr(n["server"], "eth0", f"{SERVER_ADDR}/24", f"{SERVER_ADDR6}/64")
        self._default(n["server"], INET_SERVER_SIDE, INET_SERVER_SIDE6)
        if servers == 2:  # IPv4 only: LAN IPv6 is routed natively while it is the one in use
            self._veth(n["inet"], "srv2", n["server2"], "eth0", offload=True)
            self._addr(n["inet"], "srv2", f"{INET_SERVER2_SIDE}/28")
            self._addr(n["server2"], "eth0", f"{SERVER2_ADDR}/28")
            run(["ip", "-n", n["server2"], "route", "add", "default", "via", INET_SERVER2_SIDE])
        self._veth(n["inet"], "tgt", n["target"], "eth0", offload=True)
        self._addr(n["inet"], "tgt", "198.51.100.1/24", f"{INET_TARGET_SIDE6}/64")
        self._addr(n["target"], "eth0", f"{TARGET_ADDR}/24", f"{TARGET_ADDR6}/64")
        self._default(n["target"], "198.51.100.1", INET_TARGET_SIDE6)
        for link in links:
            isp = link.isp_ns
            i = link.index
            self._veth(n["router"], link.router_dev, isp, link.isp_dev)
            self._addr(n["router"], link.router_dev, f"{link.router_addr}/24",
                       f"{link.router_addr6}/64")
            self._addr(isp, link.isp_dev, f"{link.isp_addr}/24", f"{link.isp_addr6}/64")
            self._veth(isp, link.isp_up_dev, n["inet"], link.inet_dev)
            self._addr(isp, link.isp_up_dev, f"100.65.{i}.2/24", f"2001:db8:65:{i}::2/64")
            self._addr(n["inet"], link.inet_dev, f"100.65.{i}.1/24", f"2001:db8:65:{i}::1/64")
            self._default(isp, f"100.65.{i}.1", f"2001:db8:65:{i}::1")
            run(["ip", "-n", n["inet"], "route", "add", f"100.64.{i}.0/24",
                 "via", f"100.65.{i}.2"])
            run(["ip", "-n", n["inet"], "-6", "route", "add", f"2001:db8:64:{i}::/64",
                 "via", f"2001:db8:65:{i}::2"])
            # What netifd makes of the ISP's router advertisement: a default route for the
            # link's own prefix (the router learns its IPv6 gateway from it)
            run(["ip", "-n", n["router"], "-6", "route", "add", "default", "from",
                 f"2001:db8:64:{i}::/64", "via", link.isp_addr6, "dev", link.router_dev])
            if i == 1:  # ISP 1 delegated the LAN prefix: natively routed LAN IPv6 goes there
                run(["ip", "-n", n["router"], "-6", "route", "add", "default", "from",
                     LAN_NET6, "via", link.isp_addr6, "dev", link.router_dev])
                run(["ip", "-n", isp, "-6", "route", "add", LAN_NET6, "via",
                     link.router_addr6])
                run(["ip", "-n", n["inet"], "-6", "route", "add", LAN_NET6, "via",
                     f"2001:db8:65:{i}::2"])
            for dev in (link.isp_dev, link.isp_up_dev):
                run(["tc", "-n", isp, "qdisc", "replace", "dev", dev, "root",
                     *tbf_args(link.rate_mbit)])
            self._nft(isp, "add table inet lab\n"
                      "add chain inet lab transit { type filter hook forward priority 0; }\n"
                      "add chain inet lab fault\n"
                      f"add rule inet lab transit iifname {{ \"{link.isp_dev}\", "
                      f"\"{link.isp_up_dev}\" }} jump fault\n")
            setup_delay(isp, "dly", [link.isp_dev, link.isp_up_dev], DELAY_TABLE)
            log = open(self.state_dir / f"delay-{link.name}.log", "ab")  # noqa: SIM115
            try:
                proc = start_delay(isp, "dly", link.delay_ms, stderr=log)
            finally:
                log.close()
            assert self.state is not None
            self.state.pids[f"delay-{link.name}"] = proc.pid
        # The servers accept many subflows per connection.
        for role in self.server_roles():
            run(["ip", "-n", n[role], "mptcp", "limits", "set", "subflows", "8",
                 "add_addr_accepted", "8"])
        self.save()

    def _veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str, *,
              offload: bool = False) -> None:
        run(["ip", "-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b,
             "netns", ns_b])
        # Off: tbf and the loss rules see real 1514-byte frames.  On: like a real NIC (a veth
        # has TSO and GSO but no GRO by default).
        state = "on" if offload else "off"
        for ns, dev in ((ns_a, dev_a), (ns_b, dev_b)):
            run(nsx(ns, "ethtool", "-K", dev, "tso", state, "gso", state, "gro", state),
                check=False)
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    @staticmethod
    def _addr(ns: str, dev: str, *cidrs: str) -> None:
        """Addresses on a device; IPv6 ones usable at once (nodad: no DAD wait)."""
        for cidr in cidrs:
            extra = ["nodad"] if ":" in cidr else []
            run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev, *extra])

    @staticmethod
    def _default(ns: str, gateway: str, gateway6: str) -> None:
        run(["ip", "-n", ns, "route", "add", "default", "via", gateway])
        run(["ip", "-n", ns, "-6", "route", "add", "default", "via", gateway6])

    @staticmethod
    def _nft(ns: str, script: str) -> None:
        r = subprocess.run(nsx(ns, "nft", "-f", "-"), input=script, capture_output=True,
                           text=True, timeout=10, check=False)
        if r.returncode != 0:
            raise LabError(f"nft in {ns} failed: {r.stderr.strip()}")

    # --- the aggregation server ----------------------------------------------------------------
    def server_roles(self) -> list[str]:
        """The aggregation servers' roles: 'server' (preferred), then 'server2'."""
        st = self.state or self.load()
        return ["server", "server2"][:st.servers]

    def _server_dir(self, role: str) -> str:
        st = self.state or self.load()
        assert st.server_state_dir is not None
        return st.server_state_dir if role == "server" else str(Path(st.state_dir) / role)

    def server_cli(self, *args: str, timeout: float = 60,
                   role: str = "server") -> subprocess.CompletedProcess[str]:
        """`bonding-server --state-dir <lab>/server ARGS` in the server namespace (`role`)."""
        st = self.state or self.load()
        cmd = nsx(st.namespaces[role], sys.executable, "-m", "bonding.server.cli",
                  "--state-dir", self._server_dir(role), *args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=python_env(), check=False)
        if r.returncode != 0:
            raise LabError(f"bonding-server {' '.join(args)} failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()}")
        return r

    def _setup_server(self, role: str = "server") -> dict[str, Any]:
        """bonding-server as on a VPS: init, add-client (its UCI and key), run."""
        st = self.state
        assert st is not None
        st.proxy = True
        st.server_state_dir = str(Path(st.state_dir) / "server")
        self.save()
        address = ["--public-address", SERVER_ADDR, "--public-address6", SERVER_ADDR6] \
            if role == "server" else ["--public-address", SERVER2_ADDR]
        self.server_cli("init", "--no-systemd", *address, "--proxy",
                        st.backend, role=role)
        client: dict[str, Any] = json.loads(
            self.server_cli("add-client", "--name", CLIENT_NAME, "--json", role=role).stdout)
        st.client_ports[role] = int(client["port"])
        if role == "server":
            st.client_port = int(client["port"])
        self.start_server(role)
        return client

    def start_server(self, role: str = "server") -> int:
        """`bonding-server run` (its proxies) in a server namespace; waits until it listens."""
        st = self.state or self.load()
        port = st.client_ports[role]
        log = open(Path(st.state_dir) / f"bonding-{role}.log", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                nsx(st.namespaces[role], sys.executable, "-m", "bonding.server.cli",
                    "--state-dir", self._server_dir(role), "run"),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=python_env(),
                start_new_session=True)
        finally:
            log.close()
        st.pids[f"bonding-{role}"] = proc.pid
        self.save()
        deadline = time.monotonic() + 10
        while not _listening(st.namespaces[role], port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"bonding-server run did not listen on port {port}; "
                               f"see {st.state_dir}/bonding-{role}.log")
            time.sleep(0.05)
        return proc.pid

    def stop_server(self, role: str = "server", timeout: float = 5.0) -> None:
        """Kill every process of a server namespace at once (`bonding-server run` and its
        proxies, SIGKILL): the server's proxy is gone, as in a crash."""
        st = self.state or self.load()
        ns = st.namespaces[role]
        st.pids.pop(f"bonding-{role}", None)
        self.save()
        if not _kill_netns(ns, (signal.SIGKILL,), timeout):
            raise LabError(f"processes of {ns} still alive after SIGKILL")

    def server_blackhole(self, role: str = "server", on: bool = True) -> None:
        """Drop everything that reaches a server namespace, silently (or stop doing so)."""
        st = self.state or self.load()
        ns = st.namespaces[role]
        script = "table inet labfault {}\ndelete table inet labfault\n"
        if on:
            script += ("table inet labfault {\n\tchain in {\n\t\ttype filter hook input "
                       "priority 0; policy drop;\n\t}\n}\n")
        self._nft(ns, script)

    def _write_config(self, extra: str, clients: Sequence[dict[str, Any]] | None = None,
                      options: Mapping[str, str] | None = None,
                      path_options: Mapping[str, str] | None = None) -> None:
        assert self.state is not None
        cfg = Path(self.state.config_dir)
        cfg.mkdir(parents=True, exist_ok=True)
        Path(self.state.run_dir).mkdir(parents=True, exist_ok=True)
        g: dict[str, str | tuple[str, ...]] = {
            "log_level": "info",
            "probe_target": (SERVER_ADDR, TARGET_ADDR, SERVER_ADDR6, TARGET_ADDR6),
            "proxy": "none",  # bondingd alone (the full path sets its proxy below)
        }
        # one section per server: 'lab', 'lab2' (in order: the first is preferred); the first
        # has an IPv6 address too (LAN IPv6 is proxied while it is the one in use), which its
        # add-client prints
        server_opts: list[dict[str, str | tuple[str, ...]]] = [
            {"address": SERVER_ADDR, "address6": SERVER_ADDR6, "port": "65101"}]
        if clients is not None:
            g.update({"proxy": self.state.backend, "lan_device": LAN_DEVICE,
                      "proxy_user": "nobody",  # the package's user 'bonding' is not here
                      "bypass": LAB_BYPASS, "bypass6": LAB_BYPASS6})
            server_opts = [{
                "address": str(c["address"]), "port": str(c["port"]),
                "protocol": str(c["protocol"]), "cipher": str(c["cipher"]),
                "udp_over_tcp": "1" if c.get("udp_over_tcp") else "0",
                **({"address6": str(c["address6"])} if c.get("address6") else {}),
            } for c in clients]
        names = [CLIENT_NAME + ("" if i == 0 else str(i + 1)) for i in range(len(server_opts))]
        if self.state.tunnel6:
            server_opts[0]["address"] = SERVER_ADDR6
        servers = [uci.Section("server", n, o) for n, o in zip(names, server_opts, strict=True)]
        if clients is not None:
            secrets = uci.Package(config.SECRETS_PACKAGE, tuple(
                uci.Section("server", n, {"key": str(c["key"])})
                for n, c in zip(names, clients, strict=True)))
            path = cfg / config.SECRETS_PACKAGE
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(uci.dumps(secrets))
        g.update(options or {})
        sections = [uci.Section("globals", "globals", g), *servers]
        for link in self.state.links:
            sections.append(uci.Section("path", link.name, {
                "device": link.router_dev,
                "gateway": link.isp_addr,
                "upload_kbit": str(int(link.rate_mbit * 1000)),
                "download_kbit": str(int(link.rate_mbit * 1000)),
                **(path_options or {}),
            }))
        text = uci.dumps(uci.Package("bonding", tuple(sections)))
        (cfg / "bonding").write_text(text + extra)

    # --- the daemon -----------------------------------------------------------------------------
    def start_ubusd(self) -> str | None:
        """Run a real ubusd in the router namespace when the OpenWrt userland is there."""
        st = self.state or self.load()
        ubusd = find_ubusd()
        if ubusd is None:
            return None
        sock = Path(st.state_dir) / "ubus.sock"
        log = open(Path(st.state_dir) / "ubusd.log", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(nsx(st.namespaces["router"], str(ubusd), "-s", str(sock)),
                                    stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 5
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"{ubusd} did not create {sock}; see {st.state_dir}/ubusd.log")
            time.sleep(0.02)
        st.pids["ubusd"] = proc.pid
        st.ubus_socket = str(sock)
        self.save()
        return st.ubus_socket

    def start_daemon(self, *args: str) -> int:
        st = self.state or self.load()
        if st.ubus_socket and "--ubus-socket" not in args:
            args = ("--ubus-socket", st.ubus_socket, *args)
        log = open(st.daemon_log, "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                nsx(st.namespaces["router"], sys.executable, "-m", "bonding.daemon",
                    "--config-dir", st.config_dir, "--run-dir", st.run_dir, *args),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=python_env(),
                start_new_session=True)
        finally:
            log.close()
        st.daemon_pid = proc.pid
        self.save()
        return proc.pid

    def stop_daemon(self, timeout: float = 5.0) -> None:
        st = self.state or self.load()
        if st.daemon_pid is None:
            return
        _kill_wait(st.daemon_pid, timeout)
        st.daemon_pid = None
        self.save()

    def set_options(self, changes: Mapping[str, Mapping[str, str | None]]) -> None:
        """Change options of bondingd's config, by section name ('globals', 'wan1', …; None
        removes the option), and reload it (SIGHUP)."""
        st = self.state or self.load()
        path = Path(st.config_dir) / "bonding"
        pkg = uci.loads(path.read_text(), "bonding")
        sections = []
        for sec in pkg.sections:
            change = changes.get(sec.name or "")
            if change:
                opts = {**sec.options, **{k: v for k, v in change.items() if v is not None}}
                for k, v in change.items():
                    if v is None:
                        opts.pop(k, None)
                sec = uci.Section(sec.type, sec.name, opts)
            sections.append(sec)
        path.write_text(uci.dumps(uci.Package("bonding", tuple(sections))))
        if st.daemon_pid is not None:
            # bondingd writes its status once its signal handlers are in place: a SIGHUP
            # before that would end it.
            status = Path(st.run_dir) / "status.json"
            deadline = time.monotonic() + 10
            while not status.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(st.daemon_pid, signal.SIGHUP)

    def status(self) -> dict[str, Any]:
        """bondingd's snapshot (status.json), or {} when there is none yet."""
        st = self.state or self.load()
        try:
            data: dict[str, Any] = json.loads((Path(st.run_dir) / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    # --- faults ---------------------------------------------------------------------------------
    def link(self, name: str) -> Link:
        st = self.state or self.load()
        for link in st.links:
            if link.name == name:
                return link
        raise LabError(f"no link {name!r}: the lab has " + ", ".join(x.name for x in st.links))

    def blackhole(self, name: str, family: int | None = None) -> None:
        """Drop everything the ISP forwards on this link, silently (no carrier change); with
        `family` (4 or 6), only that IP version (an ISP whose IPv6 alone broke)."""
        if family not in (None, 4, 6):
            raise LabError(f"family {family}: use 4 or 6")
        self._fault(name, "drop" if family is None else f"meta nfproto ipv{family} drop")

    def loss(self, name: str, pct: int) -> None:
        if not 0 < pct < 100:
            raise LabError(f"loss {pct}%: use 1–99")
        self._fault(name, f"numgen random mod 100 < {pct} drop")

    def clear(self, name: str) -> None:
        self._fault(name, None)

    def _fault(self, name: str, rule: str | None) -> None:
        link = self.link(name)
        script = "flush chain inet lab fault\n"
        if rule:
            script += f"add rule inet lab fault {rule}\n"
        self._nft(link.isp_ns, script)

    def carrier(self, name: str, on: bool) -> None:
        """Carrier loss as the router sees it: the ISP's end of the cable goes down."""
        link = self.link(name)
        run(["ip", "-n", link.isp_ns, "link", "set", link.isp_dev, "up" if on else "down"])

    def counters(self) -> dict[str, dict[str, int]]:
        """Bytes through each link as the router's WAN device counts them."""
        st = self.state or self.load()
        out = json.loads(run(["ip", "-n", st.namespaces["router"], "-s", "-j", "link",
                              "show"]).stdout)
        by_name = {x["ifname"]: x["stats64"] for x in out}
        return {link.name: {"rx": by_name[link.router_dev]["rx"]["bytes"],
                            "tx": by_name[link.router_dev]["tx"]["bytes"]}
                for link in st.links}

    def stage_stats(self, timeout: float = 2.0) -> dict[str, dict[str, float]]:
        """Each link's delay stage since the lab came up (both directions): packets received,
        forwarded, dropped, and how late releases were (late_max_ms, late_over_1ms)."""
        st = self.state or self.load()
        logs = {x.name: Path(st.state_dir) / f"delay-{x.name}.log" for x in st.links}
        before = {name: log.stat().st_size for name, log in logs.items()}
        for name in logs:  # all asked at once, then each one's line awaited
            os.kill(st.pids[f"delay-{name}"], signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        out: dict[str, dict[str, float]] = {}
        for name, log in logs.items():
            while True:
                with log.open("rb") as f:
                    f.seek(before[name])
                    lines = [x for x in f.read().decode().splitlines() if x.startswith("stats ")]
                if lines:
                    out[name] = parse_stats(lines[-1])
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"the delay stage of {name} did not report its stats "
                                   f"within {timeout:g} s: see {log}")
                time.sleep(0.02)
        return out

    # --- teardown -------------------------------------------------------------------------------
    def down(self, *, purge: bool = False) -> list[str]:
        """Kill everything in the lab's namespaces and delete them; returns what was removed.
        The state directory (logs, configs) stays for a look afterwards, unless `purge`."""
        removed = []
        for ns in self.existing_namespaces():
            _kill_netns(ns, (signal.SIGTERM, signal.SIGKILL), 2.0)
            run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
        if self.state_file.exists():
            self.state_file.unlink()
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state = None
        return removed

    def describe(self) -> dict[str, Any]:
        st = self.state or self.load()
        return {
            "prefix": st.prefix,
            "namespaces": [{"role": r, "name": n, "addresses": st.addresses.get(r, [])}
                           for r, n in st.namespaces.items()],
            "links": [{"name": x.name, "rate_mbit": x.rate_mbit, "delay_ms": x.delay_ms,
                       "rtt_added_ms": 2 * x.delay_ms, "isp_namespace": x.isp_ns,
                       "router_device": x.router_dev, "router_address": x.router_addr,
                       "router_address6": x.router_addr6, "isp_device": x.isp_dev,
                       "gateway": x.isp_addr, "gateway6": x.isp_addr6,
                       "isp_uplink_device": x.isp_up_dev} for x in st.links],
            "server": {"namespace": st.namespaces["server"], "address": SERVER_ADDR,
                       "address6": SERVER_ADDR6, "tunnel6": st.tunnel6,
                       "bonding_server": None if not st.proxy else {
                           "state_dir": st.server_state_dir, "client": CLIENT_NAME,
                           "port": st.client_port, "pid": st.pids.get("bonding-server"),
                           "log": str(Path(st.state_dir) / "bonding-server.log")}},
            "servers": [{"role": r, "namespace": st.namespaces[r],
                         "address": SERVER_ADDR if r == "server" else SERVER2_ADDR,
                         "section": CLIENT_NAME + ("" if r == "server" else "2"),
                         "port": st.client_ports.get(r),
                         "pid": st.pids.get(f"bonding-{r}")} for r in self.server_roles()],
            "proxy": None if not st.proxy else {
                "backend": st.backend, "lan_device": LAN_DEVICE,
                "secrets": str(Path(st.config_dir) / config.SECRETS_PACKAGE)},
            "target": {"namespace": st.namespaces["target"], "address": TARGET_ADDR,
                       "address6": TARGET_ADDR6},
            "bondingd": {"namespace": st.namespaces["router"], "pid": st.daemon_pid,
                         "config_dir": st.config_dir, "run_dir": st.run_dir,
                         "status": str(Path(st.run_dir) / "status.json"),
                         "log": st.daemon_log},
            "ubus": {"socket": st.ubus_socket, "pid": st.pids.get("ubusd")},
        }


def _listening(ns: str, port: int) -> bool:
    r = subprocess.run(nsx(ns, "ss", "-Hltn", f"sport = :{port}"), capture_output=True,
                       text=True, check=False)
    return bool(r.stdout.strip())


def _netns_pids(ns: str) -> list[str]:
    return run(["ip", "netns", "pids", ns], check=False).stdout.split()


def _kill_netns(ns: str, signals: Sequence[signal.Signals], timeout: float) -> bool:
    """Send each signal in turn to every process of `ns`, giving them `timeout` seconds to go
    after each; True once the namespace has no process left, False if some outlived them all.
    The one kill loop of `Lab.down` (SIGTERM, then SIGKILL) and `Lab.stop_server` (SIGKILL)."""
    for sig in signals:
        pids = _netns_pids(ns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), sig)
        deadline = time.monotonic() + timeout
        while pids:
            pids = _netns_pids(ns)
            if not pids:
                return True
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not pids:
            return True
    return False


def _kill_wait(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
