"""What the internet and the clients cannot make the server reach (root, real proxies).

The world of server_world.py, and on top of it: the inet namespace owns 169.254.169.254 (a
cloud's metadata service, which the cloud routes through the server's gateway) and maps
198.51.100.50 onto the server 1:1 (a cloud's public address: DNAT in, hairpin NAT back), which
is the server's ``--public-address`` here.  The server has strict reverse path filtering and a
small ephemeral port range (an attacker sprays the whole range; the test keeps it short).
For the platform tests the inet namespace also owns Azure's and Alibaba's platform addresses and
a NAT64 address (the server then gets IPv6 towards it), and the first IPv4 resolver of
/etc/resolv.conf (the one bonding-server read) is answered by an echo, on port 53 and another.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from server_world import NETPEER, PRIVATE_ADDR, SERVER_ADDR, World, run, wait_for

pytestmark = pytest.mark.lab

METADATA = "169.254.169.254"
METADATA_PORT = 7777
NAT_PUBLIC = "198.51.100.50"  # the server's public address behind the 1:1 NAT
EPHEMERAL = (40000, 40063)
PLATFORM = ("168.63.129.16", "100.100.100.200")  # Azure's wireserver, Alibaba's metadata
PLATFORM_PORT = 7780
NAT64 = "64:ff9b::c633:640a"  # 198.51.100.10 through the well-known NAT64 prefix
NAT64_PORT = 7781
V6_SERVER, V6_GATEWAY = "2001:db8:203::10", "2001:db8:203::1"
RESOLVER_OTHER_PORT = 7053
NAT = f"""
table ip onetoone {{
    chain pre {{
        type nat hook prerouting priority dstnat; ip daddr {NAT_PUBLIC} dnat to {SERVER_ADDR}
    }}
    chain post {{
        type nat hook postrouting priority srcnat
        ip saddr {SERVER_ADDR} ip daddr {SERVER_ADDR} masquerade
    }}
}}
"""
SYN_COUNTER = """
table inet seen {
    counter syn { }
    chain input {
        type filter hook input priority filter; tcp flags syn / syn,ack counter name syn
    }
}
"""


def ns_run(world: World, role: str, *cmd: str, **kw: Any) -> str:
    return run(["ip", "netns", "exec", world.ns(role), *cmd], **kw).stdout


@pytest.fixture(scope="module")
def served(world: World) -> dict[str, Any]:
    ns_run(world, "inet", "ip", "addr", "add", f"{METADATA}/32", "dev", "lo")
    ns_run(world, "inet", "nft", "-f", "-", input=NAT)
    ns_run(world, "private", "nft", "-f", "-", input=SYN_COUNTER)
    for key, value in (("net.ipv4.conf.all.rp_filter", "1"), ("net.ipv4.conf.wan.rp_filter", "1"),
                       ("net.ipv4.ip_local_port_range", f"{EPHEMERAL[0]} {EPHEMERAL[1]}")):
        ns_run(world, "server", "sysctl", "-q", "-w", f"{key}={value}")
    r = world.cli("init", "--no-systemd", "--user", "nobody", "--public-address", NAT_PUBLIC,
                  "--proxy", world.proxy)
    assert r.returncode == 0, r.stderr
    client = world.cli_json("add-client", "--name", "c1")
    world.start_supervisor()
    world.wait_running(["c1"])
    return dict(client)


def refused(world: World) -> int:
    return int(world.cli_json("status")["refused_packets"])


def test_the_path_to_the_internet_works(world: World, served: dict[str, Any]) -> None:
    """The control: this world's proxy serves the client (TCP and UDP) to the internet."""
    with world.tunnel(served, 12000, "198.51.100.10:7"):
        assert world.probe(12000)["ok"]
        assert world.probe(12000, udp=True)["ok"]


def test_forged_packets_from_a_blocked_address_do_not_open_it(world: World,
                                                              served: dict[str, Any]) -> None:
    """Datagrams forged from 169.254.169.254 to every ephemeral port of the server leave
    conntrack entries; the proxy's own datagram to that address later is their "reply" and
    was let through while only ``ct direction original`` was checked."""
    ns_run(world, "inet", sys.executable, NETPEER, "spray", "--bind", METADATA, "--sport",
           str(METADATA_PORT), "--host", SERVER_ADDR, "--ports", f"{EPHEMERAL[0]}-{EPHEMERAL[1]}")
    entries = ns_run(world, "server", "cat", "/proc/net/nf_conntrack")
    assert entries.count(f"src={METADATA}") >= EPHEMERAL[1] - EPHEMERAL[0], entries[:2000]
    world.echo("inet", METADATA, METADATA_PORT)
    before = refused(world)
    with world.tunnel(served, 12100, f"{METADATA}:{METADATA_PORT}"):
        udp = world.probe(12100, udp=True)
        tcp = world.probe(12100)
    assert not udp["ok"] and not udp["reply"], udp
    assert not tcp["ok"] and not tcp["reply"], tcp
    assert world.peers("inet", METADATA_PORT) == []
    assert refused(world) >= before + 2
    direct = world.probe(METADATA_PORT, role="server", host=METADATA)  # root: the path exists
    assert direct["ok"], direct


