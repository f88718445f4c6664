"""What the server's kernel and init system should look like, as data (pure functions).

`bonding-server` computes the wanted state from the settings, the client records and a few facts
about the host (:class:`Facts`), compares it with what is there and changes only what differs;
the same inputs always give the same plan, which is what makes `init` idempotent.

Firewall (table ``inet bonding_server``): each client's proxy runs as its own unprivileged
user; every packet these users send (``meta skuid { UIDS }``, whichever way conntrack sees it:
a packet forged from a blocked address would otherwise make the proxy's later packets to it
"replies") to a local, private, reserved, cloud platform or directly connected network of the
server, or to its configured public addresses (behind a 1:1 NAT they are not local), is refused
(TCP reset, ICMP admin-prohibited otherwise), except DNS to the resolvers in /etc/resolv.conf,
the networks given with ``init --allow``, and the replies on the clients' connections to their
own ports (``th sport @ports ct direction reply``). The kernel's own MPTCP subflow SYNs (no
socket owner) meet the same list; the server accepts no ADD_ADDR (``add_addr_accepted 0``), so
there should be none. The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32) are not blocked: they are not routed on the internet, and the lab uses them as
its internet. Named counters per client count the bytes of the client's port in each direction
(input ``dport``, output ``sport``).

Shaping (per-client rate limits, both directions at the same rate): download (server → client)
is an htb class per client on the egress device, chosen by a u32 filter on the client's port
as source port; upload (client → server) is redirected on ingress (u32 on the destination port,
``action mirred``) to an ifb device with the same htb classes.  This kernel has htb, u32, ifb
and mirred but neither the fw/flower/basic classifiers nor the police action, so marks and
ingress policing are out; u32 on ports works on both sides.  A client's htb class is numbered
by its port (classid 1:PORT in hex), which keeps each client's shaping apart.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bonding.server.model import Client, ServerConfig

NFT_TABLE: Final = "bonding_server"  # family inet
IFB: Final = "bsrv-ifb0"
SS_TIMEOUT_S: Final = 3600  # idle timeout of a proxied connection
NOFILE: Final = 65536
# add_addr_accepted 0: the server never opens subflows itself (the router's path manager opens
# them towards the server); with it above 0, any peer that reaches a client port could announce
# 10.x or 169.254.169.254 as its own and have the server's kernel send SYNs there.
MPTCP_LIMITS: Final = {"subflows": 8, "add_addr_accepted": 0}
UNIT_DIR: Final = "/etc/systemd/system"
SYSCTL_FILE: Final = "/etc/sysctl.d/90-bonding-server.conf"
SERVICE: Final = "bonding-server.service"
TEMPLATE: Final = "bonding-server@.service"

# Kernel settings (all of them per network namespace).  Buffers: a bonded download can hold
# Σ rates × the slowest path's RTT in flight (1 Gbit/s × 250 ms ≈ 31 MB), so autotuning may
# grow to 32 MB; the default of 4 MB for send buffers caps a single flow at ~130 Mbit/s at 250 ms.
SYSCTLS: Final = {
    "net.mptcp.enabled": "1",
    "net.mptcp.allow_join_initial_addr_port": "1",
    "net.ipv4.tcp_rmem": "4096 131072 33554432",
    "net.ipv4.tcp_wmem": "4096 16384 33554432",
    "net.ipv4.tcp_slow_start_after_idle": "0",
}

# Cloud platform services live in these too: 169.254.169.254 (metadata of most clouds),
# 100.100.100.200 (Alibaba's, in 100.64.0.0/10), fd00:ec2::254 (AWS's over IPv6, in fc00::/7);
# 168.63.129.16 (Azure's wireserver) is a public address and listed by itself.
BLOCKED4: Final = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "168.63.129.16/32",
    "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "224.0.0.0/3",  # multicast, reserved, broadcast
)
BLOCKED6: Final = (
    "::/96",  # unspecified, loopback, IPv4-compatible
    "::ffff:0.0.0.0/96",  # IPv4-mapped
    "64:ff9b::/96", "64:ff9b:1::/48",  # NAT64: a translator may map them to private IPv4
    "100::/64", "2002::/16",  # discard; 6to4 (deprecated, embeds IPv4, private ones too)
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)


@dataclass(frozen=True)
class Facts:
    """What the plan needs to know about the host; gathered by bonding.server.system."""

    uids: tuple[int, ...]  # the proxies' users, one per client
    interface: str | None  # the egress device shaping applies to
    networks: tuple[str, ...] = ()  # directly connected networks (global scope)
    nameservers: tuple[str, ...] = ()  # from /etc/resolv.conf
    ipv6: bool = True  # the kernel has IPv6 here (ss-server also listens on ::)
    state_dir: str = "/etc/bonding-server"
    exe: str = "/usr/bin/bonding-server"
    ss_server: str = "/usr/bin/ss-server"
    mptcpize: str = "/usr/bin/mptcpize"
    sing_box: str = "/usr/bin/sing-box"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the proxies ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxyRun:
    """How one client's proxy is started by the supervisor: it reads ``config`` on its standard
    input when ``config_on_stdin`` (the file is root's, the process the proxy user's), and runs
    as ``user`` when given (else it drops to the user by itself, like ss-server -a)."""

    program: str  # for messages: sing-box, ss-server
    argv: tuple[str, ...]
    env: Mapping[str, str]
    user: str | None
    config_on_stdin: bool


# Go makes every listener MPTCP unless told not to (upstream's release builds are linked with
# this default); the inbound asks for MPTCP itself, the sockets towards the internet stay TCP.
SING_BOX_ENV: Final = {"GODEBUG": "multipathtcp=0"}
SING_BOX_LOG: Final = "warn"  # "info" logs every connection


def config_suffix(proxy: str) -> str:
    """STATE/run/NAME.<suffix>.json holds the client's proxy config."""
    return "ss" if proxy == "shadowsocks-libev" else proxy


