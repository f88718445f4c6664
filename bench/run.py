"""Benchmarks of bondingd in the lab against the bars of DESIGN.md section 6 (root).

    .venv/bin/python bench/run.py [--quick] [detect|recover|aggregate|footprint ...]

Prints figures; asserts nothing.  Each part builds its own lab and removes it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bonding.lab.topology import Lab, LinkSpec, parse_links
from bonding.lab.traffic import (
    HEADER_RATIO,
    Rates,
    Transfer,
    path_state,
    received_bps,
    wait_all_up,
    wait_for,
)

PREFIX = "bb"


def _lab(links: str) -> Lab:
    lab = Lab(PREFIX)
    lab.down()
    lab.up(parse_links(links))
    if not wait_all_up(lab, 20):
        lab.down()
        raise SystemExit(f"paths did not come up: {lab.status()}")
    return lab


def _fmt(xs: Sequence[float]) -> str:
    return (f"median {statistics.median(xs) * 1000:.0f} ms, worst {max(xs) * 1000:.0f} ms, "
            f"best {min(xs) * 1000:.0f} ms (n={len(xs)})")


def detect(runs: int) -> None:
    """Blackhole and carrier loss: time until bondingd's state says down."""
    lab = _lab("50/10ms,30/20ms,20/40ms")
    try:
        for kind, fault, heal in (
            ("blackhole", lab.blackhole, lab.clear),
            ("carrier loss", lambda n: lab.carrier(n, False), lambda n: lab.carrier(n, True)),
        ):
            times = []
            for i in range(runs):
                name = f"wan{1 + i % 3}"
                time.sleep(0.37 * (i % 3))  # spread the fault's phase against probe rounds
                t0 = time.time()
                fault(name)
                if wait_for(lambda n=name: path_state(lab, n) == "down", 5, 0.005) is None:
                    print(f"  {kind}: {name} not noticed within 5 s")
                    heal(name)
                    continue
                times.append(lab.status()["paths"][name]["since"] - t0)
                heal(name)
                wait_all_up(lab, 10)
            print(f"{kind} noticed: {_fmt(times)}  (bar: ≤ 1 s blackhole, ≤ 0.2 s carrier)")
    finally:
        lab.down()


def recover(runs: int) -> None:
    """After a blackhole, time until the other links carry ≥ 90% of their rate again."""
    lab = _lab("50/10ms,30/20ms,20/40ms")
    try:
        st = lab.load()
        back = []
        for i in range(runs):
            victim = st.links[i % len(st.links)]
            rest = [x for x in st.links if x is not victim]
            need = 0.9 * sum(x.rate_mbit for x in rest) * 1e6
            t = Transfer(lab, 14)
            t.start()
            try:
                time.sleep(4)
                rates = Rates(lab)
                t0 = time.monotonic()
                lab.blackhole(victim.name)
                got = None
                # 100 ms windows; 'back' when two windows in a row reach 90 % of the rest
                ok_streak = 0
                while time.monotonic() - t0 < 8:
                    time.sleep(0.1)
                    r = rates.sample()
                    ok_streak = ok_streak + 1 if sum(r[x.name] for x in rest) >= need else 0
                    if ok_streak == 2:
                        got = time.monotonic() - t0 - 0.1
                        break
                lab.clear(victim.name)
                t.result(timeout=30)
            finally:
                t.stop()
            if got is None:
                print(f"  {victim.name} killed: the others never reached 90 % within 8 s")
            else:
                back.append(got)
            wait_all_up(lab, 10)
        if back:
            print(f"throughput back to ≥ 90% of the remaining links: {_fmt(back)}  (bar ≤ 1 s)")
    finally:
        lab.down()


def aggregate(seconds: float) -> None:
    """One MPTCP flow router → server over 2, 3, 4 links of unequal rates and RTTs."""
    for links in ("50/10ms,20/25ms", "50/10ms,30/20ms,20/40ms",
                  "40/5ms,30/15ms,20/30ms,10/40ms"):
        lab = _lab(links)
        try:
            t = Transfer(lab, seconds)
            t.start()
            try:
                report = t.result(timeout=seconds + 20)
            finally:
                t.stop()
            specs: list[LinkSpec] = parse_links(links)
            cap = sum(x.rate_mbit for x in specs) * 1e6 * HEADER_RATIO
            got = received_bps(report)
            print(f"aggregate {links:32} {got / 1e6:6.1f} Mbit/s = {100 * got / cap:5.1f}% "
                  f"of Σ rate × 1448/1514 ({cap / 1e6:.1f})  [incl. slow start, {seconds:g} s]")
        finally:
            lab.down()


def footprint(seconds: float) -> None:
    """bondingd with 8 paths probing at the default rate: RSS and CPU."""
    lab = _lab(",".join(["10/5ms"] * 8))
    try:
        pid = lab.load().daemon_pid
        assert pid is not None
        tick = 100.0

        def cpu() -> float:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / tick

        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu(), time.monotonic()
        rss = next(int(x.split()[1]) for x in Path(f"/proc/{pid}/status").read_text()
                   .splitlines() if x.startswith("VmRSS:"))
        print(f"bondingd, 8 paths probing: RSS {rss / 1024:.1f} MB, CPU "
              f"{100 * (c1 - c0) / (t1 - t0):.2f}% of one core over {seconds:g} s "
              f"(bar: ≤ 25 MB, ≤ 2%)")
    finally:
        lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("parts", nargs="*", default=["detect", "recover", "aggregate", "footprint"])
    p.add_argument("--quick", action="store_true", help="fewer runs, shorter transfers")
    a = p.parse_args(argv)
    n = 4 if a.quick else 10
    parts: dict[str, Callable[[], None]] = {
        "detect": lambda: detect(n),
        "recover": lambda: recover(3 if a.quick else 6),
        "aggregate": lambda: aggregate(10 if a.quick else 20),
        "footprint": lambda: footprint(15 if a.quick else 60),
    }
    for part in a.parts:
        if part not in parts:
            print(f"unknown part {part!r}: {', '.join(parts)}", file=sys.stderr)
            return 2
        parts[part]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
