"""The plan as data, idempotent init, and the commands with a fake host (no root)."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from server_fakehost import FakeHost

from bonding import config
from bonding import uci as uci_mod
from bonding.server import cli, plan, service
from bonding.server.model import Client, ServerConfig, ServerError, UsageError
from bonding.server.store import Store

CFG = ServerConfig(public_address="203.0.113.10", systemd=False, user="nobody")
FACTS = plan.Facts(uids=(65534,), interface="eth0", networks=("203.0.113.0/24", "10.77.0.0/24"),
                   nameservers=("127.0.0.53", "2001:db8::53"), state_dir="/srv/bs")
A = Client(name="a", port=65101, key="key-a-0123456789abcdef", rate_mbit=20.0, created=1.0)
B = Client(name="b", port=65102, key="key-b-0123456789abcdef", rate_mbit=None, created=1.0)
C = Client(name="c", port=65103, key="key-c-0123456789abcdef", rate_mbit=2.5, created=1.0)
INIT = ["init", "--no-systemd", "--public-address", "203.0.113.10"]


# --- the plan -------------------------------------------------------------------------------------
def test_the_plan_is_a_function_of_its_inputs() -> None:
    assert plan.nft_table(CFG, [A, B], FACTS) == plan.nft_table(CFG, [A, B], FACTS)
    assert plan.tc_commands([A, B, C], "eth0", True) == plan.tc_commands([A, B, C], "eth0", True)
    assert plan.nft_table(CFG, [A, B], FACTS) != plan.nft_table(CFG, [A], FACTS)
    assert plan.tc_commands([A], "eth0", True) != plan.tc_commands([A, C], "eth0", True)


def test_firewall_blocks_the_servers_own_networks_for_the_proxy_user_only() -> None:
    t = plan.nft_table(CFG, [A, B], FACTS)
    lines = [x.strip() for x in t.splitlines()]
    # the connected 10.77.0.0/24 merges into 10.0.0.0/8 (nft rejects overlapping intervals)
    assert ("elements = { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 168.63.129.16, "
            "169.254.0.0/16, 172.16.0.0/12, 192.0.0.0/24, 192.88.99.0/24, 192.168.0.0/16, "
            "198.18.0.0/15, 203.0.113.0/24, 224.0.0.0/3 }") in lines
    assert "198.51.100" not in t  # documentation ranges stay reachable (the lab's internet)
    # every packet of the proxies' user is checked, whichever way conntrack sees it, but the
    # replies on the clients' connections to their ports
    assert "meta skuid { 65534 } jump proxy" in lines and "ct direction original" not in t
    assert "elements = { 65101, 65102 }" in lines
    chain = t[t.index("chain proxy {"):t.index("chain refuse {")]
    order = ["th sport @ports ct direction reply return", "@dns4 return", "goto forbidden",
             "@allowed4 return", "fib daddr type local goto refuse", "@blocked4 goto refuse",
             "@blocked6 goto refuse"]
    assert [chain.index(x) for x in order] == sorted(chain.index(x) for x in order)
    # the kernel's own MPTCP subflow SYNs (no socket owner) meet the same block list
    assert "tcp flags syn / syn,ack tcp option mptcp exists jump subflow" in lines
    sub = t[t.index("chain subflow {"):t.index("chain forbidden {")]
    assert sub.index("meta skuid 0-4294967295 return") < sub.index("goto forbidden")
    assert "elements = { 127.0.0.53 }" in lines and "elements = { 2001:db8::53 }" in lines
    assert "meta l4proto tcp reject with tcp reset" in lines
    for c in (A, B):
        assert (f'meta l4proto {{ tcp, udp }} th dport {c.port} counter name "c_{c.name}_in"'
                in lines)
        assert (f'meta l4proto {{ tcp, udp }} th sport {c.port} counter name "c_{c.name}_out"'
                in lines)


def test_public_addresses_and_cloud_platform_addresses_are_blocked() -> None:
    # behind a 1:1 NAT the public address is not local: listed by itself; a DNS name is not
    cfg = ServerConfig("198.51.100.50", False, "nobody", public_address6="2001:db8::10")
    lines = [x.strip() for x in plan.nft_table(cfg, [A], FACTS).splitlines()]
    block4, block6 = plan.blocked_networks(FACTS, cfg)
    assert "198.51.100.50" in block4 and "2001:db8::10" in block6
    assert "168.63.129.16" in block4  # Azure's wireserver
    assert "64:ff9b::/96" in block6 and "64:ff9b:1::/48" in block6  # NAT64
    assert {"100.64.0.0/10", "169.254.0.0/16"} <= set(block4)  # Alibaba's, most clouds' metadata
    assert "fc00::/7" in block6  # AWS's metadata over IPv6, fd00:ec2::254
    assert f"elements = {{ {', '.join(block4)} }}" in lines
    named = ServerConfig("vpn.example.org", False, "nobody")
    assert plan.blocked_networks(FACTS, named) == plan.blocked_networks(FACTS, CFG)


def test_allow_list_and_carried_counters() -> None:
    cfg = ServerConfig("203.0.113.10", False, "nobody", allow=("10.9.0.0/16", "10.9.1.0/24"))
    t = plan.nft_table(cfg, [A], FACTS, {"c_a_in": (5, 100), "refused": (7, 420)})
    assert "elements = { 10.9.0.0/16 }" in t
    assert "counter c_a_in {\n\t\tpackets 5 bytes 100\n\t}" in t
    assert "counter refused {\n\t\tpackets 7 bytes 420\n\t}" in t
    assert "counter c_a_out {\n\t\tpackets 0 bytes 0\n\t}" in t


def test_shaping_per_client_both_directions() -> None:
    assert plan.tc_commands([B], "eth0", True) == []  # no limit, no qdisc at all
    lines = plan.tc_commands([A, B, C], "eth0", False)
    assert lines[0] == "qdisc replace dev eth0 root handle 1: htb default 0"
    assert ("class add dev eth0 parent 1: classid 1:fe4d htb rate 20000kbit ceil 20000kbit "
            "burst 12500 cburst 12500 quantum 60000") in lines
    assert ("class add dev eth0 parent 1: classid 1:fe4f htb rate 2500kbit ceil 2500kbit "
            "burst 3028 cburst 3028 quantum 60000") in lines
    assert ("filter add dev eth0 parent 1: protocol ip prio 10 u32 match ip sport 65101 0xffff "
            "flowid 1:fe4d") in lines
    assert ("filter add dev eth0 parent ffff: protocol ip prio 10 u32 match ip dport 65103 "
            f"0xffff action mirred egress redirect dev {plan.IFB}") in lines
    assert (f"filter add dev {plan.IFB} parent 1: protocol ip prio 10 u32 match ip dport 65101 "
            "0xffff flowid 1:fe4d") in lines
    assert not any("65102" in x for x in lines)  # b has no limit
    assert not any("ipv6" in x for x in lines)
    assert any("match ip6 sport 65101" in x for x in plan.tc_commands([A], "eth0", True))


def test_units_and_proxy_config() -> None:
    cfg = ServerConfig("203.0.113.10", True, "bonding-server", proxy="shadowsocks-libev")
    units = plan.units(cfg, FACTS)
    tmpl = units["/etc/systemd/system/bonding-server@.service"]
    assert "User=bonding-server\n" in tmpl
    assert "LoadCredential=proxy.json:/srv/bs/run/%i.ss.json\n" in tmpl
    assert ("ExecStart=/usr/bin/mptcpize run /usr/bin/ss-server -c "
            "${CREDENTIALS_DIRECTORY}/proxy.json\n") in tmpl
    assert "Restart=always" in tmpl
    assert "GODEBUG" not in tmpl
    svc = units["/etc/systemd/system/bonding-server.service"]
    assert "ExecStart=/usr/bin/bonding-server --state-dir /srv/bs apply\n" in svc
    assert "net.mptcp.enabled = 1" in units["/etc/sysctl.d/90-bonding-server.conf"]
    ss = json.loads(plan.ss_config(A, True))
    assert ss == {"server": ["0.0.0.0", "::"], "server_port": 65101, "password": A.key,
                  "method": "chacha20-ietf-poly1305", "mode": "tcp_and_udp",
                  "timeout": plan.SS_TIMEOUT_S, "no_delay": True, "fast_open": False}
    assert plan.ss_command(FACTS, "/x.json", "nobody") == [
        "/usr/bin/mptcpize", "run", "/usr/bin/ss-server", "-c", "/x.json", "-a", "nobody"]
    run = plan.proxy_run("shadowsocks-libev", FACTS, "/x.json", "nobody")
    assert (run.user, run.config_on_stdin, run.env) == (None, False, {})  # ss-server drops -a


def test_sing_box_units_and_proxy_config() -> None:
    cfg = ServerConfig("203.0.113.10", True, "bonding-server", proxy="sing-box")
    tmpl = plan.units(cfg, FACTS)["/etc/systemd/system/bonding-server@.service"]
    assert "Description=bonding-server: sing-box proxy for client %i\n" in tmpl
    assert "User=bonding-server\n" in tmpl
    assert "LoadCredential=proxy.json:/srv/bs/run/%i.sing-box.json\n" in tmpl
    assert "Environment=GODEBUG=multipathtcp=0\n" in tmpl
    assert ("ExecStart=/usr/bin/sing-box run --disable-color -c "
            "${CREDENTIALS_DIRECTORY}/proxy.json\n") in tmpl
    assert "mptcpize" not in tmpl
    sb = json.loads(plan.proxy_config("sing-box", A, True))
    (inb,) = sb["inbounds"]
    # MPTCP on the clients' listener only; the outbound is plain (GODEBUG keeps Go's default
    # MPTCP listener off everywhere tcp_multi_path does not ask for it)
    assert inb == {"type": "shadowsocks", "tag": "client", "listen": "::", "listen_port": 65101,
                   "tcp_multi_path": True, "method": A.cipher, "password": A.key}
    assert sb["outbounds"] == [{"type": "direct", "tag": "internet"}]
    assert sb["route"] == {"final": "internet"}
    assert json.loads(plan.proxy_config("sing-box", A, False))["inbounds"][0]["listen"] == \
        "0.0.0.0"
    run = plan.proxy_run("sing-box", FACTS, "/srv/bs/run/a.sing-box.json", "nobody")
    # the supervisor starts it as the proxy user and hands it the root-only config on stdin
    assert run.argv == ("/usr/bin/sing-box", "run", "--disable-color", "-c", "stdin")
    assert (run.user, run.config_on_stdin, dict(run.env)) == (
        "nobody", True, {"GODEBUG": "multipathtcp=0"})


# --- init, idempotent -----------------------------------------------------------------------------
def _init(host: FakeHost, store: Store, **kw: object) -> service.Outcome:
    opts = {"public_address": "203.0.113.10", "systemd": False, **kw}
    return service.init(host, store, service.InitOptions(**opts))  # type: ignore[arg-type]


def test_second_init_changes_nothing(tmp_path: Path) -> None:
    host, store = FakeHost(), Store(tmp_path / "s")
    first = _init(host, store)
    changed = {s.what for s in first.steps if s.changed}
    assert {"settings", "sysctl net.ipv4.tcp_wmem", "mptcp limits",
            "firewall (nft table inet bonding_server)"} <= changed
    assert "sysctl net.mptcp.enabled" not in changed  # it was 1 already
    assert host.limits == {"subflows": 8, "add_addr_accepted": 0}  # the server opens no subflow
    host.changes.clear()
    second = _init(host, store)
    assert not second.changed, [s for s in second.steps if s.changed]
    assert host.changes == []
    # Options left out keep what the first init decided.
    assert not service.init(host, store, service.InitOptions()).changed
    assert host.changes == []


def test_init_repairs_drift(tmp_path: Path) -> None:
    host, store = FakeHost(), Store(tmp_path / "s")
    _init(host, store)
    host.sysctls["net.ipv4.tcp_slow_start_after_idle"] = "1"  # somebody changed it
    host.table = (host.table or "").replace("goto refuse", "accept")  # …and our table
    host.changes.clear()
    out = _init(host, store)
    assert [s.what for s in out.steps if s.changed] == [
        "sysctl net.ipv4.tcp_slow_start_after_idle", "firewall (nft table inet bonding_server)"]
    assert "goto refuse" in (host.table or "")


def test_init_with_systemd_writes_units_once(tmp_path: Path) -> None:
    host, store = FakeHost(systemd=True), Store(tmp_path / "s")
    out = service.init(host, store, service.InitOptions(public_address="vps.example.com"))
    changed = [s.what for s in out.steps if s.changed]
    assert "bonding-server" not in host.users  # no client yet: no proxy user
    assert "systemctl daemon-reload" in changed
    assert "enable bonding-server.service" in changed
    assert set(host.files) == {"/etc/systemd/system/bonding-server.service",
                               "/etc/systemd/system/bonding-server@.service",
                               "/etc/systemd/system/bonding-server-guard.service",
                               "/etc/sysctl.d/90-bonding-server.conf"}
    assert "bonding-server-guard.service" in host.units_active  # the handshake guard runs
    assert "guard\n" in host.files["/etc/systemd/system/bonding-server-guard.service"].decode()
    host.changes.clear()
    assert not service.init(host, store, service.InitOptions()).changed
    assert host.changes == []


def test_init_errors(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with pytest.raises(ServerError, match=r"systemd is not running here.*--no-systemd"):
        service.init(FakeHost(), store, service.InitOptions(public_address="203.0.113.10",
                                                            systemd=True))
    host = FakeHost()
    host.missing = {"sing-box", "ss-server"}  # no sing-box: ss-libev, and that is missing too
    with pytest.raises(ServerError, match=r"ss-server \(apt-get install shadowsocks-libev\)"):
        _init(host, store)
    host.missing = {"sing-box"}
    with pytest.raises(ServerError, match=r"missing: sing-box \(install sing-box 1.12 or later"):
        _init(host, store, proxy="sing-box")
    with pytest.raises(UsageError, match="interface 'eth9' does not exist"):
        _init(FakeHost(), store, interface="eth9")
    assert not store.server_file.exists()  # nothing written by a failed init
    out = service.init(FakeHost(), store, service.InitOptions(user="nobody"))
    assert "no systemd" in out.steps[0].detail  # the default where systemd does not run
    assert out.notes == ["proxy sing-box (installed; choose with --proxy)",
                         "public address 203.0.113.10 (from the routing table; pass "
                         "--public-address if the clients see another one)"]


def test_a_proxy_program_the_proxies_user_cannot_run_is_an_error_that_says_why(
        tmp_path: Path) -> None:
    host = FakeHost()
    host.not_runnable["/usr/bin/sing-box"] = "user 'nobody' may not enter directory /root"
    with pytest.raises(ServerError, match=r"the proxies run as unprivileged users "
                       r"\(bonding-server-PORT\), who cannot run /usr/bin/sing-box: user "
                       r"'nobody' may not enter directory /root; install it where every user "
                       r"can reach it"):
        _init(host, Store(tmp_path / "a"), proxy="sing-box")


def test_exec_problem_walks_the_real_path() -> None:
    """As the proxies' user (nobody, own group only) against real directories and modes."""
    from bonding.server.system import exec_problem
    if os.geteuid() != 0:
        pytest.skip("needs root: it makes files another user cannot reach")
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's tmp_path is private (0700)
        _exec_problem_cases(Path(top), exec_problem)


