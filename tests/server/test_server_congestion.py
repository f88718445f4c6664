"""bonding-server's congestion control of the clients' connections (bonding.server.congestion):
the plan against the fake host, and against the real kernel in a namespace of the test's own
(root), where a connection accepted on a client's port gets the chosen congestion control
although the namespace's default is another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_fakehost import FakeHost

from bonding.server import congestion, service
from bonding.server.model import ServerError, UsageError
from bonding.server.store import Store

PYTHONPATH = str(Path(congestion.__file__).resolve().parents[2])


def test_ports_collapse_into_ranges() -> None:
    assert congestion.port_ranges([65103, 65101, 65102, 65110, 65101]) == [
        (65101, 65103), (65110, 65110)]
    assert congestion.rule_lines([65101, 65102, 65110]) == [
        "rule add pref 9470 ipproto tcp sport 65101-65102 lookup 2470",
        "rule add pref 9470 ipproto tcp sport 65110 lookup 2470"]


def test_a_route_is_copied_with_what_makes_it_the_same_route() -> None:
    line = congestion.route_line(
        {"dst": "203.0.113.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link",
         "prefsrc": "203.0.113.10", "flags": []}, "cubic")
    assert line == ("route append 203.0.113.0/24 table 2470 dev eth0 scope link proto kernel "
                    "src 203.0.113.10 congctl lock cubic")
    multi = congestion.route_line(
        {"dst": "default", "flags": [], "nexthops": [
            {"gateway": "192.0.2.1", "dev": "eth0", "weight": 1, "flags": []},
            {"gateway": "198.51.100.1", "dev": "eth1", "weight": 2, "flags": ["onlink"]}]},
        "cubic")
    assert multi == ("route append default table 2470 nexthop via 192.0.2.1 dev eth0 weight 1 "
                     "nexthop via 198.51.100.1 dev eth1 onlink weight 2 congctl lock cubic")
    # not unicast (a blackhole, unreachable, local): not copied, lookups fall through to main
    assert congestion.route_line({"dst": "10.0.0.0/8", "type": "blackhole", "flags": []},
                                 "cubic") is None


@pytest.fixture
def host_store(tmp_path: Path) -> tuple[FakeHost, Store]:
    host, store = FakeHost(), Store(tmp_path / "state")
    service.init(host, store, service.InitOptions(public_address="203.0.113.10"))
    service.add_client(host, store, service.AddOptions(name="c1"))
    service.add_client(host, store, service.AddOptions(name="c2"))
    return host, store


def _step(out: service.Outcome) -> service.Step:
    return next(s for s in out.steps if s.what.startswith("congestion control"))


def test_init_copies_the_main_table_with_cubic_and_a_second_init_changes_nothing(
        host_store: tuple[FakeHost, Store]) -> None:
    host, store = host_store
    for family in (4, 6):
        assert [r["dst"] for r in host.cc_table[family]] == [
            r["dst"] for r in host.main[family]]
        assert {m["congestion"] for r in host.cc_table[family] for m in r["metrics"]} == {
            "cubic"}
        assert [(r["sport_start"], r["sport_end"]) for r in host.rules[family]] == [
            (65101, 65102)]
    out = service.init(host, store, service.InitOptions())
    assert not _step(out).changed, _step(out)
    assert "cubic locked on the routes of 2 client port(s)" in _step(out).detail


def test_a_changed_main_table_or_a_flushed_copy_is_copied_again(
        host_store: tuple[FakeHost, Store]) -> None:
    host, store = host_store
    host.main[4][0] = {**host.main[4][0], "gateway": "203.0.113.2"}  # a new gateway (DHCP)
    out = service.init(host, store, service.InitOptions())
    assert _step(out).changed and "IPv4 copied" in _step(out).detail
    assert host.cc_table[4][0]["gateway"] == "203.0.113.2"
    host.cc_table[6] = []  # someone flushed it
    out = service.init(host, store, service.InitOptions())
    assert _step(out).changed and "IPv6 copied" in _step(out).detail
    assert not _step(service.init(host, store, service.InitOptions())).changed


def test_the_hosts_default_removes_the_table_and_the_rules(
        host_store: tuple[FakeHost, Store]) -> None:
    host, store = host_store
    out = service.init(host, store, service.InitOptions(congestion_control=""))
    assert _step(out).changed and _step(out).detail.startswith("the host's default")
    assert host.cc_table == {4: [], 6: []} and host.rules == {4: [], 6: []}
    assert store.require_server().congestion_control == ""


def test_bad_or_unknown_congestion_control_is_a_clear_error_and_nothing_is_lost(
        host_store: tuple[FakeHost, Store]) -> None:
    host, store = host_store
    with pytest.raises(UsageError, match=r"bad congestion control 'Cubic!'.*cubic or bbr"):
        service.init(host, store, service.InitOptions(congestion_control="Cubic!"))
    host.unknown_cc.add("vegas")
    with pytest.raises(ServerError, match=r"modprobe tcp_vegas.*--congestion-control ''"):
        service.init(host, store, service.InitOptions(congestion_control="vegas"))
    assert store.require_server().congestion_control == "vegas"  # as asked, said failing
    # back to one the kernel has: applied again
    out = service.init(host, store, service.InitOptions(congestion_control="cubic"))
    assert _step(out).changed


# --- the real kernel ------------------------------------------------------------------------------
NS = {"server": f"bcc{os.getpid()}-server", "client": f"bcc{os.getpid()}-client"}
SERVER, CLIENT = "192.0.2.1", "192.0.2.2"
PORT = 65101
# in the server's namespace: bonding.server.system.Host applies the plan for one client port;
# then what it accepts on that port and on another says its congestion control
_SERVER = textwrap.dedent("""
    import json, socket, sys
    from bonding.server import congestion
    from bonding.server.system import Host
    port, addr = int(sys.argv[1]), sys.argv[2]
    host = Host()
    main = host.ip_json(4, "route", "show", "table", "main")
    host.ip_batch(4, congestion.batch(main, "cubic", [port], 0))
    table = host.ip_json(4, "route", "show", "table", str(congestion.TABLE))
    rules = [r for r in host.ip_json(4, "rule", "show") if r.get("priority") == 9470]
    out = {"same": congestion.have(table, rules) == congestion.wanted(main, "cubic", [port]),
           "table": table, "rules": rules}
    listeners = [socket.create_server((addr, p)) for p in (port, port + 1)]
    print("ready", flush=True)
    for p, ls in zip((port, port + 1), listeners):
        ls.settimeout(10)
        a, _ = ls.accept()
        out[str(p)] = a.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(
            b"\\0").decode()
        a.close()
        ls.close()
    print(json.dumps(out))
