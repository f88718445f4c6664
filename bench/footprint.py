"""bondingd's footprint with 8 dual-stack paths probing at the default rate (root).

    .venv/bin/python bench/footprint.py [--seconds 60] [--runs 3]

Each run builds its own lab (8 links of 10 Mbit/s, 5 ms, IPv4 and IPv6 on every path), waits
until every path and both its families are up, then measures over `--seconds`:

- bondingd's CPU (utime + stime of its process, every thread, from /proc/PID/stat in clock
  ticks of os.sysconf('SC_CLK_TCK')) as % of one core;
- its peak resident memory VmHWM (and VmRSS) from /proc/PID/status at the end, so the start
  counts too;
- the echo requests it sent per second (its status' per-target `sent`);
- apart from bondingd: what the lab's own forwarding cost meanwhile, the delay stages' CPU (one
  process per link) and that of the host's ksoftirqd threads (host-wide: other work on the
  machine shows there too).

Prints each run, then the median and range over the runs; a run that fails (the lab did not come
up, bondingd died) is counted and printed as a failure, not dropped.  Bars (issue 20): ≤ 1% of a
core, ≤ 20 MB VmHWM.  Asserts nothing.  Also a part of bench/run.py (`footprint`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bonding.lab.topology import Lab, parse_links
from bonding.lab.traffic import wait_all_up, wait_family_up

PREFIX = f"bp{os.getpid() % 100000}"  # this run's labs only
LINKS = ",".join(["10/5ms"] * 8)
CPU_BAR_PCT = 1.0
HWM_BAR_MB = 20.0


def clock_tick() -> int:
    """Clock ticks per second of /proc's CPU times (the kernel's USER_HZ)."""
    return int(os.sysconf("SC_CLK_TCK"))


def cpu_ticks(stat: str) -> int:
    """utime + stime of a /proc/PID/stat line (the comm field may hold spaces and ')')."""
    f = stat.rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def status_kb(status: str, key: str) -> int:
    """A `key:  N kB` line of /proc/PID/status, in kB."""
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(f"no {key} in /proc/PID/status (a kernel thread, or gone)")


def proc_cpu_s(pid: int) -> float:
    return cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / clock_tick()


def pids_named(prefix: str) -> list[int]:
    """Processes whose comm starts with `prefix` (e.g. the ksoftirqd/N threads)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().startswith(prefix):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def cpu_of(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += proc_cpu_s(pid)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total


@dataclass
class Run:
    cpu_pct: float  # bondingd, % of one core
    hwm_mb: float
    rss_mb: float
    echoes_per_s: float
    delay_pct: float  # the delay stages together, % of one core
    softirq_pct: float  # the host's ksoftirqd threads together


def _echoes(lab: Lab) -> int:
    paths = lab.status()["paths"].values()
    return sum(t["sent"] for p in paths for f in p["families"].values()
               for t in f.get("targets", []))


def measure(lab: Lab, seconds: float) -> Run:
    st = lab.load()
    pid = st.daemon_pid
    if pid is None:
        raise RuntimeError("the lab has no bondingd")
    delays = [p for k, p in st.pids.items() if k.startswith("delay-")]
    softirqs = pids_named("ksoftirqd")
    c0, d0, s0, e0 = proc_cpu_s(pid), cpu_of(delays), cpu_of(softirqs), _echoes(lab)
    t0 = time.monotonic()
    time.sleep(seconds)
    c1, d1, s1, e1 = proc_cpu_s(pid), cpu_of(delays), cpu_of(softirqs), _echoes(lab)
    dt = time.monotonic() - t0
    status = Path(f"/proc/{pid}/status").read_text()
    return Run(cpu_pct=100 * (c1 - c0) / dt, hwm_mb=status_kb(status, "VmHWM") / 1024,
               rss_mb=status_kb(status, "VmRSS") / 1024, echoes_per_s=(e1 - e0) / dt,
               delay_pct=100 * (d1 - d0) / dt, softirq_pct=100 * (s1 - s0) / dt)


def one_run(seconds: float) -> Run:
    lab = Lab(PREFIX)
    lab.down(purge=True)
    try:
        lab.up(parse_links(LINKS))
        if not (wait_all_up(lab, 30) and wait_family_up(lab, 4, 20)
                and wait_family_up(lab, 6, 20)):
            raise RuntimeError(f"paths or families did not come up: {lab.status()['paths']}")
        return measure(lab, seconds)
    finally:
        lab.down(purge=True)


def spread(xs: Sequence[float], fmt: str = ".2f") -> str:
    """`median (min–max)` of xs."""
    return (f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}–{max(xs):{fmt}})"
            if xs else "n/a")


def footprint(seconds: float, runs: int = 3, *,
              run: Callable[[float], Run] = one_run) -> list[Run]:
    """`runs` runs of `seconds` each; prints each and the summary; returns the good ones."""
    good: list[Run] = []
    failed = 0
    print(f"footprint: bondingd, 8 dual-stack paths probing, {runs} runs of {seconds:g} s "
          f"(clock tick {clock_tick()} Hz)", flush=True)
    for i in range(runs):
        try:
            r = run(seconds)
        except Exception as e:  # a failed run is counted, not dropped
            failed += 1
            print(f"  run {i + 1}: FAILED: {e}", flush=True)
            continue
        good.append(r)
        print(f"  run {i + 1}: bondingd CPU {r.cpu_pct:.2f}% of a core, VmHWM {r.hwm_mb:.1f} "
              f"MB, VmRSS {r.rss_mb:.1f} MB, {r.echoes_per_s:.1f} echo requests/s; lab "
              f"forwarding: delay stages {r.delay_pct:.2f}%, ksoftirqd (host) "
              f"{r.softirq_pct:.2f}%", flush=True)
    print(f"footprint bondingd: CPU {spread([r.cpu_pct for r in good])}% of a core (bar ≤ "
          f"{CPU_BAR_PCT:g}%), VmHWM {spread([r.hwm_mb for r in good], '.1f')} MB (bar ≤ "
          f"{HWM_BAR_MB:g} MB), VmRSS {spread([r.rss_mb for r in good], '.1f')} MB, echo "
          f"requests/s {spread([r.echoes_per_s for r in good], '.1f')}; median (range) of "
          f"{len(good)}, failed {failed} of {runs}", flush=True)
    print(f"footprint lab (not bondingd): delay stages {spread([r.delay_pct for r in good])}%"
          f", ksoftirqd {spread([r.softirq_pct for r in good])}% of a core", flush=True)
    return good


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    footprint(a.seconds, a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