def proxy_config(proxy: str, client: Client, ipv6: bool) -> bytes:
    return sing_box_config(client, ipv6) if proxy == "sing-box" else ss_config(client, ipv6)


def ss_config(client: Client, ipv6: bool) -> bytes:
    cfg = {"server": ["0.0.0.0", "::"] if ipv6 else ["0.0.0.0"], "server_port": client.port,
           "password": client.key, "method": client.cipher, "mode": "tcp_and_udp",
           "timeout": SS_TIMEOUT_S, "no_delay": True, "fast_open": False}
    return (json.dumps(cfg, indent=2) + "\n").encode()


def sing_box_config(client: Client, ipv6: bool) -> bytes:
    """One client's sing-box: a Shadowsocks inbound whose listener alone is MPTCP
    (``tcp_multi_path``; it takes UDP natively and UDP over TCP v2 inside the bonded
    connection), and a direct outbound: plain TCP and UDP towards the internet."""
    cfg = {
        "log": {"level": SING_BOX_LOG, "timestamp": False},
        "inbounds": [{"type": "shadowsocks", "tag": "client", "listen": "::" if ipv6 else
                      "0.0.0.0", "listen_port": client.port, "tcp_multi_path": True,
                      "method": client.cipher, "password": client.key}],
        "outbounds": [{"type": "direct", "tag": "internet"}],
        "route": {"final": "internet"},
    }
    return (json.dumps(cfg, indent=2) + "\n").encode()


def ss_command(facts: Facts, config_path: str, user: str | None) -> list[str]:
    """One client's proxy: ss-server with its sockets made MPTCP by mptcpize (LD_PRELOAD).

    With ``user``, ss-server starts as root, reads its config, binds, then drops to the user
    (``-a``): the supervisor's way.  systemd starts it as the user instead (``User=``).
    mptcpize turns every TCP socket of ss-server into MPTCP, the outbound ones to the internet
    too (they fall back to TCP).  On the 6.18 kernel of the lab, an unpaced multi-Gbit/s
    transfer through such a fallback socket once leaked ~2.3 GB of TCP memory accounting
    (WARNING in inet_sock_destruct), leaving the whole host under TCP memory pressure; sing-box
    makes only its listener MPTCP and does not expose that path.
    """
    cmd = [facts.mptcpize, "run", facts.ss_server, "-c", config_path]
    return [*cmd, "-a", user] if user else cmd


def sing_box_command(facts: Facts, config: str) -> list[str]:
    return [facts.sing_box, "run", "--disable-color", "-c", config]


