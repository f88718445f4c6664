"""What `status` and `path` say of a path (bonding.bondingd.status), against the keys README's
ubus section documents, and the status.json snapshot written atomically."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bonding.bondingd.mptcpwatch import MptcpGuard, MptcpWatch
from bonding.bondingd.runtime import PathRuntime
from bonding.bondingd.status import KernelView, StatusFile, family_status, path_status, status
from bonding.config import Config, PathConfig, Problem, Severity
from bonding.core import mptcpblock as mb
from bonding.core.cadence import Cadence
from bonding.core.health import Health, Params, State
from bonding.core.roles import Standing
from bonding.probe import TargetStats

# README, "ubus: the object bonding": per path state, reason, since, backup, RTT/jitter/loss,
# rx/tx bit/s and byte counters, MPTCP endpoint id, subflows; `path` adds probe rounds, the last
# window and per-target results.
STATUS_KEYS = {"state", "reason", "since", "backup", "forced_backup", "enabled", "interface",
               "device", "address", "gateway", "address6", "rtt_ms", "jitter_ms", "loss_pct",
               "rx_bps", "tx_bps", "rx_bytes", "tx_bytes", "endpoint_id", "endpoint_id6",
               "subflows", "probe_timeout_ms", "role", "standby", "standby_reason",
               "probe_interval_ms", "probe_cadence"}
DETAIL_KEYS = {"rounds", "window", "targets", "families"}
FAMILY_KEYS = {"state", "reason", "since", "probed", "carrying", "backup", "address",
               "gateway", "endpoint_id", "subflows", "rtt_ms", "jitter_ms", "loss_pct",
               "rounds", "window", "targets"}


class Prober:
    def __init__(self, *stats: TargetStats) -> None:
        self.stats = {s.address: s for s in stats}

    def start(self) -> None: ...
    def close(self) -> None: ...
    def probe_now(self) -> None: ...


def wan() -> PathRuntime:
    rt = PathRuntime(cfg=PathConfig(name="wan", interface="wan"), index=0, device="wan1",
                     ifindex=3, since_wall=1763799875.1234)
    rt.v4.address, rt.v4.gateway, rt.v4.targets = "100.64.1.2", "100.64.1.1", ("192.0.2.53",)
    rt.v4.health = Health(state=State.UP, reason="", srtt_ms=21.345, rttvar_ms=0.44,
                          losses=((10, 9),), window=(True, False, True), rounds=1200,
                          fresh=False)
    rt.v4.prober = Prober(TargetStats("192.0.2.53", sent=10, received=9, last_rtt_ms=21.0))
    rt.v6.address, rt.v6.gateway = "2001:db8:64:1::2", "fe80::1"
    rt.v6.health = Health(state=State.DOWN, reason="no probe answered yet")
    rt.counters, rt.rx_bps, rt.tx_bps = (10.0, 1000000, 500000), 1000.4, 1999.6
    return rt


KERNEL = KernelView(carriers={4: ("wan",), 6: ()},
                    endpoint_ids={"100.64.1.2": 3, "2001:db8:64:1::2": 4},
                    subflows=Counter({"100.64.1.2": 2, "2001:db8:64:1::2": 1}))


def test_status_of_a_path_has_the_documented_keys_and_values() -> None:
    out = path_status(wan(), Params(), KERNEL, ipv6=True)
    assert set(out) == STATUS_KEYS  # no "error": it resolved
    assert out == {
        "state": "up", "reason": "", "since": 1763799875.123, "backup": False,
        "forced_backup": False, "enabled": True, "interface": "wan", "device": "wan1",
        "address": "100.64.1.2", "gateway": "100.64.1.1", "address6": "2001:db8:64:1::2",
        "rtt_ms": 21.34, "jitter_ms": 0.44, "loss_pct": 10.0, "rx_bps": 1000, "tx_bps": 2000,
        "rx_bytes": 1000000, "tx_bytes": 500000, "endpoint_id": 3, "endpoint_id6": 4,
        "subflows": 3, "probe_timeout_ms": 250,  # 2·SRTT + 4·RTTVAR, at least the minimum
        "role": "bond", "standby": False, "standby_reason": "", "probe_interval_ms": None,
        "probe_cadence": ""}
    json.dumps(out)  # ubus and status.json carry it as JSON


def test_status_says_a_backup_path_stands_by_why_and_how_often_it_is_probed() -> None:
    rt = wan()
    rt.cfg = PathConfig(name="wan", interface="wan", role="backup")
    kernel = KernelView(carriers={4: (), 6: ()},
                        standing={"wan": Standing(True, "standing by: bond path dsl is up")},
                        cadence={"wan": Cadence(30000, "standing by")})
    out = path_status(rt, Params(), kernel, ipv6=True)
    assert {k: out[k] for k in ("role", "standby", "standby_reason", "probe_interval_ms",
                                "probe_cadence")} == {
        "role": "backup", "standby": True, "standby_reason": "standing by: bond path dsl is up",
        "probe_interval_ms": 30000, "probe_cadence": "standing by"}


def test_the_path_method_adds_rounds_window_targets_and_each_family() -> None:
    out = path_status(wan(), Params(), KERNEL, ipv6=True, detail=True)
    assert set(out) == STATUS_KEYS | DETAIL_KEYS
    assert out["rounds"] == 1200 and out["window"] == ["ok", "fail", "ok"]
    [t] = out["targets"]
    assert set(t) == {"address", "sent", "received", "last_rtt_ms", "last_reply_s", "error"}
    assert (t["address"], t["sent"], t["received"]) == ("192.0.2.53", 10, 9)
    assert sorted(out["families"]) == ["ipv4", "ipv6"]
    for f in out["families"].values():
        assert set(f) == FAMILY_KEYS
    v4, v6 = out["families"]["ipv4"], out["families"]["ipv6"]
    assert (v4["state"], v4["carrying"], v4["probed"], v4["endpoint_id"], v4["subflows"]) == (
        "up", True, True, 3, 2)
    assert (v6["state"], v6["reason"], v6["carrying"], v6["probed"], v6["targets"]) == (
        "down", "no probe answered yet", False, False, [])
    assert (v6["endpoint_id"], v6["subflows"], v6["gateway"]) == (4, 1, "fe80::1")
    json.dumps(out)


def test_without_ipv6_the_path_method_has_only_the_ipv4_family() -> None:
    out = path_status(wan(), Params(), KERNEL, ipv6=False, detail=True)
    assert list(out["families"]) == ["ipv4"]


@pytest.mark.parametrize(("kernel", "subflows", "endpoint_id"), [
    (KernelView(), None, None),  # subflows unknown (no sock_diag), no endpoints
    (KernelView(subflows=Counter()), 0, None),  # known: none
    (KernelView(endpoint_ids={"100.64.1.2": 7}, subflows=Counter({"100.64.9.9": 5})), 0, 7),
])
def test_what_the_kernel_holds(kernel: KernelView, subflows: int | None,
                               endpoint_id: int | None) -> None:
    out = path_status(wan(), Params(), kernel, ipv6=True)
    assert (out["subflows"], out["endpoint_id"]) == (subflows, endpoint_id)


def test_a_path_that_is_not_resolved_says_why_and_has_nothing_measured() -> None:
    rt = PathRuntime(cfg=PathConfig(name="lte", interface="lte"), index=1)
    rt.resolve_error = "netifd interface 'lte' is down"
    rt.on_link(False, rt.resolve_error, 5.0)
    out = path_status(rt, Params(timeout_max_ms=800), KernelView(subflows=Counter()), ipv6=True)
    assert out["error"] == "netifd interface 'lte' is down"
    assert (out["state"], out["reason"]) == ("down", "netifd interface 'lte' is down")
    assert (out["device"], out["address"], out["rx_bytes"], out["subflows"]) == (
        None, None, None, None)  # no address: no subflow count
    assert (out["rtt_ms"], out["loss_pct"], out["probe_timeout_ms"]) == (None, None, 800)


def test_backup_degraded_and_forced() -> None:
    rt = wan()
    rt.v4.health = Health(state=State.DEGRADED, reason="loss 25%", fresh=False)
    rt.v6.targets = ("2001:db8::53",)
    rt.v6.health = Health(state=State.DEGRADED, reason="loss 30%", fresh=False)
    out = path_status(rt, Params(), KERNEL, ipv6=True, detail=True)
    assert out["state"] == "degraded" and out["backup"] is True and out["forced_backup"] is False
    assert out["reason"] == "IPv4: loss 25%"  # the deciding family named
    assert out["families"]["ipv6"]["backup"] is True
    rt.backup_override = True
    rt.v4.health = rt.v6.health = Health(state=State.UP, reason="", fresh=False)
    out = path_status(rt, Params(), KERNEL, ipv6=True)
    assert (out["state"], out["backup"], out["forced_backup"]) == ("up", True, True)


def test_family_status_ages_its_targets_from_now() -> None:
    rt = wan()
    now = time.monotonic()
    rt.v4.prober = Prober(TargetStats("192.0.2.53", 3, 3, 20.0, last_reply=now - 1.5))
    out: dict[str, Any] = family_status(rt, rt.v4, now, KERNEL)
    assert out["targets"][0]["last_reply_s"] == 1.5


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    sf = StatusFile(tmp_path)
    sf.write({"version": "0.1.0", "paths": {"wan": {"state": "up"}}})
    assert json.loads((tmp_path / "status.json").read_text()) == {
        "version": "0.1.0", "paths": {"wan": {"state": "up"}}}
    before = (tmp_path / "status.json").stat().st_ino
    sf.write({"version": "0.1.0", "paths": {}})
    after = tmp_path / "status.json"
    assert after.stat().st_ino != before  # a new file renamed over it, not rewritten in place
    assert json.loads(after.read_text()) == {"version": "0.1.0", "paths": {}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]  # no .tmp left
    sf.remove()
    sf.remove()  # already gone: fine
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_status_file_is_logged_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sf = StatusFile(tmp_path / "no-such-dir")
    sf.write({"version": "0.1.0"})
    assert "writing" in caplog.text and "status.json" in caplog.text


# the top-level keys of `status` (README's ubus section, LuCI's status view and bondingctl read
# them)
REPLY_KEYS = {"version", "uptime", "counters_at", "enabled", "fail_open", "fail_open6",
              "servers", "active_server", "paths", "proxy", "rules", "realtime", "shaping",
              "config_problems", "errors", "ubus", "mptcp_checks"}


@dataclass
class FakeReconciler:
    endpoint_ids: dict[str, int] = field(default_factory=dict)


@dataclass
class FakePinning:
    def status(self, proxy_running: bool) -> list[dict[str, Any]]:
        return [{"name": "voip", "applied": proxy_running}]


class FakeRealtime:
    def status(self) -> dict[str, Any] | None:
        return {"path": "wan", "why": "lowest RTT"}


class FakeShaper:
    def status(self) -> dict[str, Any]:
        return {"wan": {"upload_kbit": 9500, "download_kbit": 47500, "qdisc": "htb",
                        "error": ""}}


@dataclass
class FakeKernel:
    fail_open: bool = True
    fail_open6: bool = False
    errors: list[str] = field(default_factory=lambda: ["no MPTCP path manager"])
    carriers: dict[int, tuple[str, ...]] = field(default_factory=lambda: {4: ("wan",), 6: ()})
    reconciler: FakeReconciler = field(default_factory=lambda: FakeReconciler({"100.64.1.2": 3}))
    pinning: FakePinning = field(default_factory=FakePinning)
    realtime: FakeRealtime = field(default_factory=FakeRealtime)
    shaper: FakeShaper = field(default_factory=FakeShaper)


@dataclass
class FakeProxy:
    running: bool = True

    def status(self) -> dict[str, Any]:
        return {"backend": "sing-box", "state": "running"}

    def errors(self) -> list[str]:
        return ["nftables: busy"]


class FakeServers:
    def status(self) -> list[dict[str, Any]]:
        return [{"name": "vps"}]

    def active_status(self) -> dict[str, Any]:
        return {"name": "vps"}


@dataclass
class FakeBus:
    connected: bool = True


class NoMptcpChecks:
    """bondingd's MPTCP checks before any check ran (the real watch; no socket)."""

    def __init__(self) -> None:
        self.watch = MptcpWatch(mb.Params(), lambda *a: None, lambda *a: None)
        self.settings = MptcpGuard.settings