def _announce_private_address(world: World, served: dict[str, Any]) -> tuple[bool, int]:
    """A client's bonded connection (iperf3 through its tunnel) whose router announces the
    private host's address as its own (ADD_ADDR is MPTCP's, below the proxy: a peer without a
    key does the same, but sing-box cuts a keyless connection before it is fully established
    more often than not): whether the server heard the announcement, and the SYNs that
    reached the private host."""
    c = ["ip", "-n", world.ns("client")]
    ns_run(world, "private", "nft", "reset", "counters", "table", "inet", "seen")
    monitor = subprocess.Popen(["ip", "netns", "exec", world.ns("server"), "ip", "mptcp",
                                "monitor"], stdout=subprocess.PIPE, text=True)
    run([*c, "addr", "add", f"{PRIVATE_ADDR}/32", "dev", "lo"])
    run([*c, "mptcp", "endpoint", "add", PRIVATE_ADDR, "signal"])
    try:
        time.sleep(0.3)  # the monitor listens
        with world.tunnel(served, 12400, "198.51.100.10:5201"):
            p = world.iperf(12400, reverse=True, seconds=2, omit=0, bitrate="1M")
            _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    finally:
        run([*c, "mptcp", "endpoint", "flush"])
        run([*c, "mptcp", "endpoint", "add", "100.64.77.2", "dev", "eth1", "subflow"])
        run([*c, "addr", "del", f"{PRIVATE_ADDR}/32", "dev", "lo"])
        monitor.terminate()
        events = monitor.communicate(timeout=10)[0]
    listing = ns_run(world, "private", "nft", "list", "counter", "inet", "seen", "syn")
    return ("ANNOUNCED] token=" in events and f"daddr4={PRIVATE_ADDR}" in events,
            int(listing.split("packets")[1].split()[0]))


def test_announced_private_address_gets_no_subflow(world: World,
                                                   served: dict[str, Any]) -> None:
    """ADD_ADDR from anyone who reaches a client port: the server's kernel opens no subflow
    (add_addr_accepted 0; the router's path manager opens them all towards the server)."""
    limits = ns_run(world, "server", "ip", "mptcp", "limits", "show")
    assert "add_addr_accepted 0" in limits, limits
    assert _announce_private_address(world, served) == (True, 0)


@pytest.fixture
def limits_raised(world: World) -> Iterator[None]:
    ns_run(world, "server", "ip", "mptcp", "limits", "set", "subflows", "8",
           "add_addr_accepted", "8")
    try:
        yield
    finally:
        out = world.cli_json("init", "--no-systemd", "--user", "nobody", "--public-address",
                             NAT_PUBLIC)
        assert [s["step"] for s in out["steps"] if s["changed"]] == ["mptcp limits"], out


def test_kernel_subflow_to_a_blocked_address_is_refused_even_if_limits_allow(
        world: World, served: dict[str, Any], limits_raised: None) -> None:
    """Defence in depth: an operator raised add_addr_accepted; the kernel's own subflow SYN (no
    socket owner) to a private address still never leaves."""
    before = refused(world)
    for _ in range(3):  # an announcement heard before the connection is fully established is
        # sometimes dropped (seen once in 10 runs): try again until the kernel tries a subflow
        assert _announce_private_address(world, served) == (True, 0)
        if refused(world) > before:
            break
    assert refused(world) > before


def test_bonding_still_joins_subflows(world: World, served: dict[str, Any]) -> None:
    """The router's second link (100.64.77.2, in a blocked range) joins the connection."""
    with world.tunnel(served, 12200, "198.51.100.10:5201"):
        p = world.iperf(12200, reverse=True, seconds=3, omit=0, bitrate="10M")
        try:
            def joined() -> bool:
                row = next(r for r in world.cli_json("status")["clients"] if r["name"] == "c1")
                return bool(row["subflows"] >= 2)
            wait_for(joined, 5, "two subflows in the client's connection")
        finally:
            _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err


