"""start/stop with a background supervisor, reload on add/remove, kernel state (root).

One namespace of its own (``bsu<pid>-server``) holding the server and a veth pair; no traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_world import SERVER_ADDR, World, env, run, wait_for

pytestmark = pytest.mark.lab


class Solo(World):
    @property
    def roles(self) -> list[str]:
        return ["server"]

    def build(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        ns = self.ns("server")
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "add", "wan", "type", "veth", "peer", "name", "wanpeer"])
        run(["ip", "-n", ns, "addr", "add", f"{SERVER_ADDR}/24", "dev", "wan"])
        for dev in ("wan", "wanpeer"):
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def sh(self, *cmd: str) -> str:
        return run(["ip", "netns", "exec", self.ns("server"), *cmd]).stdout

    def proxies(self) -> list[str]:
        pids = run(["ip", "netns", "pids", self.ns("server")]).stdout.split()
        names = []
        for pid in pids:
            try:
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except OSError:
                continue
        return sorted(n for n in names if n in ("sing-box", "ss-server"))


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[Solo]:
    from server_world import root_skip_reason

    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    w = Solo(f"bsu{os.getpid() % 100000}", tmp_path / "state")
    try:
        w.build()
        yield w
    finally:
        w.down()


def _rows(w: World) -> dict[str, Any]:
    return {r["name"]: r for r in w.cli_json("status")["clients"]}


def test_start_reload_stop_and_kernel_state(solo: Solo) -> None:
    init = ("init", "--no-systemd", "--public-address", SERVER_ADDR,
            "--interface", "wan")
    assert solo.cli_json(*init)["changed"] is True
    a = solo.cli_json("add-client", "--name", "a", "--rate-mbit", "10")
    solo.cli_json("add-client", "--name", "b")
    assert solo.sh("sysctl", "-n", "net.ipv4.tcp_wmem").split() == ["4096", "16384", "33554432"]
    assert "subflows 8" in solo.sh("ip", "mptcp", "limits", "show")
    assert "rate 10Mbit ceil 10Mbit" in solo.sh("tc", "class", "show", "dev", "wan")
    assert "rate 10Mbit ceil 10Mbit" in solo.sh("tc", "class", "show", "dev", "bsrv-ifb0")
    assert f"th dport {a['port']} counter" in solo.sh("nft", "list", "table", "inet",
                                                      "bonding_server")

    r = solo.cli("start", extra_env={"BONDING_TEST_CANARY": "caller-secret"})
    assert r.returncode == 0, r.stderr
    assert "supervisor started" in r.stderr
    # the background supervisor keeps nothing of its caller's environment but PATH and the like
    sup = solo.cli_json("status")["supervisor_pid"]
    names = {v.split(b"=", 1)[0] for v in Path(f"/proc/{sup}/environ").read_bytes().split(b"\0")
             if v}
    assert b"BONDING_TEST_CANARY" not in names, names
    assert names <= {b"PATH", b"PYTHONPATH", b"LANG", b"LC_ALL", b"TZ"}, names
    rows = _rows(solo)
    assert all(rows[n]["running"] and rows[n]["listening"] for n in ("a", "b")), rows
    assert solo.proxies() == ["sing-box", "sing-box"]  # the default where it is installed
    r = solo.cli("start")
    assert r.returncode == 0 and "runs already" in r.stderr

    solo.cli_json("remove-client", "b")  # the supervisor is told (SIGHUP) and stops b's proxy
    wait_for(lambda: solo.proxies() == ["sing-box"], 10, "b's proxy gone")
    assert set(_rows(solo)) == {"a"}

    r = solo.cli("stop")
    assert r.returncode == 0 and "stopped" in r.stderr, r.stderr
    assert solo.proxies() == []
    st = solo.cli_json("status")
    assert st["supervisor_pid"] is None and st["clients"][0]["state"] == "no supervisor"
    assert solo.cli_json(*init)["changed"] is False  # the supervisor's applies left it as is

    solo.cli_json("remove-client", "a")  # no limit left: our qdiscs and the ifb go
    assert "htb" not in solo.sh("tc", "qdisc", "show", "dev", "wan")
    assert "bsrv-ifb0" not in solo.sh("ip", "link", "show")
    assert json.loads(solo.sh("nft", "-j", "list", "table", "inet", "bonding_server"))


def test_many_clients_added_at_once_are_each_isolated(solo: Solo) -> None:
    assert solo.cli("init", "--no-systemd", "--public-address", SERVER_ADDR,
                    "--interface", "wan").returncode == 0
    procs = [subprocess.Popen(
        ["ip", "netns", "exec", solo.ns("server"), sys.executable, "-m", "bonding.server",
         "--state-dir", str(solo.state_dir), "--json", "add-client", "--name", f"n{i}",
         *(["--rate-mbit", str(5 + i)] if i % 2 else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        for i in range(12)]
    added = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        added.append(json.loads(out))
    assert len({c["port"] for c in added}) == 12  # the lock kept the port choice apart
    assert {c["port"] for c in added} == set(range(65101, 65113))
    assert len({c["key"] for c in added}) == 12
    classes = solo.sh("tc", "class", "show", "dev", "wan")
    for c in added:
        if c["rate_mbit"]:
            assert f"1:{c['port']:x} root leaf" in classes
            assert f"rate {c['rate_mbit']:g}Mbit" in classes
    solo.start_supervisor()
    st = solo.wait_running([c["name"] for c in added])
    pids = {r["pid"] for r in st["clients"]}
    assert len(pids) == 12  # one proxy per client
    assert solo.proxies() == ["sing-box"] * 12