@dataclass
class FakeDaemon:
    cfg: Config = field(default_factory=Config)
    problems: list[Problem] = field(default_factory=list)
    params: Params = field(default_factory=Params)
    paths: dict[str, PathRuntime] = field(default_factory=dict)
    kernel: FakeKernel | None = None
    dataplane: FakeProxy | None = None
    failover: FakeServers = field(default_factory=FakeServers)
    bus: FakeBus | None = None
    bus_error: str | None = "libubus not usable"
    started: float = field(default_factory=time.monotonic)
    started_wall: float = 1700000000.0
    counters_at: float = 1.5
    subflows: Counter[str] | None = None
    cadence: dict[str, Cadence] = field(default_factory=dict)
    standing: dict[str, Standing] = field(default_factory=dict)

    mptcp: NoMptcpChecks = field(default_factory=NoMptcpChecks)

    def standings(self) -> dict[str, Standing]:
        return self.standing


def test_status_before_the_kernel_and_proxy_are_there_says_so() -> None:
    st = status(FakeDaemon(paths={"wan": wan()}))
    assert set(st) == REPLY_KEYS
    assert (st["fail_open"], st["fail_open6"], st["rules"], st["errors"]) == (False, False, [],
                                                                               [])
    assert st["proxy"]["backend"] == "none" and st["proxy"]["since"] == 1700000000.0
    assert st["ubus"] == {"connected": False, "error": "libubus not usable"}
    assert set(st["paths"]["wan"]) == STATUS_KEYS | {"mptcp"} and st["counters_at"] == 1.5