def _exec_problem_cases(tmp_path: Path, exec_problem: Callable[[str, str], str | None]) -> None:
    d = tmp_path / "private" / "bin"
    d.mkdir(parents=True)
    prog = d / "sing-box"
    prog.write_bytes(b"#!/bin/sh\n")
    for p in (tmp_path, tmp_path / "private", d):
        p.chmod(0o755)
    prog.chmod(0o755)
    assert exec_problem(str(prog), "nobody") is None
    assert exec_problem(str(prog), "root") is None
    (tmp_path / "private").chmod(0o700)  # a checkout under /root
    assert exec_problem(str(prog), "nobody") == (
        f"user 'nobody' may not enter directory {tmp_path / 'private'} (mode 0700, owner uid 0)")
    (tmp_path / "private").chmod(0o755)
    prog.chmod(0o744)
    assert exec_problem(str(prog), "nobody") == (
        f"user 'nobody' may not run program {prog} (mode 0744, owner uid 0)")
    prog.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(prog)  # what the link points at counts too
    d.chmod(0o700)
    assert "may not enter directory " + str(d) in str(exec_problem(str(link), "nobody"))
    assert exec_problem(str(prog), "no-such-user") == "user 'no-such-user' does not exist"


def test_sing_box_is_the_default_when_installed_and_ss_libev_stays_selectable(
        tmp_path: Path) -> None:
    host = FakeHost()
    host.missing = {"sing-box"}
    out = _init(host, Store(tmp_path / "a"))
    assert store_proxy(tmp_path / "a") == "shadowsocks-libev"
    assert "proxy shadowsocks-libev (sing-box is not installed; choose with --proxy)" in out.notes
    _init(FakeHost(), Store(tmp_path / "b"))
    assert store_proxy(tmp_path / "b") == "sing-box"
    _init(FakeHost(), Store(tmp_path / "c"), proxy="shadowsocks-libev")
    assert store_proxy(tmp_path / "c") == "shadowsocks-libev"
    _init(FakeHost(), Store(tmp_path / "c"))  # a later init keeps the choice
    assert store_proxy(tmp_path / "c") == "shadowsocks-libev"