def test_public_address_behind_nat_is_refused(world: World, served: dict[str, Any]) -> None:
    """The public address maps to the server but is not local to it: reaching the server's own
    services through it is refused like its local addresses."""
    direct = world.probe(7007, role="server", host=NAT_PUBLIC)  # root: the hairpin path exists
    assert direct["ok"], direct
    peers = len(world.peers("server", 7007))
    with world.tunnel(served, 12300, f"{NAT_PUBLIC}:7007"):
        tcp = world.probe(12300)
        udp = world.probe(12300, udp=True)
    assert not tcp["ok"] and not tcp["reply"], tcp
    assert not udp["ok"] and not udp["reply"], udp
    assert world.peers("server", 7007)[peers:] == []


@pytest.fixture(scope="module")
def platform(world: World, served: dict[str, Any]) -> None:
    """Cloud platform addresses in the inet namespace, with echoes; the server's IPv6 route."""
    for a in PLATFORM:
        ns_run(world, "inet", "ip", "addr", "add", f"{a}/32", "dev", "lo")
    ns_run(world, "inet", "ip", "-6", "addr", "add", f"{NAT64}/128", "dev", "lo")
    ns_run(world, "inet", "ip", "-6", "addr", "add", f"{V6_GATEWAY}/64", "dev", "s0", "nodad")
    ns_run(world, "server", "ip", "-6", "addr", "add", f"{V6_SERVER}/64", "dev", "wan", "nodad")
    ns_run(world, "server", "ip", "-6", "route", "add", "default", "via", V6_GATEWAY)
    world.echo("inet", "0.0.0.0", PLATFORM_PORT)
    world.echo("inet", "::", NAT64_PORT)


def _refused_through_the_proxy(world: World, served: dict[str, Any], role: str, host: str,
                               port: int, local_port: int) -> None:
    direct = world.probe(port, role="server", host=host)  # root: the path exists
    assert direct["ok"], direct
    peers, before = len(world.peers(role, port)), refused(world)
    dest = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with world.tunnel(served, local_port, dest):
        tcp = world.probe(local_port)
        udp = world.probe(local_port, udp=True)
    assert not tcp["ok"] and not tcp["reply"], tcp
    assert not udp["ok"] and not udp["reply"], udp
    assert world.peers(role, port)[peers:] == []
    assert refused(world) >= before + 2  # TCP and UDP


@pytest.mark.parametrize("host", [METADATA, *PLATFORM, NAT64])
def test_cloud_platform_addresses_are_refused(world: World, served: dict[str, Any],
                                              platform: None, host: str) -> None:
    """The metadata services (169.254.169.254, Alibaba's 100.100.100.200), Azure's wireserver
    (168.63.129.16, a public address) and NAT64's 64:ff9b::/96 (a translator maps it to any
    IPv4 address, private ones too), all routed through the server's gateway here."""
    port = NAT64_PORT if ":" in host else PLATFORM_PORT
    _refused_through_the_proxy(world, served, "inet", host, port, 12500)


@pytest.fixture(scope="module")
def resolver(world: World, served: dict[str, Any]) -> tuple[str, str]:
    """The first IPv4 resolver of /etc/resolv.conf as the server's processes read it, and the
    namespace that answers for it: the server itself for a loopback one (systemd-resolved's
    127.0.0.53), else the private host (a VPC's resolver, such as 10.0.0.2), routed there."""
    text = ns_run(world, "server", "cat", "/etc/resolv.conf")
    found = [w[1] for w in (line.split() for line in text.splitlines())
             if len(w) >= 2 and w[0] == "nameserver" and "." in w[1]]
    if not found:
        pytest.skip("/etc/resolv.conf names no IPv4 resolver")
    addr = found[0]
    role = "server" if ipaddress.ip_address(addr).is_loopback else "private"
    if role == "private":
        ns_run(world, "private", "ip", "addr", "add", f"{addr}/32", "dev", "lo")
        ns_run(world, "server", "ip", "route", "add", f"{addr}/32", "via", PRIVATE_ADDR)
    for port in (53, RESOLVER_OTHER_PORT):
        world.echo(role, addr, port)
    return addr, role


def test_the_resolvers_are_reachable_on_port_53_only(world: World, served: dict[str, Any],
                                                     resolver: tuple[str, str]) -> None:
    """README's trade-off: the proxies resolve the clients' names through these resolvers from
    their own sockets, so a client's datagram to one on port 53 passes (TCP and UDP); any other
    port of it is refused like the rest of its network."""
    addr, role = resolver
    direct = world.probe(53, role="server", host=addr)
    assert direct["ok"], direct
    with world.tunnel(served, 12600, f"{addr}:53"):
        tcp = world.probe(12600)
        udp = world.probe(12600, udp=True)
    assert tcp["ok"] and udp["ok"], (tcp, udp)
    _refused_through_the_proxy(world, served, role, addr, RESOLVER_OTHER_PORT, 12601)