def test_status_reads_the_kernel_proxy_servers_and_bus() -> None:
    problem = Problem(Severity.WARNING, "wan", "backup", "x", "not a boolean")
    d = FakeDaemon(paths={"wan": wan()}, kernel=FakeKernel(), dataplane=FakeProxy(),
                   bus=FakeBus(), bus_error=None, problems=[problem],
                   subflows=Counter({"100.64.1.2": 2}))
    st = status(d)
    assert st["fail_open"] and not st["fail_open6"]
    assert st["errors"] == ["no MPTCP path manager", "nftables: busy"]
    assert st["rules"] == [{"name": "voip", "applied": True}]
    assert st["realtime"] == {"path": "wan", "why": "lowest RTT"}
    assert st["shaping"]["wan"]["qdisc"] == "htb"
    assert st["proxy"] == {"backend": "sing-box", "state": "running"}
    assert st["servers"] == [{"name": "vps"}] and st["active_server"] == {"name": "vps"}
    assert st["config_problems"] == [str(problem)] and st["ubus"]["connected"]
    p = st["paths"]["wan"]
    assert (p["endpoint_id"], p["subflows"]) == (3, 2) and "families" not in p
    assert status(d, detail=True)["paths"]["wan"]["families"]["ipv4"]["carrying"]