def store_proxy(state: Path) -> str:
    return Store(state).require_server().proxy


def test_switching_the_proxy_rewrites_the_configs_and_keeps_the_clients(tmp_path: Path) -> None:
    host, store = FakeHost(), Store(tmp_path / "s")
    _init(host, store, proxy="shadowsocks-libev")
    old = _add(host, store, "old")  # chacha20-ietf-poly1305: both proxies speak it
    assert old.cipher == "chacha20-ietf-poly1305"
    assert store.proxy_config_path("old", "ss").exists()
    _init(host, store, proxy="sing-box")
    assert not store.proxy_config_path("old", "ss").exists()
    inb = json.loads(store.proxy_config_path("old", "sing-box").read_bytes())["inbounds"][0]
    assert (inb["method"], inb["password"]) == (old.cipher, old.key)
    new = _add(host, store, "new")
    assert new.cipher == "2022-blake3-aes-128-gcm"
    # ss-libev cannot serve a Shadowsocks-2022 client: refused, nothing changed
    before = _files(store), store.require_server()
    with pytest.raises(UsageError, match=r"shadowsocks-libev does not speak the cipher of "
                                         r"client\(s\) new \(2022-blake3-aes-128-gcm\)"):
        _init(host, store, proxy="shadowsocks-libev")
    assert (_files(store), store.require_server()) == before


