"""Pinning in the lab (root), with real traffic: the full path (sing-box on both ends, 3 links
of 50/30/20 Mbit/s) and `config rule` sections in the router's config.

Rule 'pin' pins the LAN host's TCP to ports 5201 (iperf3) and 8090 (whoami) to wan2; whatever
else it sends stays bonded.  Rule 'noquic' refuses its UDP to port 443 of the target.  Rule
'dom' pins TCP to port 8092 of what dnsmasq (on the router) resolves pinned.example to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _full_path
from steps import rates_during

from bonding.lab.commands import nft, nsx
from bonding.lab.delay import STATE_ROOT, python_env
from bonding.lab.topology import (
    LAN_HOST6,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    TARGET_ADDR6,
    Lab,
)
from bonding.lab.traffic import (
    Service,
    first_answer_from,
    lan_transfer,
    link_rates,
    path_state,
    try_ask_from,
    wait_all_up,
    wait_for,
    wait_proxy_running,
)

pytestmark = pytest.mark.lab

PINNED, UNPINNED, QUIC, BY_NAME = 8090, 8091, 443, 8092
DOMAIN = "pinned.example"
WAN = {"wan1": "100.64.1.2", "wan2": "100.64.2.2", "wan3": "100.64.3.2"}
RULES = f"""
config rule 'pin'
\toption proto 'tcp'
\tlist dest_port '5201'
\tlist dest_port '{PINNED}'
\toption path 'wan2'
\toption fallback 'bond'

config rule 'noquic'
\toption dest_ip '{TARGET_ADDR}'
\toption proto 'udp'
\tlist dest_port '{QUIC}'
\toption block_quic '1'

config rule 'dom'
\tlist dest_domain '{DOMAIN}'
\toption proto 'tcp'
\tlist dest_port '{BY_NAME}'
\toption path 'wan2'
"""
# where bondingd writes dnsmasq's nftset lines (the lab's state root, not the host's /tmp)
NFTSET_CONF = STATE_ROOT / f"pinning-{os.getpid()}-dnsmasq.conf"
# counts the connections that leave the router's WANs for the pinned port (a table of the
# test's own).  Rules judge a connection's first packet, so only SYNs count: the tail of a
# connection opened before wan2 died (FIN or ACK retransmits) keeps its ct mark and its link.
COUNT = ("table inet labcount {\n\tchain post {\n\t\ttype filter hook postrouting priority 0;\n"
         + "".join(f'\t\toifname "{w}" tcp dport {PINNED} tcp flags & (syn | ack) == syn counter\n'
                   for w in WAN)
         + "\t}\n}\n")


@pytest.fixture(scope="module", params=("sing-box",))
def pin_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The full path with the rules above (sing-box on both ends, the default)."""
    yield from _full_path(request, "p", config_extra=RULES,
                          options={"dnsmasq_nftset": str(NFTSET_CONF)})


@pytest.fixture
def pin(pin_lab: Lab) -> Iterator[Lab]:
    """The lab with every fault cleared, every path up, rule 'pin' as written above."""
    _reset(pin_lab)
    yield pin_lab
    _reset(pin_lab)


def _reset(lab: Lab) -> None:
    for link in lab.load().links:
        lab.clear(link.name)
    _set_rule(lab, "pin", fallback="bond")
    assert wait_all_up(lab, 20), lab.status().get("paths")
    assert wait_proxy_running(lab, 10), lab.status().get("proxy")
    assert wait_for(lambda: _rule(lab, "pin").get("effective") == "path:wan2", 5), \
        lab.status().get("rules")


def _rule(lab: Lab, name: str) -> dict[str, object]:
    return next((r for r in lab.status().get("rules", []) if r["name"] == name), {})


def _set_rule(lab: Lab, name: str, **options: str) -> None:
    """Change options of a rule section and wait until bondingd uses them."""
    lab.set_options({name: options})
    if "fallback" in options:
        assert wait_for(lambda: _rule(lab, name).get("fallback") == options["fallback"], 10), \
            lab.status().get("rules")
    if "block_quic" in options:
        want = options["block_quic"] == "1"
        assert wait_for(lambda: _rule(lab, name).get("block_quic") is want, 10), \
            lab.status().get("rules")


