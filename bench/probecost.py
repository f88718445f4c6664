"""probecost: what probing costs a path in each state, in MB a month, and how fast a backup
path standing by notices its own death (root).

    .venv/bin/python bench/probecost.py [--runs N] [--standby-window S]

One full-path lab of its own (sing-box on both ends: the servers are probed through the live
paths, as on a router), links 50/30/20 Mbit/s at 20/40/80 ms RTT, dual-stack, both families
probed, default settings; wan3 is `option role 'backup'` (bonding.core.roles).  With no user
traffic, each figure is the bytes through the router's WAN device (sent + received: both count
on a metered plan; link-layer headers, ARP and neighbour discovery included), scaled to 30 days:

- bond path in use: wan1, while every path is up;
- backup standing by: wan3, while wan1 and wan2 are up (over `--standby-window` s: a round per
  family every 60 s by default);
- backup in use: wan3, while wan1 and wan2 are blackholed (it carries the traffic then).

Then the detection time of the standby path's own death: wan3 is blackholed at a random moment
while it stands by, timed until bondingd says it is down (its `since` less the wall clock just
before the nft command); a run not declared within 90 s is a failed run, counted.  After each,
wan3 is healed and waited for (up within 90 s, or the run fails).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence

from bonding.core.cadence import MONTH_S
from bonding.lab.topology import Lab
from bonding.lab.traffic import path_state, wait_for
from figures import Runs
from labs import full_lab

LINKS = "50/10ms,30/20ms,20/40ms"
BAR_MB = 50.0  # a standby path: ≤ 50 MB a month (issue 17)
NOTICE_S = 90.0
UP_WAIT_S = 90.0
IN_USE_WINDOW_S = 10.0


def _bytes(lab: Lab, link: str) -> int:
    c = lab.counters()[link]
    return c["rx"] + c["tx"]


def month_mb(lab: Lab, link: str, window_s: float) -> float:
    """Bytes through `link` over `window_s`, as MB per 30 days."""
    t0, b0 = time.monotonic(), _bytes(lab, link)
    time.sleep(window_s)
    t1, b1 = time.monotonic(), _bytes(lab, link)
    return (b1 - b0) / (t1 - t0) * MONTH_S / 1e6


def _wan3(lab: Lab) -> dict[str, object]:
    p: dict[str, object] = lab.status()["paths"]["wan3"]
    return p


def _standing_by(lab: Lab, timeout: float = 60.0) -> bool:
    return wait_for(lambda: bool(_wan3(lab).get("standby"))
                    and _wan3(lab).get("probe_interval_ms") != 150
                    and path_state(lab, "wan3") == "up", timeout) is not None


def cost_runs(lab: Lab, runs: int, standby_window: float,
              log: Callable[[str], None]) -> list[Runs]:
    bond = Runs("bond path in use (wan1), MB/month")
    standby = Runs("backup standing by (wan3), MB/month")
    in_use = Runs("backup in use (wan3), MB/month")
    for i in range(runs):
        bond.add(month_mb(lab, "wan1", IN_USE_WINDOW_S))
        if not _standing_by(lab):
            standby.fail("wan3 not standing by")
        else:
            time.sleep(1)  # the slow prober's first round is done
            standby.add(month_mb(lab, "wan3", standby_window))
        lab.blackhole("wan1")
        lab.blackhole("wan2")
        try:
            if wait_for(lambda: not _wan3(lab).get("standby")
                        and _wan3(lab).get("probe_interval_ms") == 150, 5) is None:
                in_use.fail("wan3 not in use 5 s after wan1 and wan2 died")
            else:
                time.sleep(1)
                in_use.add(month_mb(lab, "wan3", IN_USE_WINDOW_S))
        finally:
            lab.clear("wan1")
            lab.clear("wan2")
        log(f"  run {i + 1}: bond {bond.values[-1]:.0f}, standby "
            f"{standby.values[-1] if standby.values else float('nan'):.1f}, backup in use "
            f"{in_use.values[-1] if in_use.values else float('nan'):.0f} MB/month")
    return [bond, standby, in_use]


def death_runs(lab: Lab, runs: int, rng: random.Random,
               log: Callable[[str], None]) -> Runs:
    took = Runs("standby path's own death declared, s")
    for i in range(runs):
        if not _standing_by(lab, UP_WAIT_S):
            took.fail("wan3 not up and standing by before the fault")
            continue
        time.sleep(rng.uniform(0.0, float(_wan3(lab)["probe_interval_ms"]) / 1000))  # type: ignore[arg-type]
        t0 = time.time()
        lab.blackhole("wan3")
        try:
            if wait_for(lambda: path_state(lab, "wan3") == "down", NOTICE_S, 0.01) is None:
                took.fail(f"not declared down within {NOTICE_S:g} s")
                log(f"  run {i + 1}: FAILED, not declared down")
                continue
            s = float(_wan3(lab)["since"]) - t0  # type: ignore[arg-type]
            took.add(s)
            log(f"  run {i + 1}: declared down after {s:.2f} s")
        finally:
            lab.clear("wan3")
    return took


def probecost(runs: int = 3, standby_window: float = 120.0, seed: int = 1,
              log: Callable[[str], None] = print) -> list[Runs]:
    load0 = os.getloadavg()[0]
    lab = full_lab(LINKS, "bbr")
    try:
        lab.set_options({"wan3": {"role": "backup"}})
        if not _standing_by(lab):
            raise SystemExit(f"probecost: wan3 does not stand by: {_wan3(lab)}")
        figures = cost_runs(lab, runs, standby_window, log)
        figures.append(death_runs(lab, runs, random.Random(seed), log))
        for f in figures:
            fmt = (lambda v: f"{v:.2f}") if f.what.endswith(", s") else (
                lambda v: f"{v:.1f}")
            log(f"{f.what}: {f.summary(fmt)}")
        sb = figures[1].median()
        if sb is not None:
            log(f"  standby bar ≤ {BAR_MB:g} MB/month: {'met' if sb <= BAR_MB else 'NOT met'}")
        log(f"  host load (1-min average): {load0:.1f} at the start, {os.getloadavg()[0]:.1f} "
            f"at the end, on {os.cpu_count()} CPUs (shared with other work)")
        return figures
    finally:
        lab.down(purge=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs of each figure (%(default)s)")
    p.add_argument("--standby-window", type=float, default=120.0,
                   help="seconds the standby cost is measured over (%(default)s)")
    p.add_argument("--seed", type=int, default=1, help="of the faults' delays (%(default)s)")
    a = p.parse_args(argv)
    if a.runs < 3:
        p.error("--runs: at least 3 (figures are medians of ≥ 3 runs)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    probecost(a.runs, a.standby_window, a.seed, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
