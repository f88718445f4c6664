"""bondingd in the lab: 3 links of 50/30/20 Mbit/s (+20/40/80 ms RTT), real MPTCP traffic."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from steps import rates_during, reload_with

from bonding.lab.topology import Lab
from bonding.lab.traffic import (
    Transfer,
    endpoints,
    link_rates,
    path_state,
    wait_all_up,
    wait_for,
)

pytestmark = pytest.mark.lab


def _ep_addresses(lab: Lab) -> set[str]:
    return {str(e.get("address")) for e in endpoints(lab)}


def test_one_transfer_uses_every_link(fresh: Lab) -> None:
    r, report = rates_during(fresh, Transfer(fresh, 6), 2, 3, timeout=20)
    for link in fresh.load().links:
        # every link carries at least half its rate of this one connection
        assert r[link.name] > 0.5 * link.rate_mbit * 1e6, (link.name, r)
    assert report["end"]["sum_received"]["bytes"] > 0


def test_blackhole_mid_transfer_then_restore(fresh: Lab) -> None:
    victim = fresh.link("wan2")
    t = Transfer(fresh, 16)
    t.start()
    try:
        time.sleep(3)
        t0 = time.time()
        fresh.blackhole("wan2")
        assert wait_for(lambda: path_state(fresh, "wan2") == "down", 3, 0.01) is not None
        since = fresh.status()["paths"]["wan2"]["since"]
        assert since - t0 < 1.0, f"blackhole noticed after {since - t0:.2f} s"
        assert "probe rounds got no reply" in fresh.status()["paths"]["wan2"]["reason"]
        assert wait_for(lambda: victim.router_addr not in _ep_addresses(fresh), 1) is not None
        time.sleep(3)
        assert t.running(), "the transfer died with the link"
        fresh.clear("wan2")
        assert wait_for(lambda: path_state(fresh, "wan2") == "up", 5, 0.01) is not None
        assert wait_for(lambda: victim.router_addr in _ep_addresses(fresh), 1) is not None
        before = fresh.counters()["wan2"]["tx"]
        time.sleep(2)
        carried = fresh.counters()["wan2"]["tx"] - before
        assert carried > 1_000_000, f"wan2 carried only {carried} bytes after it came back"
        report = t.result(timeout=30)
    finally:
        t.stop()
    assert report["end"]["sum_received"]["seconds"] > 15  # the whole transfer ran


def test_carrier_loss_acts_without_waiting_for_probes(fresh: Lab) -> None:
    t0 = time.time()
    fresh.carrier("wan3", False)
    assert wait_for(lambda: path_state(fresh, "wan3") == "down", 2, 0.005) is not None
    p = fresh.status()["paths"]["wan3"]
    # probes alone need ≥ 3 rounds + a timeout (> 0.5 s); the netlink event needs far less
    assert p["since"] - t0 < 0.2, p
    assert "carrier" in p["reason"]
    addr = fresh.link("wan3").router_addr
    assert wait_for(lambda: addr not in _ep_addresses(fresh), 1) is not None
    fresh.carrier("wan3", True)
    assert wait_for(lambda: path_state(fresh, "wan3") == "up", 5) is not None


def test_five_percent_loss_is_not_down(fresh: Lab) -> None:
    fresh.loss("wan1", 5)
    t = Transfer(fresh, 30)
    t.start()
    states = set()
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            states.add(path_state(fresh, "wan1"))
            time.sleep(0.05)
        t.result(timeout=20)
    finally:
        t.stop()
        fresh.clear("wan1")
    assert "down" not in states, states
    assert fresh.status()["paths"]["wan1"]["loss_pct"] is not None


def test_forced_backup_carries_traffic_only_when_the_others_are_down(fresh: Lab) -> None:
    st = fresh.load()
    cfg = Path(st.config_dir) / "bonding"
    original = cfg.read_text()
    try:
        reload_with(fresh, original.replace("option device 'wan3'",
                                        "option device 'wan3'\n\toption backup '1'"))
        assert wait_for(lambda: fresh.status()["paths"]["wan3"]["backup"], 3) is not None
        t = Transfer(fresh, 14)
        t.start()
        try:
            r = link_rates(fresh, 2, 3)
            assert r["wan3"] < 0.05 * sum(r.values()), r
            fresh.blackhole("wan1")
            fresh.blackhole("wan2")
            assert wait_for(lambda: path_state(fresh, "wan1") == "down"
                            and path_state(fresh, "wan2") == "down", 3) is not None
            r = link_rates(fresh, 1, 3)
            assert r["wan3"] > 0.5 * 20e6, r
            fresh.clear("wan1")
            fresh.clear("wan2")
            t.result(timeout=30)
        finally:
            t.stop()
    finally:
        reload_with(fresh, original)
        assert wait_for(lambda: not fresh.status()["paths"]["wan3"]["backup"], 3) is not None


def test_bad_config_is_reported_and_the_last_good_one_kept(fresh: Lab) -> None:
    st = fresh.load()
    cfg = Path(st.config_dir) / "bonding"
    original = cfg.read_text()
    bad = original.replace("option device 'wan3'",
                           "option device 'wan3'\n\toption backup 'maybe'")
    bad += "\nconfig path 'wan4'\n\toption device 'wan1'\n"
    bad += "\nconfig path 'wan5'\n\toption device 'nosuch0'\n\toption probe_interval_ms 'x'\n"
    try:
        reload_with(fresh, bad)
        assert wait_for(lambda: any("maybe" in p for p in fresh.status()["config_problems"]),
                        3) is not None
        problems = fresh.status()["config_problems"]
        assert any("bonding.wan3.backup='maybe'" in p and "boolean" in p for p in problems)
        assert any("bonding.wan4.device='wan1'" in p and "already used by path 'wan1'" in p
                   for p in problems)
        assert any("bonding.wan5.probe_interval_ms='x'" in p for p in problems)
        # still serving with the last good config
        assert wait_all_up(fresh, 2)
        assert sorted(fresh.status()["paths"]) == ["wan1", "wan2", "wan3"]
        r = subprocess.run([sys.executable, "-m", "bonding.daemon", "--check-config",
                            "--config-dir", st.config_dir], capture_output=True, text=True,
                           check=False)
        assert r.returncode == 1
        assert "bonding.wan3.backup='maybe'" in r.stdout
        assert "device 'nosuch0' does not exist" in r.stdout
    finally:
        reload_with(fresh, original)
