"""The pure core's parameters from the config's globals (the core never imports the config)."""

from __future__ import annotations

from bonding.config import Globals
from bonding.core import health, servers


def health_params(g: Globals) -> health.Params:
    """Path health (bonding.core.health): rounds, thresholds, reply timeouts."""
    return health.Params(
        down_count=g.down_count,
        down_window=g.down_window,
        up_count=g.up_count,
        degraded_loss_pct=float(g.degraded_loss_pct),
        degraded_rtt_factor=g.degraded_rtt_factor,
        degraded_rtt_ms=float(g.degraded_rtt_ms),
        loss_window=g.loss_window,
        timeout_min_ms=float(g.probe_timeout_min_ms),
        timeout_max_ms=float(g.probe_timeout_ms),
    )


def server_params(g: Globals) -> servers.Params:
    """Server failover (bonding.core.servers): rounds, failback, hold time."""
    return servers.Params(down_count=g.server_down_count, up_count=g.server_up_count,
                          failback=servers.Failback(g.server_failback),
                          hold_s=float(g.server_hold_s))