def proxy_run(proxy: str, facts: Facts, config_path: str, user: str) -> ProxyRun:
    """The supervisor's command for one client: as root, the proxy user for what it opens."""
    if proxy == "sing-box":
        return ProxyRun("sing-box", tuple(sing_box_command(facts, "stdin")), SING_BOX_ENV,
                        user, True)
    return ProxyRun("ss-server", tuple(ss_command(facts, config_path, user)), {}, None, False)


# --- firewall -------------------------------------------------------------------------------------
def collapse(nets: Iterable[str]) -> tuple[list[str], list[str]]:
    """Networks (IPv4, IPv6) merged and sorted, so that nft interval sets see no overlap."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for text in nets:
        net = ipaddress.ip_network(text, strict=False)
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        else:
            v6.append(net)
    return ([_net(n) for n in ipaddress.collapse_addresses(v4)],
            [_net(n) for n in ipaddress.collapse_addresses(v6)])


def _net(n: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)


def public_addresses(cfg: ServerConfig) -> list[str]:
    """The server's public addresses given as IP addresses (a DNS name is not resolved here)."""
    out = []
    for text in (cfg.public_address, cfg.public_address6):
        try:
            out.append(_net(ipaddress.ip_network(text or "", strict=False)))
        except ValueError:
            continue
    return out


def blocked_networks(facts: Facts, cfg: ServerConfig) -> tuple[list[str], list[str]]:
    """What the proxies may not reach: reserved ranges, cloud platform addresses, the directly
    connected networks and the server's public addresses (which behind a 1:1 NAT are not local
    and so not seen by ``fib daddr type local``)."""
    return collapse([*BLOCKED4, *BLOCKED6, *facts.networks, *public_addresses(cfg)])


def _set(name: str, kind: str, elements: Sequence[str], interval: bool = True) -> list[str]:
    lines = [f"\tset {name} {{", f"\t\ttype {kind}", *(["\t\tflags interval"] if interval else [])]
    if elements:
        lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
    return [*lines, "\t}"]


def counter_name(client: str, direction: str) -> str:
    return f"c_{client}_{direction}"


def proxy_owner(facts: Facts) -> str:
    """The match for packets of the proxies' sockets: one user per client."""
    return f"meta skuid {{ {', '.join(map(str, sorted(facts.uids)))} }}"


def _chains(clients: Sequence[Client], facts: Facts) -> list[str]:
    """The chains.  The proxies' user is checked on every packet by destination, whichever way
    conntrack sees it (a forged packet from a blocked address would otherwise turn the proxy's
    later packets to it into "replies"); the one exception is the clients' own connections: a
    packet leaving a client port (``@ports``) as the reply of a connection opened to it.  The
    kernel's own MPTCP subflow SYNs (no socket owner: the path manager's) are checked too."""
    out = ["\tchain input {", "\t\ttype filter hook input priority filter; policy accept;"]
    out += [f'\t\tmeta l4proto {{ tcp, udp }} th dport {c.port} counter name '
            f'"{counter_name(c.name, "in")}"' for c in clients]
    out += ["\t}", "\tchain output {",
            "\t\ttype filter hook output priority filter; policy accept;",
            *([f"\t\t{proxy_owner(facts)} jump proxy"] if facts.uids else []),
            "\t\ttcp flags syn / syn,ack tcp option mptcp exists jump subflow"]
    out += [f'\t\tmeta l4proto {{ tcp, udp }} th sport {c.port} counter name '
            f'"{counter_name(c.name, "out")}"' for c in clients]
    out += ["\t}", "\tchain proxy {",
            "\t\tmeta l4proto { tcp, udp } th sport @ports ct direction reply return",
            "\t\tmeta l4proto { tcp, udp } th dport 53 ip daddr @dns4 return",
            "\t\tmeta l4proto { tcp, udp } th dport 53 ip6 daddr @dns6 return",
            "\t\tgoto forbidden", "\t}",
            "\tchain subflow {",
            "\t\tmeta skuid 0-4294967295 return",  # a process's socket: not the kernel's own
            "\t\tgoto forbidden", "\t}",
            "\tchain forbidden {",
            "\t\tip daddr @allowed4 return", "\t\tip6 daddr @allowed6 return",
            "\t\tfib daddr type local goto refuse",
            "\t\tip daddr @blocked4 goto refuse", "\t\tip6 daddr @blocked6 goto refuse",
            "\t}", "\tchain refuse {", '\t\tcounter name "refused"',
            "\t\tmeta l4proto tcp reject with tcp reset",
            "\t\treject with icmpx admin-prohibited", "\t}"]
    return out