@pytest.mark.parametrize(("cipher", "size"), [(None, 16), ("2022-blake3-chacha20-poly1305", 32),
                                              ("chacha20-ietf-poly1305", None)])
def test_add_client_cipher(tmp_path: Path, cipher: str | None, size: int | None) -> None:
    host, store = _ready(tmp_path)
    c, _, _ = service.add_client(host, store, service.AddOptions("a", cipher=cipher))
    assert c.cipher == (cipher or "2022-blake3-aes-128-gcm")
    if size is not None:
        assert len(base64.b64decode(c.key)) == size


def test_add_client_cipher_the_proxy_does_not_speak(tmp_path: Path) -> None:
    host, store = FakeHost(), Store(tmp_path / "s")
    _init(host, store, proxy="shadowsocks-libev")
    with pytest.raises(UsageError, match="bad cipher '2022-blake3-aes-128-gcm'"):
        service.add_client(host, store, service.AddOptions(
            "a", cipher="2022-blake3-aes-128-gcm"))
    assert store.names() == []


# --- clients --------------------------------------------------------------------------------------
def _ready(tmp_path: Path, systemd: bool = False) -> tuple[FakeHost, Store]:
    host, store = FakeHost(systemd=systemd), Store(tmp_path / "s")
    _init(host, store, systemd=systemd)
    return host, store