""")
_CLIENT = ("import socket, sys\n"
           "for p in (int(sys.argv[1]), int(sys.argv[1]) + 1):\n"
           "    socket.create_connection((sys.argv[2], p), timeout=10).close()\n")


@pytest.fixture
def netns() -> Iterator[dict[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces): run the tests as root, as CI does")
    try:
        for ns in NS.values():
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", NS["server"], "link", "add", "s0", "type", "veth", "peer",
                        "name", "c0", "netns", NS["client"]], check=True)
        for role, dev, addr in (("server", "s0", SERVER), ("client", "c0", CLIENT)):
            for cmd in (["link", "set", dev, "up"], ["addr", "add", f"{addr}/24", "dev", dev]):
                subprocess.run(["ip", "-n", NS[role], *cmd], check=True)
        # the server's default is not cubic (reno is always there and always allowed)
        subprocess.run(["ip", "netns", "exec", NS["server"], "sysctl", "-qw",
                        "net.ipv4.tcp_congestion_control=reno"], check=True)
        yield NS
    finally:
        for ns in NS.values():
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_a_connection_accepted_on_a_client_port_gets_the_locked_cubic(
        netns: dict[str, str]) -> None:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    srv = subprocess.Popen(["ip", "netns", "exec", netns["server"], sys.executable, "-c",
                            _SERVER, str(PORT), SERVER], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready", srv.stderr.read() if srv.stderr else ""
        subprocess.run(["ip", "netns", "exec", netns["client"], sys.executable, "-c", _CLIENT,
                        str(PORT), SERVER], check=True, timeout=30)
        stdout, stderr = srv.communicate(timeout=30)
    finally:
        srv.kill()
        srv.wait()
    assert srv.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["same"], out  # the kernel holds what the plan says (ip's JSON read back)
    assert {m["congestion"] for t in out["table"] for m in t["metrics"]} == {"cubic"}, out
    assert out[str(PORT)] == "cubic", out
    assert out[str(PORT + 1)] == "reno", out  # another port: the namespace's default
    lock = subprocess.run(["ip", "-n", netns["server"], "route", "show", "table",
                           str(congestion.TABLE)], capture_output=True, text=True, check=True)
    assert lock.stdout and all("congctl lock cubic" in line
                               for line in lock.stdout.splitlines()), lock.stdout