def _whoami(lab: Lab, port: int = PINNED, timeout: float = 2.0) -> str | None:
    return try_ask_from(lab, "lan", "whoami", TARGET_ADDR, port, timeout=timeout)


def _kill_wan2(lab: Lab) -> None:
    lab.blackhole("wan2")
    assert wait_for(lambda: path_state(lab, "wan2") == "down", 5) is not None


def test_a_pinned_flow_leaves_only_through_wan2_and_the_target_sees_its_address(
        pin: Lab) -> None:
    with Service(pin, "target", "whoami", PINNED):
        assert _whoami(pin) == WAN["wan2"]
    # iperf3 to port 5201: pinned too
    r, report = rates_during(pin, lan_transfer(pin, 6), 1.5, 3, timeout=25)
    # wan2 carries the flow at its rate (30 Mbit/s), the others only their probes
    assert r["wan2"] > 0.8 * 30e6, r
    assert r["wan1"] < 0.5e6 and r["wan3"] < 0.5e6, r
    got = report["end"]["sum_received"]["bits_per_second"]
    assert got < 31e6, got  # no more than one link can carry: it was not bonded
    rule = _rule(pin, "pin")
    assert (rule["action"], rule["effective"], rule["why"]) == ("path:wan2", "path:wan2",
                                                               "wan2 up")


def test_unpinned_traffic_stays_bonded(pin: Lab) -> None:
    with Service(pin, "target", "whoami", UNPINNED), Service(pin, "target", "whoami", PINNED):
        assert _whoami(pin, UNPINNED) == SERVER_ADDR  # through the proxy and the server
        assert _whoami(pin, PINNED) == WAN["wan2"]


def _wan2_dies(lab: Lab, fallback: str) -> None:
    """The pinned flow leaves by wan2; wan2 dies, and the rule's fallback takes over, saying
    why in status."""
    assert _whoami(lab) == WAN["wan2"]
    _kill_wan2(lab)
    assert wait_for(lambda: _rule(lab, "pin").get("effective") == fallback, 3), \
        lab.status().get("rules")
    assert _rule(lab, "pin")["why"] == f"wan2 down (down): fallback {fallback}"


def test_wan2_down_fallback_bond_goes_through_the_proxy(pin: Lab) -> None:
    with Service(pin, "target", "whoami", PINNED):
        _wan2_dies(pin, "bond")
        assert _whoami(pin) == SERVER_ADDR


def test_wan2_down_fallback_any_goes_natively_through_another_wan(pin: Lab) -> None:
    _set_rule(pin, "pin", fallback="any")
    with Service(pin, "target", "whoami", PINNED):
        _wan2_dies(pin, "any")
        # native (the target sees a WAN's address, not the server's), by a live WAN
        assert _whoami(pin) in (WAN["wan1"], WAN["wan3"])


def _counted(lab: Lab) -> dict[str, int]:
    ns = lab.load().namespaces["router"]
    r = subprocess.run(nsx(ns, "nft", "-j", "list", "table", "inet", "labcount"),
                       capture_output=True, text=True, check=True)
    out = {}
    for item in json.loads(r.stdout)["nftables"]:
        expr = item.get("rule", {}).get("expr", [])
        dev = next((e["match"]["right"] for e in expr if "match" in e
                    and e["match"]["left"] == {"meta": {"key": "oifname"}}), None)
        packets = next((e["counter"]["packets"] for e in expr if "counter" in e), None)
        if dev is not None and packets is not None:
            out[dev] = packets
    return out


def test_wan2_down_fallback_drop_lets_nothing_out(pin: Lab) -> None:
    _set_rule(pin, "pin", fallback="drop")
    ns = pin.load().namespaces["router"]
    with Service(pin, "target", "whoami", PINNED):
        _wan2_dies(pin, "drop")
        # status gets a rule's decision only once nft has loaded it (Pinning.apply sets it after
        # nft -f returned, and status.json is written after that): the table says it already
        assert " drop" in subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "bonding_rules"],
            capture_output=True, text=True, check=False).stdout, "no drop in the table"
        nft(ns, COUNT)
        try:
            assert _whoami(pin, timeout=2) is None
            assert _counted(pin) == {"wan1": 0, "wan2": 0, "wan3": 0}
            # unpinned traffic goes on, bonded over the live links
            with Service(pin, "target", "whoami", UNPINNED):
                assert _whoami(pin, UNPINNED) == SERVER_ADDR
        finally:
            nft(ns, "delete table inet labcount\n")