def _add(host: FakeHost, store: Store, name: str | None = None, rate: str | None = None,
         port: str | None = None) -> Client:
    client, _, _ = service.add_client(host, store, service.AddOptions(name, rate, port))
    return client


def _files(store: Store) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.clients_dir.iterdir())}


def test_add_client_applies_limit_and_keeps_counters(tmp_path: Path) -> None:
    host, store = _ready(tmp_path)
    a = _add(host, store, "a", "20")
    assert (a.port, a.rate_mbit) == (65101, 20.0)
    assert store.load("a") == a
    sb = json.loads(store.proxy_config_path("a", "sing-box").read_bytes())
    assert sb["inbounds"][0]["password"] == a.key
    assert any("classid 1:fe4d htb rate 20000kbit" in x for x in host.tc["eth0"])
    host.counters = {"c_a_out": (10, 12345)}
    b = _add(host, store)  # default name and the next port
    assert (b.name, b.port, b.rate_mbit) == ("client1", 65102, None)
    assert "packets 10 bytes 12345" in host.scripts[-1]
    host.busy_ports = {65103}
    assert _add(host, store, "c", "2.5").port == 65104


def test_add_client_systemd_enables_the_unit(tmp_path: Path) -> None:
    host, store = _ready(tmp_path, systemd=True)
    _add(host, store, "a")
    assert "bonding-server@a.service" in host.units_active
    (row,) = service.status(host, store, lambda: ({65101: 3}, {65101: 6}))["clients"]
    assert (row["running"], row["pid"], row["connections"], row["subflows"]) == (True, 4242, 3, 6)
    host.changes.clear()
    _init(host, store, systemd=True)  # nothing changed: the proxies are left alone
    assert host.changes == []
    _init(host, store, systemd=True, user="proxies")  # a new user: the unit file changes
    assert "systemctl try-restart bonding-server@a.service" in host.changes
    service.remove_client(host, store, "a")
    assert "bonding-server@a.service" not in host.units_enabled | host.units_active


