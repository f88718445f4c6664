"""detect: how long bondingd takes to declare a silently dead link down, and a lost carrier (root).

    .venv/bin/python bench/detect.py [--runs N] [--seed S]      (or bench/run.py detect)

Bars (DESIGN §6, issue 20): a blackhole is declared down within 1 s in ≥ 95% of the runs of
each link, with the default settings, also within 5 s of the path (or one of its families)
coming up; carrier loss ≤ 0.2 s.

One lab of its own (bondingd alone, no data plane; a prefix of this run) with three links of
20, 40 and 80 ms RTT (10, 20 and 40 ms each way), dual-stack, both families probed.  Each link
gets `runs` blackholes (nftables drop of everything its ISP forwards: no carrier change), one
link after the other.  Four kinds of run take turns:

- fresh lab: a new lab (a starting bondingd, every neighbour cache cold: the first IPv6 echoes
  wait about a second for neighbour discovery); the blackhole falls 0–5 s after the path came
  up;
- after carrier: the link's carrier is lost (timed: the carrier-loss figure) and comes back;
  the blackhole falls 0–5 s after the path came up again;
- after blackhole: the link is blackholed and healed; the blackhole falls 0–5 s after the path
  came back up;
- settled: the blackhole falls ≥ 8 s after the path came up.

The time is bondingd's wall clock at the path's transition (its `since`) less the wall clock
just before the fault's nft or ip command ran (which takes a few ms: the figures err long).
Each family's time is printed beside it (the path is down once both are), with how long each
family had been up when the fault came.  A run whose path is not declared down within 5 s, or
does not come up again within 60 s before its fault, is a failed run: printed, and counted as a
run over the bar (as ∞ in the median, p95 and worst), never dropped.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bonding.lab.topology import Lab, LinkSpec, parse_links
from bonding.lab.traffic import path_state, wait_all_up, wait_for

LINKS = "50/10ms,50/20ms,50/40ms"  # RTT 20, 40, 80 ms
BAR_S = 1.0
CARRIER_BAR_S = 0.2
SHARE_BAR = 0.95
JUST_UP_S = 5.0  # "within 5 s of the path coming up"
SETTLED_S = 8.0
NOTICE_S = 5.0  # a fault not declared within this is a failed run
UP_WAIT_S = 60.0
KINDS = ("fresh lab", "after carrier", "after blackhole", "settled")


@dataclass
class Run:
    link: str
    kind: str
    took_s: float | None = None  # None: a failed run
    why: str = ""
    families: dict[str, float | None] = field(default_factory=dict)  # family → its time
    up_for: dict[str, float | None] = field(default_factory=dict)  # family → live for, at fault
    estimate: dict[str, str] = field(default_factory=dict)  # family → "rtt/jitter" at fault
    carrier_tried: bool = False  # an "after carrier" run: its carrier loss is timed too
    carrier_s: float | None = None  # None (when tried): not declared within NOTICE_S


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..1) of xs: the smallest value ≥ p of them."""
    s = sorted(xs)
    return s[max(0, math.ceil(p * len(s)) - 1)]


def summary(times: Sequence[float | None], bar: float) -> str:
    """Median, p95, worst and the share within `bar` of runs; a failed run (None) counts as ∞."""
    if not times:
        return "no runs"
    xs = [math.inf if t is None else t for t in times]
    failed = sum(1 for t in times if t is None)
    within = sum(1 for x in xs if x <= bar)

    def ms(x: float) -> str:
        return "failed" if math.isinf(x) else f"{x * 1000:.0f} ms"

    return (f"median {ms(statistics_median(xs))}, p95 {ms(percentile(xs, 0.95))}, "
            f"worst {ms(max(xs))}, best {ms(min(xs))}; ≤ {bar * 1000:.0f} ms: {within}/{len(xs)}"
            f" = {100 * within / len(xs):.0f}%; failed runs: {failed}")


def statistics_median(xs: Sequence[float]) -> float:
    """The median (with ∞ for failed runs, which statistics.median would average)."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _families(lab: Lab, name: str) -> dict[str, Any]:
    fams: dict[str, Any] = (lab.status().get("paths", {}).get(name) or {}).get("families") or {}
    return fams


def _wait_up(lab: Lab, name: str) -> float | None:
    """Wait for the path to be up; bondingd's wall clock when it came up, None if it did not."""
    if wait_for(lambda: path_state(lab, name) == "up", UP_WAIT_S, 0.01) is None:
        return None
    since: float = lab.status()["paths"][name]["since"]
    return since


def _declared(lab: Lab, name: str, t0: float, run: Run) -> float | None:
    """Seconds from t0 to the path's transition to down (None: not within NOTICE_S)."""
    if wait_for(lambda: path_state(lab, name) == "down", NOTICE_S, 0.005) is None:
        return None
    path = lab.status()["paths"][name]
    for label, f in (path.get("families") or {}).items():
        run.families[label] = (f["since"] - t0 if f.get("state") == "down"
                               and f["since"] >= t0 else None)
    took: float = path["since"] - t0
    return took