def _udp443(lab: Lab) -> tuple[str, float]:
    """What a UDP client to the target's port 443 gets (the answer, 'refused' or 'timeout')
    and after how many ms."""
    return first_answer_from(lab, "lan", TARGET_ADDR, QUIC)


def test_block_quic_refuses_udp_443_at_once_and_only_that(pin: Lab) -> None:
    with Service(pin, "target", "udp-echo", QUIC), Service(pin, "target", "whoami", UNPINNED):
        answer, ms = _udp443(pin)
        assert answer == "refused", answer  # ICMP port unreachable from the router
        assert ms < 100, ms
        # TCP to the same host still bonds
        assert _whoami(pin, UNPINNED) == SERVER_ADDR
        _set_rule(pin, "noquic", block_quic="0")
        try:
            time.sleep(0.2)
            answer, ms = _udp443(pin)
            assert answer == f"{SERVER_ADDR} quic-initial", answer  # proxied UDP
        finally:
            _set_rule(pin, "noquic", block_quic="1")


def test_a_bonded_connection_keeps_its_way_when_wan2_comes_back(pin: Lab) -> None:
    """The rules judge new connections only: one opened while wan2 was down (bonded, fallback
    bond) stays bonded when the pin comes back, instead of leaking out of wan2 mid-stream with
    the LAN host's address."""
    _kill_wan2(pin)
    assert wait_for(lambda: _rule(pin, "pin").get("effective") == "bond", 3)
    t = lan_transfer(pin, 10)  # port 5201: pinned while wan2 is up
    t.start()
    try:
        time.sleep(2)
        pin.clear("wan2")
        assert wait_for(lambda: _rule(pin, "pin").get("effective") == "path:wan2", 10), \
            pin.status().get("rules")
        r = link_rates(pin, 1, 2)
        report = t.result(timeout=30)
    finally:
        t.stop()
    end = report["end"]["sum_received"]
    assert end["seconds"] > 9.5, end  # it ran to its end
    assert end["bytes"] > 10 * 40e6 / 8, end  # bonded all along: more than wan2 alone
    # still bonded (the links' subflows), not pinned to wan2 alone
    assert r["wan1"] > 5e6 and r["wan3"] > 2e6, r


def test_ubus_status_and_bondingctl_say_what_each_rule_does_and_why(pin: Lab) -> None:
    st = pin.load()
    prefix = os.environ.get("OWRT_PREFIX")
    assert st.ubus_socket and prefix, "no ubusd in the lab: set OWRT_PREFIX (make deps)"
    _set_rule(pin, "pin", fallback="any")
    _kill_wan2(pin)
    assert wait_for(lambda: _rule(pin, "pin").get("effective") == "any", 3)
    r = subprocess.run(nsx(st.namespaces["router"], f"{prefix}/bin/ubus", "-s", st.ubus_socket,
                           "call", "bonding", "status"), capture_output=True, text=True,
                       env={**os.environ, "LD_LIBRARY_PATH": f"{prefix}/lib"}, check=True)
    rules = {x["name"]: x for x in json.loads(r.stdout)["rules"]}
    assert rules["pin"] == {"name": "pin", "match": f"proto tcp dest_port 5201,{PINNED}",
                            "action": "path:wan2", "fallback": "any", "block_quic": False,
                            "effective": "any", "why": "wan2 down (down): fallback any"}
    assert (rules["noquic"]["effective"], rules["noquic"]["block_quic"]) == ("bond", True)
    ctl = subprocess.run(nsx(st.namespaces["router"], sys.executable, "-m", "bonding.ctl",
                             "--socket", st.ubus_socket, "status"),
                         capture_output=True, text=True, env=python_env(), check=False)
    assert ctl.returncode == 0, ctl.stderr
    row = next(ln for ln in ctl.stdout.splitlines() if ln.startswith("pin "))
    assert row.split()[:2] == ["pin", "proto"]
    assert "path:wan2 (fallback any)" in row
    assert row.split()[-6:] == ["any", "wan2", "down", "(down):", "fallback", "any"]
    assert "(from " not in ctl.stdout  # it came over ubus, not from status.json