@pytest.mark.parametrize("opts,code,message", [
    (("a", None, None), 2, "client 'a' exists already"),
    (("z", None, "65101"), 2, "port 65101 belongs to client 'a'"),
    (("z", None, "65200"), 2, "port 65200 is in use by another program"),
    (("z", "0", None), 2, "bad rate '0'"),
    (("z-z", None, None), 2, "bad client name 'z-z'"),
    (("z", None, "65535"), 2, "bad port 65535"),
])
def test_add_client_bad_input_keeps_records(tmp_path: Path, opts: tuple[str, str, str],
                                            code: int, message: str) -> None:
    host, store = _ready(tmp_path)
    _add(host, store, "a", "20")
    host.busy_ports = {65200}
    before, table, tc = _files(store), host.table, dict(host.tc)
    with pytest.raises(ServerError) as e:
        _add(host, store, *opts)
    assert e.value.exit_code == code and message in str(e.value)
    assert _files(store) == before and host.table == table and host.tc == tc


def test_failed_apply_rolls_the_new_record_back(tmp_path: Path) -> None:
    host, store = _ready(tmp_path)
    _add(host, store, "a", "20")
    before, table = _files(store), host.table
    host.fail_tc = True
    with pytest.raises(ServerError, match=r"client 'b' not added, nothing kept.*No such device") \
            as e:
        _add(host, store, "b", "40")
    assert e.value.exit_code == 1
    assert _files(store) == before
    assert host.table == table  # the firewall went back to the old client list
    assert not store.proxy_config_path("b", "sing-box").exists()


def test_remove_client(tmp_path: Path) -> None:
    host, store = _ready(tmp_path)
    _add(host, store, "a", "20")
    _add(host, store, "b")
    with pytest.raises(UsageError, match="unknown client 'nosuch'"):
        service.remove_client(host, store, "nosuch")
    service.remove_client(host, store, "a")
    assert store.names() == ["b"] and not store.proxy_config_path("a", "sing-box").exists()
    assert "eth0" not in host.tc  # no client with a limit left: the shaping is gone
    assert "c_a_in" not in (host.table or "") and "c_b_in" in (host.table or "")


