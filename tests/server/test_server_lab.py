"""bonding-server for real (root): init, clients, rate limits, isolation, firewall, bad input.

The server namespace is set up by the CLI exactly as the lab does it (`init --no-systemd --user
nobody --proxy P`, `add-client`, `run`), once with sing-box (the default) and once with ss-server
under mptcpize; clients talk to it over two links with a sing-box tunnel (Shadowsocks-2022) or
ss-tunnel under mptcpize (the older ciphers).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from server_world import (
    ATTACK_HOLD_S,
    ATTACK_SOURCES,
    ECHO_PORT,
    PRIVATE_ADDR,
    SERVER_ADDR,
    SERVER_PRIVATE_ADDR,
    TARGET_ADDR,
    World,
    tcp_memory_pressure,
    wait_for,
)

from bonding.server import congestion
from bonding.server.guard import GUARD_EVERY_S, HANDSHAKE_S
from bonding.server.plan import LIMIT_CONNS, config_suffix

pytestmark = pytest.mark.lab

LIMITS = {"c20": 20.0, "c40": 40.0}
# Each client held to its limit: never more than 10% over it, and at least 85% of it (89.6%
# seen in a full run on a busy 2-core host; a limit that holds too hard costs far more).
OVER, UNDER = 0.10, 0.15


@pytest.fixture(scope="module")
def served(world: World) -> dict[str, dict[str, Any]]:
    """init + three clients (20 and 40 Mbit/s and one without a limit) + the supervisor."""
    r = world.cli("init", "--no-systemd", "--public-address", SERVER_ADDR,
                  "--proxy", world.proxy)
    assert r.returncode == 0, r.stderr
    creds = {}
    for name, rate in (*LIMITS.items(), ("free", None)):
        args = ["add-client", "--name", name, "--json"]
        if rate is not None:
            args += ["--rate-mbit", f"{rate:g}"]
        r = world.cli(*args)
        assert r.returncode == 0, r.stderr
        creds[name] = json.loads(r.stdout)
    world.start_supervisor({CANARY: "supervisor-secret"})
    world.wait_running(list(creds))
    return creds


CANARY = "BONDING_TEST_CANARY"  # in the supervisor's environment; never in a proxy's


def snapshot(state_dir: Path) -> dict[str, bytes]:
    files = [state_dir / "server.json", *sorted((state_dir / "clients").iterdir())]
    return {p.name: p.read_bytes() for p in files}


def test_second_init_changes_nothing_and_repairs_tampering(world: World,
                                                           served: dict[str, Any]) -> None:
    args = ("init", "--no-systemd", "--public-address", SERVER_ADDR)
    r = world.cli(*args)
    assert r.returncode == 0, r.stderr
    assert "nothing to change" in r.stdout, r.stdout
    assert world.cli_json(*args)["changed"] is False
    # Someone flushes our table: the next init notices and puts it back, counters and all.
    subprocess.run(["ip", "netns", "exec", world.ns("server"), "nft", "flush", "chain", "inet",
                    "bonding_server", "proxy"], check=True)
    out = world.cli_json(*args)
    changed = [s["step"] for s in out["steps"] if s["changed"]]
    assert changed == ["firewall (nft table inet bonding_server)"], out
    assert world.cli_json(*args)["changed"] is False


def test_client_json_and_target_sees_server_address(world: World,
                                                    served: dict[str, Any]) -> None:
    c = served["c20"]
    assert set(c) == {"name", "address", "address6", "port", "protocol", "cipher", "key",
                      "rate_mbit", "udp_over_tcp"}
    assert c["address6"] is None  # this server was set up without one
    sing_box = world.proxy == "sing-box"
    assert (c["address"], c["protocol"], c["cipher"], c["rate_mbit"], c["udp_over_tcp"]) == (
        SERVER_ADDR, "shadowsocks",
        "2022-blake3-aes-128-gcm" if sing_box else "chacha20-ietf-poly1305", 20.0, sing_box)
    assert {served[n]["port"] for n in served} == {65101, 65102, 65103}
    assert len({served[n]["key"] for n in served}) == 3
    before = len(world.peers("target", ECHO_PORT))
    with world.tunnel(c, 11001, f"{TARGET_ADDR}:{ECHO_PORT}"):
        tcp = world.probe(11001)
        udp = world.probe(11001, udp=True)
    assert tcp["ok"], tcp
    assert udp["ok"], udp
    new = world.peers("target", ECHO_PORT)[before:]
    assert new and all(line.endswith(SERVER_ADDR) for line in new), new


@pytest.fixture
def measurable() -> None:
    reason = tcp_memory_pressure()
    if reason:
        pytest.skip(reason)


def _measure(world: World, served: dict[str, Any], reverse: bool) -> dict[str, float]:
    """Both limited clients at once through their own tunnels; Mbit/s each received."""
    rates = {}
    tunnels = [(n, 11100 + i, 5201 + i) for i, n in enumerate(LIMITS)]
    with world.tunnel(served["c20"], tunnels[0][1],
                      f"{TARGET_ADDR}:{tunnels[0][2]}"), \
         world.tunnel(served["c40"], tunnels[1][1],
                      f"{TARGET_ADDR}:{tunnels[1][2]}"):
        procs = {n: world.iperf(lp, reverse=reverse) for n, lp, _ in tunnels}
        for n, p in procs.items():
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, f"iperf3 for {n}: {out[-500:]} {err}"
            rates[n] = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    return rates


@pytest.mark.parametrize("direction", ["download", "upload"])
def test_each_client_held_to_its_limit(world: World, served: dict[str, Any], measurable: None,
                                       direction: str) -> None:
    rates = _measure(world, served, reverse=direction == "download")
    print(f"\n{direction}: " + ", ".join(f"{n} {rates[n]:.2f} Mbit/s (limit {LIMITS[n]:g}, "
                                        f"{rates[n] / LIMITS[n]:.1%})" for n in LIMITS))
    for n, limit in LIMITS.items():
        assert (1 - UNDER) * limit <= rates[n] <= (1 + OVER) * limit, (direction, rates)


def test_client_without_limit_is_not_held(world: World, served: dict[str, Any],
                                          measurable: None) -> None:
    # The sender is paced (-b): an unpaced multi-Gbit/s burst into ss-server's outbound MPTCP
    # (fallback) socket once made this kernel (6.18) leak 2.3 GB of TCP memory accounting
    # (WARNING in inet_sock_destruct), which squeezed every TCP socket on the machine after.
    c = served["free"]
    with world.tunnel(c, 11200, f"{TARGET_ADDR}:5203"):
        p = world.iperf(11200, reverse=True, seconds=4, omit=1, bitrate="300M")
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    rate = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    print(f"\nunlimited client: {rate:.1f} Mbit/s")
    assert rate > 2 * max(LIMITS.values()), rate


def test_status_counts_connections_subflows_and_bytes(world: World, served: dict[str, Any],
                                                      measurable: None) -> None:
    c = served["c40"]
    before = {r["name"]: r for r in world.cli_json("status")["clients"]}
    with world.tunnel(c, 11300, f"{TARGET_ADDR}:5202"):
        p = world.iperf(11300, reverse=True, seconds=6, omit=0)
        seen: dict[str, Any] = {}

        def busy() -> bool:
            row = next(r for r in world.cli_json("status")["clients"] if r["name"] == "c40")
            seen.update(row)
            return bool(row["connections"] >= 2 and row["subflows"] >= 4)
        wait_for(busy, 5, "two connections with two subflows each in status")
        # every subflow the server accepted on the client's port, joins too, sends with the
        # congestion control bonding-server locked on the clients' routes (cubic), not the
        # namespace's default (the host's: bbr here)
        ss = subprocess.run(["ip", "netns", "exec", world.ns("server"), "ss", "-tniH", "state",
                             "established", f"( sport = :{c['port']} )"],
                            capture_output=True, text=True, check=True).stdout
        algos = [w for w in ss.split() if w in ("cubic", "bbr", "reno")]
        assert len(algos) >= 4 and set(algos) == {"cubic"}, ss
        out, _ = p.communicate(timeout=60)
    after = {r["name"]: r for r in world.cli_json("status")["clients"]}
    received = json.loads(out)["end"]["sum_received"]["bytes"]
    grown_out = after["c40"]["bytes_out"] - before["c40"]["bytes_out"]
    grown_in = after["c40"]["bytes_in"] - before["c40"]["bytes_in"]
    print(f"\nstatus during iperf3 -R: {seen['connections']} connections, "
          f"{seen['subflows']} subflows; bytes_out +{grown_out} for {received} received")
    assert received <= grown_out <= received * 1.15
    assert 0 < grown_in < grown_out
    # counted per client: c20 saw at most the last packets of its earlier, closed connections
    assert after["c20"]["bytes_out"] - before["c20"]["bytes_out"] < 10_000


def test_run_copies_a_changed_main_table_to_the_clients_routes(world: World,
                                                             served: dict[str, Any]) -> None:
    ns = world.ns("server")

    def table() -> str:
        return subprocess.run(["ip", "-n", ns, "route", "show", "table", str(congestion.TABLE)],
                              capture_output=True, text=True, check=True).stdout

    extra = "198.18.0.0/15"  # a route the admin adds (benchmarking range: nothing is there)
    subprocess.run(["ip", "-n", ns, "route", "add", extra, "via", "203.0.113.1"], check=True)
    try:
        wait_for(lambda: f"{extra} via 203.0.113.1 dev wan congctl lock cubic" in table(),
                 3 * congestion.REFRESH_S, "the new route in the clients' table")
    finally:
        subprocess.run(["ip", "-n", ns, "route", "del", extra], check=False)
    wait_for(lambda: extra not in table(), 3 * congestion.REFRESH_S,
             "the removed route gone from the clients' table")


def test_wrong_key_gets_nothing_through(world: World, served: dict[str, Any]) -> None:
    c = served["c20"]
    # another key of the right form (a Shadowsocks-2022 key must be base64 of the key size)
    wrong = (base64.b64encode(os.urandom(len(base64.b64decode(c["key"])))).decode()
             if c["cipher"].startswith("2022-") else c["key"][::-1])
    before = len(world.peers("target", ECHO_PORT))
    with world.tunnel(c, 11400, f"{TARGET_ADDR}:{ECHO_PORT}", key=wrong):
        tcp = world.probe(11400)
        udp = world.probe(11400, udp=True)
        p = world.iperf(11400, reverse=True, seconds=2, omit=0)
        try:
            out, _ = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # waiting for a server that never answers
            p.kill()
            out, _ = p.communicate(timeout=10)
    assert not tcp["ok"] and not tcp["reply"], tcp
    assert not udp["ok"] and not udp["reply"], udp
    # iperf3 fails (its exit status says so only for some errors: its report always does)
    report = json.loads(out) if out.strip() else {"error": f"exit {p.returncode}"}
    assert "error" in report and not report.get("intervals"), out[-3000:]
    assert world.peers("target", ECHO_PORT)[before:] == []
    # The right key through the same server still works.
    with world.tunnel(c, 11401, f"{TARGET_ADDR}:{ECHO_PORT}"):
        assert world.probe(11401)["ok"]


@pytest.mark.parametrize("dest,role,port", [
    (PRIVATE_ADDR, "private", ECHO_PORT),  # a host on the server's private network
    (SERVER_PRIVATE_ADDR, "server", 7007),  # the server's own address on it
    ("127.0.0.1", "server", 7007),  # the server's loopback
    (SERVER_ADDR, "server", 7007),  # the server's public address
])
def test_proxy_cannot_reach_the_servers_own_networks(world: World, served: dict[str, Any],
                                                     dest: str, role: str, port: int) -> None:
    c = served["c20"]
    direct = world.probe(port, role="server", host=dest)  # the path exists: root reaches it
    assert direct["ok"], direct
    refused_before = world.cli_json("status")["refused_packets"]
    peers_before = len(world.peers(role, port))
    with world.tunnel(c, 11500, f"{dest}:{port}"):
        tcp = world.probe(11500)
        udp = world.probe(11500, udp=True)
    assert not tcp["ok"] and not tcp["reply"], tcp
    assert not udp["ok"] and not udp["reply"], udp
    assert world.peers(role, port)[peers_before:] == []
    assert world.cli_json("status")["refused_packets"] >= refused_before + 2  # TCP and UDP


def test_dead_proxy_is_restarted(world: World, served: dict[str, Any]) -> None:
    c = served["c20"]
    row = next(r for r in world.cli_json("status")["clients"] if r["name"] == "c20")
    os.kill(row["pid"], signal.SIGKILL)

    def restarted() -> bool:
        r = next(r for r in world.cli_json("status")["clients"] if r["name"] == "c20")
        return bool(r["running"] and r["listening"] and r["pid"] != row["pid"])
    wait_for(restarted, 10, "c20's proxy restarted")
    new = next(r for r in world.cli_json("status")["clients"] if r["name"] == "c20")
    assert new["restarts"] == row["restarts"] + 1
    with world.tunnel(c, 11600, f"{TARGET_ADDR}:{ECHO_PORT}"):
        assert world.probe(11600)["ok"]


BAD_INPUT = [
    (["remove-client", "nosuch"], 2, "unknown client 'nosuch'"),
    (["show-client", "nosuch"], 2, "unknown client 'nosuch'"),
    (["add-client", "--name", "c20"], 2, "client 'c20' exists already"),
    (["add-client", "--name", "x", "--rate-mbit", "-5"], 2, "bad rate '-5'"),
    (["add-client", "--name", "x", "--rate-mbit", "fast"], 2, "bad rate 'fast'"),
    (["add-client", "--name", "x", "--rate-mbit", "0"], 2, "bad rate '0'"),
    (["add-client", "--name", "bad-name"], 2, "bad client name 'bad-name'"),
    (["add-client", "--name", "x", "--port", "65101"], 2, "port 65101 belongs to client 'c20'"),
    (["add-client", "--name", "x", "--port", "80"], 2, "bad port 80"),
    (["add-client", "--name", "x", "--port", "http"], 2, "bad port 'http'"),
    (["add-client", "--name", "x", "--port", "65535"], 2, "bad port 65535"),
    (["add-client", "--name", "x", "--port", "70000"], 2, "bad port 70000"),
]


@pytest.mark.parametrize("args,code,message", BAD_INPUT)
def test_bad_input_clear_error_records_intact(world: World, served: dict[str, Any],
                                              args: list[str], code: int,
                                              message: str) -> None:
    before = snapshot(world.state_dir)
    pids = {r["name"]: r["pid"] for r in world.cli_json("status")["clients"]}
    r = world.cli(*args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert snapshot(world.state_dir) == before
    assert {r["name"]: r["pid"] for r in world.cli_json("status")["clients"]} == pids


def test_port_in_use_by_another_program(world: World, served: dict[str, Any]) -> None:
    world.echo("server", "0.0.0.0", 65300)
    before = snapshot(world.state_dir)
    r = world.cli("add-client", "--name", "x", "--port", "65300")
    assert r.returncode == 2, r.stderr
    assert "port 65300 is in use by another program" in r.stderr
    assert snapshot(world.state_dir) == before


def test_not_root_is_refused_records_intact(world: World, served: dict[str, Any]) -> None:
    before = snapshot(world.state_dir)
    for args in (["add-client", "--name", "x"], ["remove-client", "c20"], ["list"]):
        r = world.cli(*args, user=65534)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "must run as root" in r.stderr, r.stderr
    r = world.cli("add-client", "--rate-mbit", "abc", user=65534)  # the typo is named first
    assert r.returncode == 2 and "bad rate 'abc'" in r.stderr, r.stderr
    assert snapshot(world.state_dir) == before


def test_add_and_remove_while_running(world: World, served: dict[str, Any]) -> None:
    c = world.cli_json("add-client", "--name", "late", "--rate-mbit", "5")
    assert c["port"] == 65104
    st = world.wait_running(["late"], timeout=5)
    assert {r["name"] for r in st["clients"]} == {"c20", "c40", "free", "late"}
    with world.tunnel(c, 11700, f"{TARGET_ADDR}:{ECHO_PORT}"):
        assert world.probe(11700)["ok"]
    assert world.cli_json("remove-client", "late") == {"removed": "late", "port": 65104}
    st = world.cli_json("status")
    assert {r["name"] for r in st["clients"]} == {"c20", "c40", "free"}
    assert not (world.state_dir / "clients" / "late.json").exists()
    r = subprocess.run(["ip", "netns", "exec", world.ns("server"), "ss", "-Hltn",
                        "sport = :65104"], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == ""


def _sockets(world: World, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", world.ns("server"), "ss", "-Hn", *args,
                           "state", "established"], capture_output=True, text=True,
                          check=True).stdout


def test_mptcp_from_the_client_and_to_the_internet_only_with_ss_server(
        world: World, served: dict[str, Any]) -> None:
    """sing-box makes its client-facing listener MPTCP and nothing else; mptcpize makes every
    socket of ss-server MPTCP, the internet-side ones too (the path on which this kernel leaked
    TCP memory), which is why sing-box is the default."""
    c = served["free"]
    with world.tunnel(c, 11800, f"{TARGET_ADDR}:5201"):
        p = world.iperf(11800, reverse=True, seconds=4, omit=0, bitrate="20M")
        try:
            def both() -> bool:
                return (f":{c['port']} " in _sockets(world, "-M")
                        and f"{TARGET_ADDR}:5201" in _sockets(world, "-t"))
            wait_for(both, 5, "the client's MPTCP connection and the one to the target")
            mptcp, tcp = _sockets(world, "-M"), _sockets(world, "-t")
        finally:
            p.communicate(timeout=30)
    assert f":{c['port']} " in mptcp  # from the client: MPTCP
    assert f"{TARGET_ADDR}:5201" in tcp
    # towards the internet: plain TCP with sing-box, an MPTCP socket (in fallback) with ss-server
    assert (f"{TARGET_ADDR}:5201" in mptcp) == (world.proxy == "shadowsocks-libev"), mptcp


def test_udp_over_tcp_is_served_where_add_client_says_so(world: World,
                                                         served: dict[str, Any]) -> None:
    """The router sends UDP inside the bonded connection when add-client said udp_over_tcp:
    sing-box serves it, ss-server does not (and add-client does not say it)."""
    c = served["c20"]
    before = len(world.peers("target", ECHO_PORT))
    with world.tunnel(c, 11900, f"{TARGET_ADDR}:{ECHO_PORT}", udp_over_tcp=True):
        udp = world.probe(11900, udp=True)
    new = world.peers("target", ECHO_PORT)[before:]
    assert udp["ok"] == c["udp_over_tcp"] == (world.proxy == "sing-box"), udp
    assert all(line.endswith(SERVER_ADDR) for line in new), new
    assert bool(new) == c["udp_over_tcp"], new


def _proxy_pids(world: World) -> dict[str, int]:
    return {r["name"]: int(r["pid"]) for r in world.cli_json("status")["clients"]}


# Run as one proxy's user (uid and group, no other groups) in the server namespace: what it
# can get of another proxy (pid B) and of B's files.
_PEEK = r"""
import ctypes, json, sys
pid, paths = int(sys.argv[1]), sys.argv[2:]
out = {}
for what in ("environ", "mem", "fd/0", "cmdline"):
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            out[what] = len(f.read(4096))
    except OSError as e:
        out[what] = e.__class__.__name__
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
    out["ptrace"] = "attached"
    libc.ptrace(PTRACE_DETACH, pid, None, None)
