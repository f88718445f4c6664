"""recovered: a link that comes back carries traffic again within 1 s of bondingd declaring it up
(DESIGN §6), measured where it counts: the bytes the receiving host of a connection through the
full path (the proxy on both ends) takes in (root).

Per run and way (upload: the target receives; download: the LAN host receives): one TCP
connection through the proxy; wan1 is blackholed, declared down, held down 2 s, restored; from
the moment bondingd declares it up (its path's `since`), the receiver's device is read every
SAMPLE_S.  The figure is the time from that moment until two windows in a row of 2 × SAMPLE_S
reach BACK of the links' summed line rate (the receiver's device counts the frames, headers
included).  A run where it does not happen within WAIT_S, or where anything fails, is counted
and printed as failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from bonding.lab.commands import run
from bonding.lab.topology import Lab, LabError, parse_links
from bonding.lab.traffic import lan_transfer, path_state, wait_all_up, wait_for
from figures import Runs
from labs import full_lab, set_cc

LINKS = "50/10ms,30/20ms,20/40ms"
VICTIM = "wan1"
SAMPLE_S = 0.05
BACK = 0.9
WAIT_S = 8.0


def rx_bytes(lab: Lab, role: str) -> int:
    """Bytes received on every device but lo of the namespace of `role`."""
    ns = (lab.state or lab.load()).namespaces[role]
    links = json.loads(run(["ip", "-n", ns, "-s", "-j", "link", "show"]).stdout)
    return sum(x["stats64"]["rx"]["bytes"] for x in links if x["ifname"] != "lo")


def _back_after(lab: Lab, role: str, need_bps: float, declared: float) -> float | None:
    """Seconds from `declared` (wall clock) until two windows in a row reach `need_bps`."""
    samples: list[tuple[float, int]] = []
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        samples.append((time.time(), rx_bytes(lab, role)))
        if len(samples) >= 5:
            (t0, b0), (t1, b1), (t2, b2) = samples[-5], samples[-3], samples[-1]
            if min((b1 - b0) * 8 / (t1 - t0), (b2 - b1) * 8 / (t2 - t1)) >= need_bps:
                return t0 - declared
        time.sleep(SAMPLE_S)
    return None


def _one(lab: Lab, way: str, need_bps: float) -> float | str:
    """One run: the seconds, or why there is none."""
    t = lan_transfer(lab, 30, reverse=way == "download")
    t.start()
    try:
        time.sleep(5.0)
        lab.blackhole(VICTIM)
        if wait_for(lambda: path_state(lab, VICTIM) == "down", 5, 0.01) is None:
            return f"{VICTIM} not declared down within 5 s"
        time.sleep(2.0)
        lab.clear(VICTIM)
        if wait_for(lambda: path_state(lab, VICTIM) == "up", 10, 0.01) is None:
            return f"{VICTIM} not declared up within 10 s"
        declared = float(lab.status()["paths"][VICTIM]["since"])
        got = _back_after(lab, "target" if way == "upload" else "lan", need_bps, declared)
        return f"not back to {100 * BACK:.0f}% within {WAIT_S:g} s" if got is None else got
    except LabError as e:
        return str(e).splitlines()[0][:80]
    finally:
        t.stop()


def recovered(runs: int, ccs: Sequence[str]) -> None:
    line = sum(x.rate_mbit for x in parse_links(LINKS)) * 1e6
    lab = full_lab(LINKS, ccs[0])
    try:
        for cc in ccs:
            set_cc(lab, cc, lossy=set())
            for way in ("upload", "download"):
                figure = Runs(way)
                for _ in range(runs):
                    got = _one(lab, way, BACK * line)
                    if isinstance(got, str):
                        figure.fail(got)
                    else:
                        figure.add(got)
                    wait_all_up(lab, 20)
                print(f"recovered {LINKS} cc {cc or 'default':6} {way:8} {VICTIM} restored: "
                      f"the receiver back to ≥ {100 * BACK:.0f}% of the line rate after "
                      f"bondingd declared it up: "
                      f"{figure.summary(lambda v: f'{v * 1000:.0f} ms')} (bar ≤ 1 s)",
                      flush=True)
    finally:
        lab.down(purge=True)
