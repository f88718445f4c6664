"""The core's parameters are the config's globals, option by option (bonding.bondingd.params)."""

from __future__ import annotations

from bonding.bondingd.params import health_params, server_params
from bonding.config import Globals
from bonding.core import health, servers


def test_health_params_take_every_option() -> None:
    g = Globals(down_count=2, down_window=7, up_count=4, degraded_loss_pct=30,
                degraded_rtt_factor=2.5, degraded_rtt_ms=80, loss_window=40,
                probe_timeout_min_ms=100, probe_timeout_ms=3000)
    assert health_params(g) == health.Params(
        down_count=2, down_window=7, up_count=4, degraded_loss_pct=30.0,
        degraded_rtt_factor=2.5, degraded_rtt_ms=80.0, loss_window=40,
        timeout_min_ms=100.0, timeout_max_ms=3000.0)


def test_default_globals_give_the_cores_defaults() -> None:
    assert health_params(Globals()) == health.Params()
    assert server_params(Globals()) == servers.Params()


def test_server_params_take_every_option() -> None:
    g = Globals(server_down_count=4, server_up_count=2, server_failback="stay", server_hold_s=5)
    assert server_params(g) == servers.Params(4, 2, servers.Failback.STAY, 5.0)