# --- the command line -----------------------------------------------------------------------------
@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)


def _main(capsys: pytest.CaptureFixture[str], host: FakeHost, state: Path,
          *args: str) -> tuple[int, str, str]:
    code = cli.main(["--state-dir", str(state), *args], host=host)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_flow_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 as_root: None) -> None:
    host, state = FakeHost(), tmp_path / "s"
    code, out, err = _main(capsys, host, state, "add-client")
    assert code == 1 and "not set up" in err and "bonding-server init" in err
    assert _main(capsys, host, state, *INIT)[0] == 0
    code, out, _ = _main(capsys, host, state, *INIT)
    assert code == 0 and "nothing to change" in out
    code, out, err = _main(capsys, host, state, "add-client", "--name", "lab", "--json")
    assert code == 0, err
    lab = json.loads(out)
    assert set(lab) == {"name", "address", "address6", "port", "protocol", "cipher", "key",
                        "rate_mbit", "udp_over_tcp"}
    assert (lab["cipher"], lab["udp_over_tcp"]) == ("2022-blake3-aes-128-gcm", True)
    assert "no supervisor is running" in err
    code, out, _ = _main(capsys, host, state, "show-client", "lab")
    assert code == 0 and f"\toption key '{lab['key']}'\n" in out
    code, out, _ = _main(capsys, host, state, "--json", "list")
    assert json.loads(out)["clients"][0]["name"] == "lab" and lab["key"] not in out
    before = _files(Store(state))
    for args, want_code, message in [
        (["add-client", "--name", "lab"], 2, "exists already"),
        (["add-client", "--rate-mbit", "-1"], 2, "bad rate '-1'"),
        (["add-client", "--port", "x"], 2, "bad port 'x'"),
        (["remove-client", "nosuch"], 2, "unknown client 'nosuch'"),
        (["remove-client", "no-such"], 2, "bad client name 'no-such'"),
        (["add-client", "--bogus"], 2, "unrecognized arguments"),
    ]:
        code, out, err = _main(capsys, host, state, *args)
        assert code == want_code and message in err, (args, code, err)
    code, out, err = _main(capsys, host, state, "--json", "remove-client", "nosuch")
    assert code == 2 and json.loads(out) == {"error": err.split("error: ", 1)[1].strip(),
                                             "exit": 2}
    assert _files(Store(state)) == before
    host.missing = {"sing-box"}
    code, _, err = _main(capsys, host, state, "add-client", "--name", "x")
    assert code == 1 and "missing: sing-box (install sing-box" in err
    code, _, err = _main(capsys, host, state, "add-client", "--name", "x", "--cipher", "rc4")
    assert code == 2 and "bad cipher 'rc4'" in err
    assert _files(Store(state)) == before


def test_cli_not_root(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    host, state = FakeHost(), tmp_path / "s"
    code, _, err = _main(capsys, host, state, "add-client", "--name", "x")
    assert code == 1 and "must run as root" in err
    code, _, err = _main(capsys, host, state, "add-client", "--rate-mbit", "fast")
    assert code == 2 and "bad rate 'fast'" in err  # a typo is named before the privilege
    assert not state.exists()
    assert host.changes == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import bonding

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bonding-server {bonding.__version__}"


def test_public_address6_reaches_the_routers_uci_and_stays_until_cleared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], as_root: None) -> None:
    host, state = FakeHost(), tmp_path / "s"
    code, out, err = _main(capsys, host, state, *INIT, "--public-address6", "2001:DB8:203::10")
    assert code == 0, err
    assert "IPv6 address 2001:db8:203::10" in out
    code, out, _ = _main(capsys, host, state, "add-client", "--name", "lab", "--json")
    assert json.loads(out)["address6"] == "2001:db8:203::10"
    uci = _main(capsys, host, state, "show-client", "lab")[1]
    assert "\toption address '203.0.113.10'\n\toption address6 '2001:db8:203::10'\n" in uci
    assert "set bonding.lab.address6='2001:db8:203::10'\n" in uci
    # the router takes what add-client prints: its own parser accepts the section
    section = uci.split("# /etc/config/bonding_secrets")[0]
    cfg, problems = config.from_sections(uci_mod.loads(section, "bonding").sections)
    assert problems == [] and cfg.servers[0].address6 == "2001:db8:203::10"
    # a later init without the flag keeps it; --clear-address6 forgets it
    assert _main(capsys, host, state, *INIT)[0] == 0
    assert "address6" in _main(capsys, host, state, "show-client", "lab")[1]
    assert _main(capsys, host, state, *INIT, "--clear-address6")[0] == 0
    assert "address6" not in _main(capsys, host, state, "show-client", "lab")[1]
    assert json.loads(_main(capsys, host, state, "--json", "status")[1])["address6"] is None
    # settings written before IPv6 (no key) load
    raw = json.loads((state / "server.json").read_text())
    del raw["public_address6"]
    assert ServerConfig.from_json(raw).public_address6 is None