else:
    out["ptrace"] = ctypes.get_errno()
for p in paths:
    try:
        with open(p, "rb") as f:
            out[p] = len(f.read())
    except OSError as e:
        out[p] = e.__class__.__name__
print(json.dumps(out))
"""


def _ids(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1])  # effective


def test_each_proxy_runs_as_its_own_user_and_cannot_get_at_another(
        world: World, served: dict[str, Any]) -> None:
    pids = _proxy_pids(world)
    ids = {n: _ids(pid) for n, pid in pids.items()}
    print(f"\nproxy uid/gid: {ids}")
    assert len({uid for uid, _ in ids.values()}) == len(ids), ids  # one uid per client
    assert all(uid != 0 and gid != 0 for uid, gid in ids.values()), ids
    for name, (uid, _) in ids.items():
        assert pwd.getpwuid(uid).pw_name == f"bonding-server-{served[name]['port']}"
    uid, gid = ids["c20"]
    victim = "c40"
    files = [str(world.state_dir / "run" / f"{victim}.{config_suffix(world.proxy)}.json"),
             str(world.state_dir / "clients" / f"{victim}.json")]
    r = subprocess.run(["ip", "netns", "exec", world.ns("server"), "setpriv", f"--reuid={uid}",
                        f"--regid={gid}", "--clear-groups", sys.executable, "-c", _PEEK,
                        str(pids[victim]), *files], capture_output=True, text=True,
                       timeout=30, cwd="/", env={"PATH": "/usr/bin:/bin"}, check=False)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    print(f"c20's user at c40's proxy: {got}")
    assert got["cmdline"] != "PermissionError"  # the probe itself works (cmdline is public)
    for what in ("environ", "mem", "fd/0", *files):
        assert got[what] == "PermissionError", (what, got)
    assert got["ptrace"] == errno.EPERM, got


def test_no_variable_of_the_supervisor_reaches_a_proxy(world: World,
                                                       served: dict[str, Any]) -> None:
    sup = world.cli_json("status")["supervisor_pid"]
    assert f"{CANARY}=".encode() in Path(f"/proc/{sup}/environ").read_bytes()  # the probe works
    for name, pid in _proxy_pids(world).items():
        env = dict(v.split(b"=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes().split(
            b"\0") if b"=" in v)
        print(f"\n{name}'s proxy environment: {sorted(k.decode() for k in env)}")
        assert CANARY.encode() not in env, (name, env)
        assert set(env) <= {b"PATH", b"GODEBUG", b"LD_PRELOAD"}, (name, sorted(env))


# More than the old per-proxy descriptor limit of this host (its hard NOFILE, 20000) in all.
ATTACK_COUNT = 7000  # silent connections per source


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_flood_of_unauthenticated_connections_does_not_starve_the_real_client(
        world: World, served: dict[str, Any]) -> None:
    c = served["free"]
    pid = _proxy_pids(world)["free"]
    fds_before = _fds(pid)
    with world.attack(c["port"], ATTACK_COUNT) as flood:
        time.sleep(5)  # the flood is at its height: every source at its limit
        fds = _fds(pid)
        with world.tunnel(c, 12000, f"{TARGET_ADDR}:{ECHO_PORT}"):
            probes = [world.probe(12000, timeout=5) for _ in range(3)]
            ttfb = world.ttfb(12000, 5)
        stats = flood(ATTACK_HOLD_S + 120)
    print(f"\nproxy fds {fds_before} → {fds} under attack; the client's time to first byte "
          f"{ttfb}; flood: {stats}")
    assert all(p["ok"] for p in probes), probes
    assert None not in ttfb, ttfb
    for src, st in stats.items():
        # each source held at most LIMIT_CONNS at once; the rest was refused or never answered
        assert st["open"] <= LIMIT_CONNS + 8, (src, st)
        assert st["refused"] + st["pending"] >= ATTACK_COUNT - 3 * LIMIT_CONNS, (src, st)
        # the guard shut the silent ones down once they had not sent a request in time, and
        # none it left open was older than that.  How many it shut within the hold depends on
        # how fast the rate limit let them in (burst 256, then 64/s, and the SYN retries of
        # the rest), so only a floor well below the concurrency limit is asserted.  The guard
        # shuts them 10–14 s after they open (13 s seen); with the host loaded by other work the
        # guard's scan of ~1,600 sockets and the flooder's own loop lag (18.1 s seen once with
        # ss-server at load 5.5 on 2 cores), so the limit is a sanity one, still short of the
        # hold, which is how long a connection nobody shuts stays open.
        late = HANDSHAKE_S + 2 * GUARD_EVERY_S + 6
        assert late < ATTACK_HOLD_S
        assert st["closed_by_server"] >= LIMIT_CONNS // 2, (src, st)
        assert HANDSHAKE_S - 1 <= st["held_min_s"] <= st["held_max_s"] <= late, (src, st)
        assert st["open_longest_s"] <= late, (src, st)
    assert fds - fds_before <= len(ATTACK_SOURCES) * LIMIT_CONNS + 64, (fds_before, fds)