def test_the_pinned_devices_ipv6_goes_natively_by_its_prefix(pin: Lab) -> None:
    """IPv6 is not NATed: what rule 'pin' matches in IPv6 (it has no address match) leaves
    natively by the route of the LAN's prefix (wan1's ISP delegated it) with the host's own
    address, not through the proxy; what it does not match is still proxied."""
    with Service(pin, "target", "whoami", PINNED), Service(pin, "target", "whoami", UNPINNED):
        assert try_ask_from(pin, "lan", "whoami", TARGET_ADDR6, PINNED) == LAN_HOST6
        assert try_ask_from(pin, "lan", "whoami", TARGET_ADDR6, UNPINNED) == SERVER_ADDR6


_DNS_UPSTREAM = f"""
import socket, sys
from bonding.lab.services import dns_answer
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 5300))
print("ready", flush=True)
while True:
    q, peer = u.recvfrom(512)
    r = dns_answer(q)
    if r is not None:  # the A record: the target's address
        u.sendto(r[:-4] + socket.inet_aton("{TARGET_ADDR}") if r[7] else r, peer)
"""

_RESOLVE_AND_ASK = """
import socket, sys
from bonding.lab.services import dns_query, parse_dns_a
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(dns_query(sys.argv[1]), ("192.0.2.1", 53))
addr = parse_dns_a(u.recv(512))[0]
with socket.create_connection((addr, int(sys.argv[2])), timeout=3) as c:
    print(addr, c.makefile().readline().strip())
"""


def test_a_domain_is_pinned_once_dnsmasq_resolved_it(pin: Lab) -> None:
    """dest_domain: bondingd writes dnsmasq's nftset lines; dnsmasq on the router (as on
    OpenWrt) puts what it resolves for the LAN in the rule's set, and from then on connections
    to those addresses leave by wan2."""
    assert shutil.which("dnsmasq"), "dnsmasq for the lab: apt-get install dnsmasq-base " \
        "(make deps installs it)"
    st = pin.load()
    ns = st.namespaces
    assert wait_for(NFTSET_CONF.exists, 5), "bondingd wrote no nftset file"
    assert f"nftset=/{DOMAIN}/4#inet#bonding_rules#d4_dom,6#inet#bonding_rules#d6_dom" in \
        NFTSET_CONF.read_text()
    upstream = subprocess.Popen(nsx(ns["target"], sys.executable, "-c", _DNS_UPSTREAM),
                                stdout=subprocess.PIPE, text=True, env=python_env())
    log = Path(st.state_dir) / "dnsmasq.log"
    dnsmasq = subprocess.Popen(nsx(
        ns["router"], "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
        "--user=root", "--bind-interfaces", "--listen-address=192.0.2.1", "--port=53",
        f"--server={TARGET_ADDR}#5300", f"--conf-file={NFTSET_CONF}", f"--log-facility={log}",
        "--log-queries", "--pid-file="), stdin=subprocess.DEVNULL)
    try:
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
        with Service(pin, "target", "whoami", BY_NAME):
            # before the name is resolved its address is nobody's: bonded
            assert _whoami(pin, BY_NAME) == SERVER_ADDR
            r = subprocess.run(nsx(ns["lan"], sys.executable, "-c", _RESOLVE_AND_ASK, DOMAIN,
                                   str(BY_NAME)), capture_output=True, text=True,
                               env=python_env(), timeout=20, check=False)
            assert r.returncode == 0, r.stderr + log.read_text()
            # resolved by dnsmasq: the connection right after leaves by wan2
            assert r.stdout.split() == [TARGET_ADDR, WAN["wan2"]]
            assert _whoami(pin, BY_NAME) == WAN["wan2"]
            with Service(pin, "target", "whoami", UNPINNED):  # another port: not the rule's
                assert _whoami(pin, UNPINNED) == SERVER_ADDR
    finally:
        nft(ns["router"], "flush set inet bonding_rules d4_dom\n")
        dnsmasq.kill()
        dnsmasq.wait()
        upstream.kill()
        upstream.wait()