@pytest.mark.parametrize(("args", "message"), [
    (["--public-address6", "203.0.113.10"], "bad public IPv6 address '203.0.113.10': an IPv4 "
     "address: the IPv4 address or DNS name goes in --public-address"),
    (["--public-address6", "fe80::1"], "a link-local address"),
    (["--public-address6", "vps.example.com"], "not an IPv6 address"),
    (["--public-address6", "2001:db8::1", "--clear-address6"], "contradict each other"),
])
def test_bad_public_address6_is_named_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], as_root: None, args: list[str],
        message: str) -> None:
    host, state = FakeHost(), tmp_path / "s"
    code, _, err = _main(capsys, host, state, *INIT, *args)
    assert code == 2 and message in err, err
    assert not (state / "server.json").exists()



def test_each_client_gets_its_own_proxy_user_and_the_firewall_filters_them_all(
        tmp_path: Path) -> None:
    host, store = _ready(tmp_path, systemd=True)
    a, b = _add(host, store, "a"), _add(host, store, "b")
    users = {u: host.users[u] for u in (f"bonding-server-{a.port}", f"bonding-server-{b.port}")}
    assert len(set(users.values())) == 2, host.users
    assert f"meta skuid {{ {', '.join(map(str, sorted(users.values())))} }} jump proxy" \
        in (host.table or "")
    # under systemd each unit runs as its client's user (a drop-in), removed with the client
    dropin = "/etc/systemd/system/bonding-server@a.service.d/user.conf"
    assert f"User=bonding-server-{a.port}\n" in host.files[dropin].decode()
    service.remove_client(host, store, "a")
    assert dropin not in host.files
    assert f"User=bonding-server-{b.port}\n" in host.files[dropin.replace("@a", "@b")].decode()
    # the supervisor starts each proxy as its client's user too
    facts = plan.Facts(uids=(), interface="eth0")
    run = plan.proxy_run("shadowsocks-libev", facts, "/x.json", f"bonding-server-{b.port}")
    assert run.argv[-2:] == ("-a", f"bonding-server-{b.port}")


def test_per_source_limits_on_the_client_ports_only() -> None:
    t = plan.nft_table(CFG, [A, B], FACTS)
    lines = [x.strip() for x in t.splitlines()]
    chain = t[t.index("chain client_limits {"):]
    chain = chain[:chain.index("\t}")]
    assert "type filter hook input priority filter - 1; policy accept;" in chain
    assert f"tcp dport != {{ {A.port}, {B.port} }} return" in chain
    assert (f"add @limit_conns4 {{ ip saddr . tcp dport ct count over {plan.LIMIT_CONNS} }} "
            "counter reject with tcp reset") in lines
    assert (f"update @limit_rate6 {{ ip6 saddr & ffff:ffff:ffff:ffff:: . tcp dport limit rate "
            f"over {plan.LIMIT_RATE}/second burst {plan.LIMIT_BURST} packets }} counter drop"
            ) in lines
    assert plan.LIMIT_CONNS * 16 <= plan.NOFILE  # a few sources cannot take a proxy's fds
    assert "client_limits" not in plan.nft_table(CFG, [], FACTS)
