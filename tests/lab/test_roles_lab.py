"""Link roles in the lab (bonding.core.roles): wan3 as `role backup` stands by while wan1 or
wan2 is up, takes the traffic when both die, and stands by again when they come back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BACKENDS, _full_path

from bonding.lab.topology import Lab
from bonding.lab.traffic import Transfer, endpoints, link_rates, path_state, wait_for

pytestmark = pytest.mark.lab


def _reload(lab: Lab, text: str) -> None:
    st = lab.load()
    (Path(st.config_dir) / "bonding").write_text(text)
    assert st.daemon_pid is not None
    os.kill(st.daemon_pid, signal.SIGHUP)


def _wan3(lab: Lab) -> dict[str, Any]:
    p: dict[str, Any] = lab.status()["paths"]["wan3"]
    return p


def _has_endpoint(lab: Lab, name: str) -> bool:
    return lab.link(name).router_addr in {str(e.get("address")) for e in endpoints(lab)}


@pytest.fixture
def backup3(fresh: Lab) -> Iterator[Lab]:
    """The lab with wan3 as `role backup`, then as it was."""
    cfg = Path(fresh.load().config_dir) / "bonding"
    original = cfg.read_text()
    _reload(fresh, original.replace("option device 'wan3'",
                                    "option device 'wan3'\n\toption role 'backup'"))
    try:
        assert wait_for(lambda: _wan3(fresh).get("role") == "backup", 3) is not None
        yield fresh
    finally:
        for name in ("wan1", "wan2"):
            fresh.clear(name)
        _reload(fresh, original)
        assert wait_for(lambda: _wan3(fresh).get("role") == "bond", 3) is not None


def test_a_backup_path_carries_traffic_only_while_no_bond_path_is_up(backup3: Lab) -> None:
    lab = backup3
    assert wait_for(lambda: _wan3(lab)["standby"] and not _has_endpoint(lab, "wan3"),
                    3) is not None, _wan3(lab)
    p = _wan3(lab)
    assert p["standby_reason"] == "standing by: bond path wan1, wan2 are up", p
    assert p["probe_interval_ms"] == 60000, p
    t = Transfer(lab, 24)
    t.start()
    try:
        r = link_rates(lab, 2, 3)
        assert r["wan3"] < 0.01 * sum(r.values()), r  # probes only: no subflow over wan3
        assert r["wan1"] > 0.5 * 50e6 and r["wan2"] > 0.5 * 30e6, r

        lab.blackhole("wan1")
        lab.blackhole("wan2")
        assert wait_for(lambda: path_state(lab, "wan1") == "down"
                        and path_state(lab, "wan2") == "down", 3) is not None
        assert wait_for(lambda: _has_endpoint(lab, "wan3"), 2) is not None, _wan3(lab)
        p = _wan3(lab)
        assert not p["standby"] and p["standby_reason"] == "in use: no bond path is up", p
        assert p["probe_interval_ms"] == 150, p
        r = link_rates(lab, 1, 3)
        assert r["wan3"] > 0.5 * 20e6, r  # the running transfer moved onto wan3

        lab.clear("wan1")
        lab.clear("wan2")
        assert wait_for(lambda: path_state(lab, "wan1") == "up"
                        and path_state(lab, "wan2") == "up", 10) is not None
        assert wait_for(lambda: _wan3(lab)["standby"] and not _has_endpoint(lab, "wan3"),
                        3) is not None, _wan3(lab)
        r = link_rates(lab, 2, 3)
        assert r["wan3"] < 0.01 * sum(r.values()), r
        assert r["wan1"] + r["wan2"] > 0.5 * 80e6, r
        assert t.running(), "the transfer died"
        report = t.result(timeout=40)
    finally:
        t.stop()
    assert report["end"]["sum_received"]["seconds"] > 20  # the whole transfer ran


def test_a_standby_path_is_probed_rarely(backup3: Lab) -> None:
    """Its probes while standing by: one round every 60 s, each one echo and its reply."""
    lab = backup3
    assert wait_for(lambda: _wan3(lab)["standby"], 3) is not None
    time.sleep(1)  # the restart's first round is done
    before = lab.counters()["wan3"]
    time.sleep(10)
    after = lab.counters()["wan3"]
    sent = after["tx"] - before["tx"]
    # at 150 ms this would be ~67 rounds (~5.6 kB); at 60 s at most one (~100 bytes with
    # the Ethernet header), plus the odd neighbour discovery
    assert sent < 600, (before, after)


@pytest.fixture(scope="module", params=BACKENDS[:1])
def full_lab_one(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The full path (sing-box on both ends): servers are probed through the live paths."""
    yield from _full_path(request, "r")


def test_with_the_proxy_a_standby_path_carries_no_server_probe(full_lab_one: Lab) -> None:
    lab = full_lab_one
    lab.set_options({"wan3": {"role": "backup"}})
    try:
        assert wait_for(lambda: _wan3(lab).get("standby"), 5) is not None, _wan3(lab)
        time.sleep(1)
        before = lab.counters()["wan3"]
        time.sleep(10)
        after = lab.counters()["wan3"]
        # server probes (a TCP connect every 500 ms) would be ~20 connects, several kB
        assert after["tx"] - before["tx"] < 600, (before, after)
        servers = lab.status()["servers"]
        assert all(s.get("state") != "down" for s in servers if s.get("enabled")), servers
    finally:
        lab.set_options({"wan3": {"role": None}})