def nft_table(cfg: ServerConfig, clients: Sequence[Client], facts: Facts,
              counters: Mapping[str, tuple[int, int]] | None = None) -> str:
    """The table ``inet bonding_server``; ``counters`` (name → packets, bytes) carry over."""
    counters = counters or {}
    block4, block6 = blocked_networks(facts, cfg)
    allow4, allow6 = collapse(cfg.allow)
    dns4, dns6 = collapse([f"{a}/{32 if ':' not in a else 128}" for a in facts.nameservers])
    out = [f"table inet {NFT_TABLE} {{",
           '\tcomment "bonding-server: proxy firewall and per-client counters; '
           '`bonding-server init` rewrites it"']
    names = ["refused"] + [counter_name(c.name, d) for c in clients for d in ("in", "out")]
    for n in names:
        packets, nbytes = counters.get(n, (0, 0))
        out += [f"\tcounter {n} {{", f"\t\tpackets {packets} bytes {nbytes}", "\t}"]
    out += _set("blocked4", "ipv4_addr", block4) + _set("blocked6", "ipv6_addr", block6)
    out += _set("allowed4", "ipv4_addr", allow4) + _set("allowed6", "ipv6_addr", allow6)
    out += _set("dns4", "ipv4_addr", dns4) + _set("dns6", "ipv6_addr", dns6)
    out += _set("ports", "inet_service", [str(c.port) for c in sorted(clients,
                                                                      key=lambda c: c.port)],
                interval=False)
    out += _client_port_limits(clients)
    return "\n".join([*out, *_chains(clients, facts), "}"]) + "\n"


# Per source address (IPv6: per /64) and client port: new TCP connections at most
# LIMIT_RATE/s (burst LIMIT_BURST; more are dropped, the SYN is retried) and at most
# LIMIT_CONNS at once (more are reset).  A proxy holds one descriptor per connection, so a
# handful of sources cannot take its NOFILE; a router opens one connection per LAN connection
# on each of its links' addresses, far below these.
LIMIT_CONNS: Final = 1024
LIMIT_RATE: Final = 64
LIMIT_BURST: Final = 256


def _client_port_limits(clients: Sequence[Client]) -> list[str]:
    """Sets and an input chain of their own (before ``input``) for the per-source limits."""
    if not clients:
        return []
    ports = ", ".join(str(c.port) for c in sorted(clients, key=lambda c: c.port))
    v6 = "ip6 saddr & ffff:ffff:ffff:ffff::"
    out = []
    for name, kind, timeout in (("limit_conns4", "ipv4_addr", ""),
                                ("limit_conns6", "ipv6_addr", ""),
                                ("limit_rate4", "ipv4_addr", "1m"),
                                ("limit_rate6", "ipv6_addr", "1m")):
        out += [f"\tset {name} {{", f"\t\ttype {kind} . inet_service", "\t\tsize 65535",
                "\t\tflags dynamic" + (",timeout" if timeout else "")]
        out += [f"\t\ttimeout {timeout}"] if timeout else []
        out.append("\t}")
    rate = f"limit rate over {LIMIT_RATE}/second burst {LIMIT_BURST} packets"
    return [*out, "\tchain client_limits {",
            "\t\ttype filter hook input priority filter - 1; policy accept;",
            f"\t\ttcp dport != {{ {ports} }} return", "\t\tct state != new return",
            f"\t\tupdate @limit_rate4 {{ ip saddr . tcp dport {rate} }} counter drop",
            f"\t\tupdate @limit_rate6 {{ {v6} . tcp dport {rate} }} counter drop",
            f"\t\tadd @limit_conns4 {{ ip saddr . tcp dport ct count over {LIMIT_CONNS} }} "
            "counter reject with tcp reset",
            f"\t\tadd @limit_conns6 {{ {v6} . tcp dport ct count over {LIMIT_CONNS} }} "
            "counter reject with tcp reset", "\t}"]


def nft_script(table: str) -> str:
    """Replace the table in one transaction (``add`` first so ``delete`` cannot fail)."""
    return f"add table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n{table}"


