"""The `bonding` ubus object served by a real bondingd on a real ubusd, in the lab.

Needs root (the lab) and the OpenWrt userland (OWRT_PREFIX: ubusd, ubus, libubus); skips and says
why otherwise.  The lab starts ubusd in the router namespace and bondingd registers there.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.lab.topology import Lab, parse_links
from bonding.lab.traffic import Transfer, rss_kb, wait_all_up, wait_for
from bonding.ubus import Ubus, UbusError, UbusStatus, call

LINKS = "30/10ms,20/20ms"
PATH_KEYS = {"state", "reason", "since", "backup", "forced_backup", "enabled", "interface",
             "device", "address", "gateway", "rtt_ms", "jitter_ms", "loss_pct", "rx_bps",
             "tx_bps", "rx_bytes", "tx_bytes", "endpoint_id", "subflows", "probe_timeout_ms"}


@pytest.fixture(scope="module")
def olab(owrt_prefix: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, nftables, tc)")
    lab = Lab(f"u{os.getpid() % 100000}")
    failed = request.session.testsfailed
    try:
        lab.up(parse_links(LINKS))
        st = lab.load()
        assert st.ubus_socket, "the lab did not start ubusd although OWRT_PREFIX is set"
        assert wait_all_up(lab, 20), f"paths not up: {lab.status().get('paths')}"
        assert until(lambda: _registered(st.ubus_socket), 10), "bonding not on ubus"
    except BaseException:
        lab.down()  # its logs stay under /run/bonding-lab
        raise
    yield lab
    lab.down(purge=request.session.testsfailed == failed)  # logs kept when a test failed


def until(pred: Any, timeout: float) -> bool:
    return wait_for(pred, timeout) is not None


def _registered(sock: str | None) -> bool:
    try:
        call("bonding", "status", socket=sock, timeout=2)
    except UbusError:
        return False
    return True


def sock(lab: Lab) -> str:
    s = lab.load().ubus_socket
    assert s
    return s


def ubus_cli(prefix: Path, lab: Lab, *args: str,
             timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(prefix / "bin" / "ubus"), "-s", sock(lab), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_list_shows_methods_with_argument_types(olab: Lab, owrt_prefix: Path) -> None:
    r = ubus_cli(owrt_prefix, olab, "list", "-v", "bonding")
    assert r.returncode == 0, r.stderr
    sig = {}
    for line in r.stdout.splitlines()[1:]:
        name, _, args = line.strip().partition(":")
        sig[name.strip('"')] = json.loads(args)
    assert sig == {
        "status": {}, "path": {"name": "String"},
        "set_path": {"name": "String", "enabled": "Boolean", "backup": "Boolean"},
        "probe": {"name": "String"}, "reload": {},
        "iface": {"interface": "String", "action": "String", "device": "String"},
        "set_key": {"server": "String", "key": "String", "cipher": "String"},
    }


def test_status_has_the_documented_shape(olab: Lab, owrt_prefix: Path) -> None:
    r = ubus_cli(owrt_prefix, olab, "call", "bonding", "status")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert {"version", "uptime", "enabled", "fail_open", "servers", "paths",
            "config_problems", "errors"} <= set(st)
    assert set(st["paths"]) == {"wan1", "wan2"}
    for p in st["paths"].values():
        assert set(p) >= PATH_KEYS
        assert p["state"] == "up" and isinstance(p["rtt_ms"], float)
        assert isinstance(p["endpoint_id"], int)
    assert st["servers"][0]["address"] == "203.0.113.10"
    assert "key" not in json.dumps(st["servers"])


def test_bad_arguments_get_status_codes_and_the_daemon_serves_on(olab: Lab) -> None:
    s = sock(olab)
    cases: list[tuple[str, dict[str, Any], UbusStatus]] = [
        ("path", {"name": "nope"}, UbusStatus.NOT_FOUND),
        ("path", {"name": 5}, UbusStatus.INVALID_ARGUMENT),
        ("path", {}, UbusStatus.INVALID_ARGUMENT),
        ("set_path", {"name": "wan1", "enabled": "no"}, UbusStatus.INVALID_ARGUMENT),
        ("set_path", {"name": "ghost", "backup": True}, UbusStatus.NOT_FOUND),
        ("iface", {"interface": "wan", "action": "explode"}, UbusStatus.INVALID_ARGUMENT),
        ("nosuchmethod", {}, UbusStatus.METHOD_NOT_FOUND),
    ]
    for method, args, want in cases:
        with pytest.raises(UbusError) as e:
            call("bonding", method, args, socket=s, timeout=5)
        assert e.value.status == want, (method, args)
    # rpcd's session argument is accepted; the daemon still answers.
    out = call("bonding", "path", {"name": "wan2", "ubus_rpc_session": "f" * 32}, socket=s)
    assert out["name"] == "wan2" and out["state"] == "up"
    assert len(out["targets"]) == 4  # the server and the target, over IPv4 and over IPv6
    assert set(out["families"]) == {"ipv4", "ipv6"}


def test_a_flood_of_refused_calls_cannot_flush_the_log(olab: Lab) -> None:
    # any ubus caller (a LuCI read-only user among them) sends 2,000 refused calls of 60 KB
    s = sock(olab)
    log = Path(olab.load().daemon_log)
    before = log.stat().st_size
    for i in range(2000):
        with pytest.raises(UbusError) as e:
            call("bonding", "path", {"name": ["x" * 60_000, i]}, socket=s, timeout=5)
        assert e.value.status == UbusStatus.INVALID_ARGUMENT
    grown = log.stat().st_size - before
    assert grown < 4096, f"the log grew by {grown} bytes"  # 10 short lines, not 120 MB
    assert call("bonding", "path", {"name": "wan1"}, socket=s)["name"] == "wan1"


LUCI_FIXTURES = Path(__file__).resolve().parents[1] / "luci" / "fixtures"
NAMED = ("paths", "families")  # objects keyed by a path's or a family's name


def _shape(v: Any, at: str = "") -> dict[str, set[str]]:
    """Every key path of a reply (names of paths and families as '*', list items as '[]') and
    the JSON types seen there."""
    out: dict[str, set[str]] = {at: {"null" if v is None else type(v).__name__}}
    if isinstance(v, dict):
        for k, x in v.items():
            sub = f"{at}.*" if at.endswith(NAMED) else f"{at}.{k}"
            for key, types in _shape(x, sub).items():
                out.setdefault(key, set()).update(types)
    elif isinstance(v, list):
        for x in v:
            for key, types in _shape(x, at + "[]").items():
                out.setdefault(key, set()).update(types)
    return out


def _same_shape(real: Any, fixture: Any) -> list[str]:
    r, f = _shape(real), _shape(fixture)
    bad = [f"{k}: missing in the fixture" for k in sorted(set(r) - set(f))]
    # (items of a list that is empty in this reply, like config_problems, cannot be compared)
    empty = {k + "[]" for k, types in r.items() if "list" in types and k + "[]" not in r}
    bad += [f"{k}: not in bondingd's reply" for k in sorted(set(f) - set(r))
            if not any(k.startswith(e) for e in empty)]
    num = {"int", "float"}
    for k in sorted(set(r) & set(f)):
        rt, ft = r[k] - {"null"}, f[k] - {"null"}
        if rt and ft and not (rt & ft or (rt | ft) <= num):
            bad.append(f"{k}: {sorted(ft)} in the fixture, {sorted(rt)} from bondingd")
    return bad


def test_the_luci_fixtures_have_the_shape_of_real_replies(olab: Lab) -> None:
    """The node tests of the LuCI views run on fixtures: they must be what bondingd sends (a
    made-up shape once hid a details dialog full of 'undefined')."""
    s = sock(olab)
    real_status = call("bonding", "status", socket=s)
    real_path = call("bonding", "path", {"name": "wan1"}, socket=s)
    for name, real in (("status.json", real_status), ("path-wan.json", real_path)):
        fixture = json.loads((LUCI_FIXTURES / name).read_text())
        assert _same_shape(real, fixture) == [], name


def test_set_path_and_probe(olab: Lab) -> None:
    s = sock(olab)
    try:
        assert call("bonding", "set_path", {"name": "wan2", "backup": 1}, socket=s) == \
            {"name": "wan2", "enabled": True, "backup": True}
        assert until(lambda: call("bonding", "path", {"name": "wan2"}, socket=s)["backup"], 5)
        t0 = time.monotonic()
        p = call("bonding", "probe", {"name": "wan1"}, socket=s, timeout=5)
        assert time.monotonic() - t0 < 2
        assert p["name"] == "wan1" and p["targets"] and p["rounds"] > 0
    finally:
        call("bonding", "set_path", {"name": "wan2", "backup": False}, socket=s)


def test_listen_sees_a_blackholed_link_go_down(olab: Lab, owrt_prefix: Path) -> None:
    listener = subprocess.Popen([str(owrt_prefix / "bin" / "ubus"), "-s", sock(olab), "listen",
                                 "bonding.path"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        olab.blackhole("wan2")
        assert until(lambda: olab.status()["paths"]["wan2"]["state"] == "down", 5)
        olab.clear("wan2")
        assert wait_all_up(olab, 10)
        time.sleep(0.2)
    finally:
        listener.send_signal(signal.SIGINT)
        out, _ = listener.communicate(timeout=5)
        olab.clear("wan2")
    events = [json.loads(line)["bonding.path"] for line in out.splitlines() if line.strip()]
    # a loaded host may see wan2 degraded (loss) on the way down: the down event is what counts
    downs = [i for i, e in enumerate(events) if e["name"] == "wan2" and e["state"] == "down"]
    assert downs, events
    down = events[downs[0]]
    assert down["previous"] in ("up", "degraded") and "no reply" in down["reason"], events
    assert any(e["name"] == "wan2" and e["state"] == "up" for e in events[downs[0] + 1:])


def test_subflows_are_counted_per_path(olab: Lab) -> None:
    s = sock(olab)
    t = Transfer(olab, seconds=5)
    t.start()
    try:
        seen: dict[str, int] = {}

        def counted() -> bool:
            for name, p in call("bonding", "status", socket=s)["paths"].items():
                seen[name] = max(seen.get(name, 0), p["subflows"] or 0)
            return all(v >= 1 for v in seen.values())

        assert until(counted, 4), seen
        t.result(timeout=15)
    finally:
        t.stop()
    left: dict[str, int] = {}

    def closed() -> bool:
        left.update({n: p["subflows"] for n, p in
                     call("bonding", "status", socket=s)["paths"].items()})
        return not any(left.values())

    assert until(closed, 5), left


def test_object_comes_back_after_ubusd_restarts(olab: Lab) -> None:
    st = olab.load()
    os.kill(st.pids["ubusd"], signal.SIGTERM)
    time.sleep(0.3)
    assert not _registered(st.ubus_socket)
    Path(sock(olab)).unlink(missing_ok=True)
    st.pids.pop("ubusd")
    st.ubus_socket = None
    olab.save()
    olab.start_ubusd()
    assert until(lambda: _registered(sock(olab)), 5), "bonding did not come back"


def test_random_calls_leave_the_daemon_serving_with_flat_memory(olab: Lab) -> None:
    """10,000 calls with random methods and arguments (bounded; no valid mutation)."""
    pid = olab.load().daemon_pid
    assert pid
    rng = random.Random(1234)
    methods = ["status", "path", "set_path", "probe", "iface", "reload", "nope"]
    values: list[Any] = [None, True, False, 0, 1, -1, 2**40, 1.5, "", "x", "wan9", "é" * 70,
                         "\n", [1, "a"], {"k": {"n": [True]}}, "ifup"]

    def args() -> dict[str, Any]:
        out = {}
        for _ in range(rng.randrange(0, 4)):
            key = rng.choice(["name", "enabled", "backup", "interface", "action", "device",
                              "ubus_rpc_session", "zz"])
            v = rng.choice(values)
            if key in ("name", "interface") and v in ("wan1", "wan2"):
                continue
            if v is not None:
                out[key] = v
        return out

    async def hammer(n: int) -> dict[str, int]:
        seen: dict[str, int] = {}
        async with Ubus(sock(olab), reconnect=False) as bus:
            oid = bus.lookup_id("bonding")
            for _ in range(n):
                m = rng.choice(methods)
                if m == "reload" and rng.random() > 0.01:
                    m = "status"
                try:
                    await bus.invoke(oid, m, args(), timeout=5)
                    key = "ok"
                except UbusError as e:
                    key = str(e.status.name if isinstance(e.status, UbusStatus) else e.status)
                seen[key] = seen.get(key, 0) + 1
        return seen

    asyncio.run(hammer(1000))  # warm-up: caches, allocator arenas
    before = rss_kb(pid)
    seen = asyncio.run(hammer(10_000))
    after = rss_kb(pid)
    assert sum(seen.values()) == 10_000
    assert seen.get("INVALID_ARGUMENT", 0) > 1000 and seen.get("ok", 0) > 1000, seen
    assert "UNKNOWN_ERROR" not in seen and "TIMEOUT" not in seen, seen
    assert after - before < 2048, f"RSS grew {after - before} kB over 10,000 calls"
    assert call("bonding", "status", socket=sock(olab))["paths"]["wan1"]["state"] == "up"


NETIFD_STANDIN = r'''
import asyncio, json, sys
from bonding.ubus import Method, Ubus

up = True
def entry():
    return {"interface": "wanb", "up": up, "l3_device": "wan2", "device": "wan2",
            "ipv4-address": [{"address": "100.64.2.2", "mask": 24}] if up else [],
            "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "100.64.2.1"}] if up else []}

async def main():
    global up
    bus = Ubus(sys.argv[1], reconnect=False)
    await bus.connect(timeout=5)
    bus.add_object("network.interface", [Method("dump", lambda m, a: {"interface": [entry()]})])
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        up = line == "up"
        bus.send_event("network.interface", {"action": "ifup" if up else "ifdown",
                                             "interface": "wanb"})
        print("sent", line, flush=True)
    bus.close()

asyncio.run(main())
'''


def _standin(s: str) -> subprocess.Popen[str]:
    from bonding.lab.delay import python_env

    proc = subprocess.Popen([sys.executable, "-c", NETIFD_STANDIN, s], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=python_env())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_without_path_sections_netifd_wans_are_bonded(olab: Lab) -> None:
    s = sock(olab)
    cfg = Path(olab.load().config_dir) / "bonding"
    original = cfg.read_text()
    standin = _standin(s)
    try:
        cfg.write_text(original.split("\nconfig path ")[0])
        assert call("bonding", "reload", socket=s)["ok"]
        assert until(lambda: list(call("bonding", "status", socket=s)["paths"]) == ["wanb"], 5)
        assert until(lambda: call("bonding", "path", {"name": "wanb"}, socket=s)["state"] == "up",
                     10)
        assert call("bonding", "path", {"name": "wanb"}, socket=s)["device"] == "wan2"
    finally:
        cfg.write_text(original)
        call("bonding", "reload", socket=s)
        _stop(standin)
    assert until(lambda: set(call("bonding", "status", socket=s)["paths"]) == {"wan1", "wan2"},
                 5)
    assert until(lambda: all(p["state"] == "up" for p in
                             call("bonding", "status", socket=s)["paths"].values()), 10)


def test_interface_paths_follow_netifd_over_ubus(olab: Lab) -> None:
    """A path given by netifd interface name: resolved from `network.interface dump`, down at
    once on netifd's ifdown event and on the hotplug `iface` call.  netifd itself does not run
    off OpenWrt, so a stand-in object answers `dump` in netifd's format and sends its events."""
    s = sock(olab)
    st = olab.load()
    cfg = Path(st.config_dir) / "bonding"
    original = cfg.read_text()
    standin = _standin(s)
    assert standin.stdin is not None and standin.stdout is not None
    try:
        cfg.write_text(original.replace("\toption device 'wan2'\n\toption gateway '100.64.2.1'\n",
                                        "\toption interface 'wanb'\n"))
        assert call("bonding", "reload", socket=s)["ok"]

        def path() -> dict[str, Any]:
            return call("bonding", "path", {"name": "wan2"}, socket=s)

        assert until(lambda: path()["state"] == "up", 10), path()
        p = path()
        assert (p["interface"], p["device"], p["address"], p["gateway"]) == \
            ("wanb", "wan2", "100.64.2.2", "100.64.2.1")

        t0 = time.monotonic()
        standin.stdin.write("down\n")
        standin.stdin.flush()
        assert standin.stdout.readline().strip() == "sent down"
        assert until(lambda: path()["state"] == "down", 2), path()
        assert time.monotonic() - t0 < 1.0
        assert "netifd interface 'wanb' is down" in (path().get("error") or path()["reason"])

        standin.stdin.write("up\n")
        standin.stdin.flush()
        assert until(lambda: path()["state"] == "up", 10), path()

        # hotplug: ifdown acts at once, before netifd's state is read again
        out = call("bonding", "iface", {"interface": "wanb", "action": "ifdown"}, socket=s)
        assert out == {"handled": True, "path": "wan2"}
        assert call("bonding", "status", socket=s)["paths"]["wan2"]["state"] == "down"
        assert until(lambda: path()["state"] == "up", 10), path()  # netifd still says up
        assert call("bonding", "iface", {"interface": "lan", "action": "ifup"}, socket=s) == \
            {"handled": False, "path": None}
    finally:
        cfg.write_text(original)
        call("bonding", "reload", socket=s)
        _stop(standin)
    assert until(lambda: call("bonding", "path", {"name": "wan2"}, socket=s)["state"] == "up",
                 10)
