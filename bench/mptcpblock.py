"""mptcpblock: how long bondingd takes to see that an ISP blocks MPTCP, and that it raises no
false alarm on normal links (root).

    .venv/bin/python bench/mptcpblock.py [--runs N] [--interval S] [--join-timeout S]
                                         [--quiet-s S]

One full-path lab (sing-box on both ends, links 50/30/20 Mbit/s at 20/40/80 ms RTT) with the
given mptcp_check_interval_s and mptcp_join_timeout_s (the defaults: 60 and 20 s).
- quiet: a bonded upload from the LAN host (iperf3 -P 4, restarted as it ends) for `quiet_s`
  seconds (600 by default) over normal links: every path shown blocked in that time is a false
  alarm, counted and printed.
- strip: `runs` times, wan2's ISP starts stripping the MPTCP options; the time until status
  shows wan2 blocked (a run over 3 intervals + 10 s failed); then healed, and the time until it
  is unblocked.
- join: `runs` times, wan2's ISP starts dropping MP_JOIN SYNs while a bonded upload (iperf3 -P
  6, the router's ECMP hash on L4 so first subflows spread) runs; the time until wan2 is shown
  blocked (over join timeout + 20 s failed).  Healed between runs: the block is lifted by
  bondingd's own retest (mptcp_retest_s, set to 10 s here).
Each figure: median and range over the runs, failed runs counted.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bonding.lab.iperf import Transfer
from bonding.lab.topology import TARGET_ADDR, Lab, parse_links
from bonding.lab.traffic import wait_all_up, wait_for, wait_proxy_running
from figures import Runs
from labs import prefix

LINKS = "50/10ms,30/20ms,20/40ms"


def blocked(lab: Lab) -> set[str]:
    return {n for n, p in lab.status().get("paths", {}).items()
            if (p.get("mptcp") or {}).get("blocked")}


def upload(lab: Lab, seconds: float, parallel: int) -> Transfer:
    t = Transfer(lab, seconds, src_role="lan", dst=TARGET_ADDR, dst_role="target", mptcp=False,
                 parallel=parallel)
    t.start()
    return t


def hash_policy(lab: Lab, policy: int) -> None:
    subprocess.run(["ip", "netns", "exec", lab.load().namespaces["router"], "sysctl", "-qw",
                    f"net.ipv4.fib_multipath_hash_policy={policy}"], check=True)


def quiet(lab: Lab, seconds: float) -> list[str]:
    """False alarms over `seconds` of bonded traffic on normal links."""
    alarms: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run_s = min(60.0, max(5.0, end - time.monotonic()))
        t = upload(lab, run_s, 4)
        try:
            stop = time.monotonic() + run_s
            while time.monotonic() < stop:
                for name in blocked(lab) - {a.split(" ")[0] for a in alarms}:
                    alarms.append(f"{name} at {seconds - (end - time.monotonic()):.0f} s: "
                                  f"{lab.status()['paths'][name]['mptcp']['reason']}")
                time.sleep(0.5)
            t.result(timeout=30)  # reads its report (a full pipe would block iperf3 at the end)
        finally:
            t.stop()
    return alarms


def strip_runs(lab: Lab, runs: int, interval: float) -> tuple[Runs, Runs]:
    found, lifted = Runs("strip detected (s)"), Runs("strip lifted after heal (s)")
    for _ in range(runs):
        t0 = time.monotonic()
        lab.strip_mptcp("wan2")
        if wait_for(lambda: "wan2" in blocked(lab), 3 * interval + 10, 0.1) is None:
            found.fail("not blocked in time")
        else:
            found.add(time.monotonic() - t0)
        t0 = time.monotonic()
        lab.clear("wan2")
        if wait_for(lambda: not blocked(lab), 3 * interval + 10, 0.1) is None:
            lifted.fail("not lifted in time")
        else:
            lifted.add(time.monotonic() - t0)
    return found, lifted


def join_runs(lab: Lab, runs: int, join_timeout: float) -> Runs:
    found = Runs("MP_JOIN drop detected (s)")
    hash_policy(lab, 1)
    try:
        for _ in range(runs):
            if wait_for(lambda: not blocked(lab), 60, 0.2) is None:
                found.fail("still blocked before the run")
                continue
            # the fault first: connections that joined wan2 before it keep their subflows
            t0 = time.monotonic()
            lab.drop_mp_join("wan2")
            t = upload(lab, join_timeout + 25, 6)
            try:
                if wait_for(lambda: "wan2" in blocked(lab), join_timeout + 20, 0.1) is None:
                    found.fail("not blocked in time")
                else:
                    found.add(time.monotonic() - t0)
            finally:
                t.stop()
                lab.clear("wan2")
    finally:
        hash_policy(lab, 0)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--interval", type=int, default=60, help="mptcp_check_interval_s")
    p.add_argument("--join-timeout", type=int, default=20, help="mptcp_join_timeout_s")
    p.add_argument("--quiet-s", type=float, default=600.0)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the lab comes down on a kill too
    lab = Lab(prefix("m"))
    lab.down(purge=True)
    lab.up(parse_links(LINKS), proxy=True,
           options={"mptcp_check_interval_s": str(a.interval),
                    "mptcp_join_timeout_s": str(a.join_timeout), "mptcp_retest_s": "10"})
    try:
        if not (wait_all_up(lab, 20) and wait_proxy_running(lab, 10)):
            print(f"lab not up: {lab.status()}", flush=True)
            return 1
        print(f"links {LINKS}, check interval {a.interval} s, join timeout {a.join_timeout} s"
              f" (the host is shared with other work: times may err long)", flush=True)
        alarms = quiet(lab, a.quiet_s)
        print(f"quiet: {a.quiet_s:.0f} s of bonded upload on normal links: "
              f"{len(alarms)} false alarms" + "".join(f"\n  {x}" for x in alarms))
        found, lifted = strip_runs(lab, a.runs, a.interval)
        print(f"{found.what}: {found.summary()}", flush=True)
        print(f"{lifted.what}: {lifted.summary()}", flush=True)
        joins = join_runs(lab, a.runs, a.join_timeout)
        print(f"{joins.what}: {joins.summary()}", flush=True)
        return 0
    finally:
        lab.down(purge=True)


if __name__ == "__main__":
    sys.exit(main())
