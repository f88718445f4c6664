"""Server failover in the lab (root): two aggregation servers, the first preferred.

LAN host → router (bondingd, nftables tproxy, ss-redir) → 3 links → server 'lab' (203.0.113.10)
or server 'lab2' (203.0.113.20) → target.  The target's whoami service answers with the address
it sees: the server a new connection went through.  Faults: the first server's processes all
killed (its proxy gone, as in a crash) or everything it receives dropped (a blackhole).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding import config, uci
from bonding.lab.server_failover import fail_first_server, heal_first_server
from bonding.lab.topology import SERVER2_ADDR, SERVER_ADDR, TARGET_ADDR, Lab
from bonding.lab.traffic import Service, try_ask_from, wait_all_up, wait_for

pytestmark = pytest.mark.lab

HOLD_S = 4  # the server_hold_s of the `two` fixture (conftest)
PORT = 8093  # the whoami service on the target
BAR_S = 3.0


def servers(lab: Lab) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in lab.status().get("servers", [])}


def active(lab: Lab) -> str | None:
    a = lab.status().get("active_server") or {}
    return a.get("name")


def whoami(lab: Lab) -> str | None:
    return try_ask_from(lab, "lan", "whoami", TARGET_ADDR, PORT, timeout=2)


def hook_lines(lab: Lab) -> list[str]:
    """What the hook logged for servers (ACTION SERVER_NAME PREVIOUS>STATE active=...)."""
    f = Path(lab.load().state_dir) / "hooks" / "events.log"
    lines = f.read_text().splitlines() if f.exists() else []
    return [ln for ln in lines if ln.startswith("server-")]


# A server that fell several times in the last 5 minutes needs up to 8× the good rounds to be
# up again (24 rounds, 12 s): the tests here make it fall over and over.
UP_AGAIN_S = 20


@pytest.fixture(scope="module")
def world(two: Lab) -> Iterator[Lab]:
    """The two-server lab with the whoami service on the target."""
    with Service(two, "target", "whoami", PORT):
        yield two


@pytest.fixture
def preferred(world: Lab) -> Iterator[Lab]:
    """Both servers answering, every path up, the first server in use."""
    _heal(world)
    yield world
    _heal(world)


def _heal(lab: Lab) -> None:
    heal_first_server(lab)
    for link in lab.load().links:
        lab.clear(link.name)
    lab.set_options({"globals": {"server_failback": "return"}})
    assert wait_all_up(lab, 20)
    assert wait_for(lambda: active(lab) == "lab", UP_AGAIN_S + HOLD_S + 5), \
        lab.status().get("servers")
    assert wait_for(lambda: whoami(lab) == SERVER_ADDR, 10), "new connections do not use lab"


def fail_first(lab: Lab, how: str) -> float | None:
    """Kill or blackhole the first server; seconds until a new LAN connection reaches the
    target through the second."""
    return fail_first_server(lab, how, PORT)[0]


@pytest.mark.parametrize("how", ["kill", "blackhole"])
def test_new_connections_reach_the_second_server_within_3_s(preferred: Lab, how: str) -> None:
    lab = preferred
    pid_before = lab.status()["proxy"]["pid"]
    took = fail_first(lab, how)
    assert took is not None, f"no new connection through lab2: {servers(lab)}"
    assert took <= BAR_S, f"{how}: a new connection took {took:.2f} s (bar {BAR_S} s)"
    st = servers(lab)
    assert (st["lab"]["state"], st["lab2"]["state"]) == ("down", "active")
    why = "connection refused" if how == "kill" else "no answer within"
    assert why in st["lab"]["reason"], st["lab"]["reason"]
    assert lab.status()["active_server"]["reason"].startswith("lab stopped answering")
    proxy = lab.status()["proxy"]
    assert proxy["server"] == "lab2" and proxy["pid"] != pid_before
    # the paths carry on (a blackholed server is one of their two probe targets: loss, not down)
    assert all(p["state"] in ("up", "degraded") for p in lab.status()["paths"].values())


def test_return_after_the_hold_time(preferred: Lab) -> None:
    lab = preferred
    assert fail_first(lab, "kill") is not None
    lab.start_server("server")
    assert wait_for(lambda: servers(lab)["lab"]["state"] == "standby", UP_AGAIN_S)
    t_up = time.monotonic()
    assert "back to it once it has answered for 4 s" in servers(lab)["lab"]["reason"]
    assert whoami(lab) == SERVER2_ADDR  # not before the hold time
    took = wait_for(lambda: active(lab) == "lab", HOLD_S + 10)
    assert took is not None
    assert time.monotonic() - t_up >= HOLD_S - 1.5  # answered for the hold time first
    assert wait_for(lambda: whoami(lab) == SERVER_ADDR, 5)
    assert "back to lab, preferred over lab2" in lab.status()["active_server"]["reason"]


def test_stay_keeps_the_second_server(preferred: Lab) -> None:
    lab = preferred
    lab.set_options({"globals": {"server_failback": "stay"}})
    assert fail_first(lab, "blackhole") is not None
    lab.server_blackhole("server", False)
    assert wait_for(lambda: servers(lab)["lab"]["state"] == "standby", UP_AGAIN_S)
    time.sleep(HOLD_S + 3)
    assert active(lab) == "lab2"
    assert whoami(lab) == SERVER2_ADDR
    assert "stays in use (failback 'stay')" in servers(lab)["lab"]["reason"]


def test_a_dead_path_is_not_a_dead_server(preferred: Lab) -> None:
    lab = preferred
    before = len(hook_lines(lab))
    lab.blackhole("wan1")
    try:
        assert wait_for(lambda: lab.status()["paths"]["wan1"]["state"] == "down", 5)
        time.sleep(3)  # many server rounds, some through the dying path
        st = servers(lab)
        assert (st["lab"]["state"], st["lab2"]["state"]) == ("active", "standby")
        assert set(st["lab"]["paths"]) == {"wan2", "wan3"}  # probed through the live paths
        assert whoami(lab) == SERVER_ADDR
        assert len(hook_lines(lab)) == before  # no server event
    finally:
        lab.clear("wan1")


def test_hooks_and_status_say_what_happened(preferred: Lab) -> None:
    lab = preferred
    before = len(hook_lines(lab))
    assert fail_first(lab, "kill") is not None
    assert wait_for(lambda: len(hook_lines(lab)) >= before + 2, 5)
    new = hook_lines(lab)[before:]
    assert "server-down lab active>down active=lab2" in new
    assert "server-active lab2 standby>active active=lab2" in new
    lab.start_server("server")
    assert wait_for(lambda: "server-up lab down>standby active=lab2" in hook_lines(lab),
                    UP_AGAIN_S)
    st = lab.status()
    for s in st["servers"]:
        assert {"name", "address", "port", "state", "active", "reason", "since", "rtt_ms",
                "paths", "priority", "enabled"} <= set(s)
        assert "key" not in json.dumps(s)
    ctl = subprocess.run([sys.executable, "-m", "bonding.ctl", "--no-ubus", "--run-dir",
                          lab.load().run_dir, "status"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] /
                                                              "python")}, check=False)
    assert ctl.returncode == 0, ctl.stderr
    assert "active server: lab2" in ctl.stdout
    assert any(ln.split()[:2] == ["lab2", "active"] for ln in ctl.stdout.splitlines())


def test_events_on_ubus(preferred: Lab) -> None:
    st = preferred.load()
    prefix = os.environ.get("OWRT_PREFIX")
    if not st.ubus_socket or not prefix:
        pytest.skip("no ubusd in the lab: set OWRT_PREFIX to the OpenWrt userland (make deps)")
    env = {**os.environ, "LD_LIBRARY_PATH": f"{prefix}/lib"}
    ubus = [f"{prefix}/bin/ubus", "-s", st.ubus_socket]
    listener = subprocess.Popen([*ubus, "listen", "bonding.server"], stdout=subprocess.PIPE,
                                text=True, env=env)
    assert listener.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:  # ends when the listener does
        for ln in listener.stdout or ():
            lines.put(ln)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    events: list[dict[str, Any]] = []

    def heard(pred: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Take the listener's events until one matches `pred` (False after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line.strip():
                events.append(json.loads(line)["bonding.server"])
                if pred(events[-1]):
                    return True
        return False

    try:
        # the listener listens once it hears an event of its own (no sleep: it may take longer)
        for _ in range(50):  # bounded: 50 × 0.1 s
            subprocess.run([*ubus, "send", "bonding.server", '{"name": "ready?"}'], env=env,
                           check=True, timeout=5)
            if heard(lambda e: e.get("name") == "ready?", 0.1):
                break
        else:
            raise AssertionError("ubus listen heard nothing of its own event in 5 s")
        assert fail_first(preferred, "blackhole") is not None
        assert heard(lambda e: e.get("name") == "lab2" and e.get("state") == "active", 10), \
            events
    finally:
        listener.send_signal(signal.SIGINT)
        listener.wait(timeout=5)
        reader.join(timeout=5)
    down = [e for e in events if e["name"] == "lab"]
    up = [e for e in events if e["name"] == "lab2"]
    assert {"state": "down", "previous": "active"}.items() <= down[0].items()
    assert "no answer within" in down[0]["reason"]
    assert {"state": "active", "previous": "standby"}.items() <= up[0].items()
    assert up[0]["reason"].startswith("lab stopped answering")


def test_removing_a_server_prunes_its_key(world: Lab) -> None:
    """Last: the second server's section is removed, its key goes from bonding_secrets."""
    two = world
    st = two.load()
    conf = Path(st.config_dir) / "bonding"
    secrets = Path(st.config_dir) / config.SECRETS_PACKAGE
    pkg = uci.loads(conf.read_text(), "bonding")
    conf.write_text(uci.dumps(uci.Package("bonding", tuple(
        s for s in pkg.sections if s.name != "lab2"))))
    assert st.daemon_pid is not None
    os.kill(st.daemon_pid, signal.SIGHUP)
    assert wait_for(lambda: "lab2" not in secrets.read_text(), 5), secrets.read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert config.load_secrets(Path(st.config_dir))[0].names() == ("lab",)
    assert wait_for(lambda: list(servers(two)) == ["lab"], 5)
    assert "removed the key of server 'lab2'" in Path(st.daemon_log).read_text()
    assert whoami(two) == SERVER_ADDR  # the active server and its proxy were kept
