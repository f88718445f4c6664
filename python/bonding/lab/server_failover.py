"""Timing a server failover in the lab: the first aggregation server killed or blackholed
while the LAN host opens new connections, until one reaches the target through the second.

The one measurement of tests/lab/test_failover_lab.py and bench/run.py's `failover`."""

from __future__ import annotations

import time

from bonding.lab.flows import NewConnections
from bonding.lab.model import SERVER2_ADDR, TARGET_ADDR, LabError
from bonding.lab.topology import Lab

FAULTS = ("kill", "blackhole")


def fail_first_server(lab: Lab, how: str, port: int,
                      limit: float = 15.0) -> tuple[float | None, float]:
    """Kill the first server (`kill`: every process of its namespace at once, as in a crash)
    or blackhole it, while a loop in the LAN host opens new connections to the target's whoami
    service on `port`.  Returns the seconds until one came through the second server (None:
    not within `limit`) and the fault's moment on the wall clock (time.time(), to compare with
    bondingd's `since`)."""
    if how not in FAULTS:
        raise LabError(f"server fault {how!r}: use {' or '.join(FAULTS)}")
    loop = NewConnections(lab, "lan", "whoami", TARGET_ADDR, port, SERVER2_ADDR, limit=limit)
    try:
        t0, w0 = time.monotonic(), time.time()
        if how == "kill":
            lab.stop_server("server")
        else:
            lab.server_blackhole("server", True)
        loop.go(t0)
        return loop.result(), w0
    finally:
        loop.close()


def heal_first_server(lab: Lab) -> None:
    """Undo either fault of `fail_first_server`: no blackhole, `bonding-server run` running."""
    lab.server_blackhole("server", False)
    if "bonding-server" not in lab.load().pids:
        lab.start_server("server")