def _prepare(lab: Lab, run: Run, rng: random.Random) -> bool:
    """Bring the link to the run's starting point and wait for the fault's time."""
    name = run.link
    if _wait_up(lab, name) is None:
        run.why = f"path not up within {UP_WAIT_S:g} s at the run's start"
        return False
    if run.kind == "after carrier":
        run.carrier_tried = True
        t0 = time.time()
        lab.carrier(name, False)
        got = wait_for(lambda: path_state(lab, name) == "down", NOTICE_S, 0.005)
        if got is not None:
            run.carrier_s = lab.status()["paths"][name]["since"] - t0
        lab.carrier(name, True)
        if got is None:
            run.why = "carrier loss not declared within 5 s"
            return False
    elif run.kind == "after blackhole":
        lab.blackhole(name)
        got = wait_for(lambda: path_state(lab, name) == "down", NOTICE_S, 0.005)
        lab.clear(name)
        if got is None:
            run.why = "the preparing blackhole not declared within 5 s"
            return False
    up = _wait_up(lab, name)
    if up is None:
        run.why = f"path not up within {UP_WAIT_S:g} s before the fault"
        return False
    wait = (rng.uniform(0.0, JUST_UP_S) if run.kind != "settled"
            else SETTLED_S + rng.uniform(0.0, 1.0))
    time.sleep(max(0.0, up + wait - time.time()))
    if path_state(lab, name) != "up":
        run.why = "path not up at the fault's time"
        return False
    return True


def one_run(lab: Lab, run: Run, rng: random.Random) -> None:
    """A blackhole on `run.link` after its preparation, timed into `run`."""
    if not _prepare(lab, run, rng):
        return
    now = time.time()
    for label, f in _families(lab, run.link).items():
        live = f.get("state") in ("up", "degraded")
        run.up_for[label] = now - f["since"] if live else None
        run.estimate[label] = f"{f.get('rtt_ms')}/{f.get('jitter_ms')}"
    t0 = time.time()
    lab.blackhole(run.link)
    try:
        run.took_s = _declared(lab, run.link, t0, run)
        if run.took_s is None:
            run.why = f"not declared down within {NOTICE_S:g} s"
    finally:
        lab.clear(run.link)


def _describe(r: Run) -> str:
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.0f}"

    def live(k: str) -> str:
        x = r.up_for.get(k)
        return "-" if x is None else f"{x:.1f}"

    fams = " ".join(f"{k} {ms(v)} ms (live {live(k)} s, rtt/jitter {r.estimate.get(k)})"
                    for k, v in r.families.items())
    took = f"{r.took_s * 1000:.0f} ms" if r.took_s is not None else f"FAILED: {r.why}"
    return f"  {r.link} {r.kind:15} {took:10} {fams}"


def _new_lab(lab: Lab, specs: Sequence[LinkSpec]) -> None:
    lab.down(purge=True)
    lab.up(specs, proxy=False)
    if not wait_all_up(lab, 30):
        status = lab.status().get("paths")
        lab.down(purge=True)
        raise SystemExit(f"detect: paths did not come up: {status}")


def detect(runs: int = 20, seed: int = 1, links: str = LINKS,
           log: Callable[[str], None] = print) -> list[Run]:
    """Blackholes and carrier losses in a lab of its own; prints each run and the figures."""
    lab = Lab(f"bd{os.getpid() % 100000}")
    specs = parse_links(links)
    rng = random.Random(seed)
    done: list[Run] = []
    load0 = os.getloadavg()[0]
    try:
        _new_lab(lab, specs)
        for i in range(runs):
            kind = KINDS[i % len(KINDS)]
            for x, spec in enumerate(specs):
                if kind == "fresh lab":
                    lab.down(purge=True)
                    lab.up(specs, proxy=False)
                r = Run(link=f"wan{1 + x}", kind=kind)
                one_run(lab, r, rng)
                done.append(r)
                log(_describe(r) + f"  [{2 * spec.delay_ms:g} ms RTT]")
        for x, spec in enumerate(specs):
            mine = [r for r in done if r.link == f"wan{1 + x}"]
            log(f"blackhole declared down, wan{1 + x} ({2 * spec.delay_ms:g} ms RTT): "
                f"{summary([r.took_s for r in mine], BAR_S)}  (bar: ≥ 95% ≤ 1 s)")
            just = [r.took_s for r in mine if r.kind != "settled"]
            log(f"  of which within 5 s of coming up: {summary(just, BAR_S)}")
        log(f"blackhole declared down, all links: {summary([r.took_s for r in done], BAR_S)}")
        for fam in ("ipv4", "ipv6"):
            times = [r.families.get(fam) for r in done if r.took_s is not None
                     and r.up_for.get(fam) is not None]
            log(f"  {fam} family of those (the runs where it was live at the fault): "
                f"{summary(times, BAR_S)}")
        log(f"carrier loss declared down: "
            f"{summary([r.carrier_s for r in done if r.carrier_tried], CARRIER_BAR_S)}"
            f"  (bar ≤ 200 ms)")
        log(f"  host load (1-min average): {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at "
            f"the end, on {os.cpu_count()} CPUs (a busy host makes every figure longer)")
    finally:
        lab.down(purge=True)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="blackholes per link (%(default)s)")
    p.add_argument("--seed", type=int, default=1, help="of the faults' delays (%(default)s)")
    p.add_argument("--links", default=LINKS, help="the lab's links (%(default)s)")
    a = p.parse_args(argv)
    # killed (SIGTERM): the lab still comes down (detect's finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    detect(a.runs, a.seed, a.links, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