# --- shaping --------------------------------------------------------------------------------------
def _htb_class(dev: str, client: Client) -> list[str]:
    assert client.rate_mbit is not None
    kbit = max(round(client.rate_mbit * 1000), 8)
    rate_bytes = kbit * 125
    burst = max(rate_bytes // 200, 2 * 1514)  # 5 ms of the rate, at least two frames
    limit = max(rate_bytes // 10, 200_000)  # 100 ms of queue, at least 200 kB
    cls = f"1:{client.port:x}"
    return [f"class add dev {dev} parent 1: classid {cls} htb rate {kbit}kbit ceil {kbit}kbit "
            f"burst {burst} cburst {burst} quantum 60000",
            f"qdisc add dev {dev} parent {cls} bfifo limit {limit}"]


def _u32(dev: str, parent: str, field: str, port: int, action: str, ipv6: bool) -> list[str]:
    """u32 filters on ``dev`` matching ``field`` (sport/dport) == port, IPv4 and IPv6."""
    out = [f"filter add dev {dev} parent {parent} protocol ip prio 10 u32 "
           f"match ip {field} {port} 0xffff {action}"]
    if ipv6:
        out.append(f"filter add dev {dev} parent {parent} protocol ipv6 prio 11 u32 "
                   f"match ip6 {field} {port} 0xffff {action}")
    return out


def tc_commands(clients: Sequence[Client], dev: str, ipv6: bool) -> list[str]:
    """``tc -batch`` lines that build the shaping on ``dev`` and the ifb (both empty before)."""
    limited = [c for c in clients if c.rate_mbit is not None]
    if not limited:
        return []
    lines = [f"qdisc replace dev {dev} root handle 1: htb default 0"]
    for c in limited:
        lines += _htb_class(dev, c)
        lines += _u32(dev, "1:", "sport", c.port, f"flowid 1:{c.port:x}", ipv6)
    lines.append(f"qdisc replace dev {dev} handle ffff: ingress")
    for c in limited:
        lines += _u32(dev, "ffff:", "dport", c.port, f"action mirred egress redirect dev {IFB}",
                      ipv6)
    lines.append(f"qdisc replace dev {IFB} root handle 1: htb default 0")
    for c in limited:
        lines += _htb_class(IFB, c)
        lines += _u32(IFB, "1:", "dport", c.port, f"flowid 1:{c.port:x}", ipv6)
    return lines


# --- systemd --------------------------------------------------------------------------------------
def sysctl_file() -> str:
    lines = ["# bonding-server: MPTCP on, TCP buffers for bonded links (`bonding-server init`)"]
    return "\n".join(lines + [f"{k} = {v}" for k, v in SYSCTLS.items()]) + "\n"


def units(cfg: ServerConfig, facts: Facts) -> dict[str, str]:
    """The unit files (path → text): the boot-time apply and the per-client proxy template."""
    state = facts.state_dir
    service = f"""\
[Unit]
Description=bonding-server: firewall, shaping and kernel settings for the proxies
Wants=network-online.target
After=network-online.target nftables.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={facts.exe} --state-dir {state} apply

[Install]
WantedBy=multi-user.target
"""
    suffix = config_suffix(cfg.proxy)
    conf = "${CREDENTIALS_DIRECTORY}/proxy.json"
    if cfg.proxy == "sing-box":
        env = "".join(f"Environment={k}={v}\n" for k, v in SING_BOX_ENV.items())
        start = " ".join(sing_box_command(facts, conf))
    else:
        env, start = "", f"{facts.mptcpize} run {facts.ss_server} -c {conf}"
    template = f"""\
[Unit]
Description=bonding-server: {cfg.proxy} proxy for client %i
Wants=network-online.target {SERVICE}
After=network-online.target {SERVICE}
ConditionPathExists={state}/clients/%i.json

[Service]
Type=simple
User={cfg.user}
LoadCredential=proxy.json:{state}/run/%i.{suffix}.json
{env}ExecStart={start}
Restart=always
RestartSec=2
LimitNOFILE={NOFILE}
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK

[Install]
WantedBy=multi-user.target
"""
    return {f"{UNIT_DIR}/{SERVICE}": service, f"{UNIT_DIR}/{TEMPLATE}": template,
            SYSCTL_FILE: sysctl_file()}


def unit_name(client: str) -> str:
    return f"bonding-server@{client}.service"
