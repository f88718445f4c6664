"""Benchmarks of bondingd in the lab against the bars of DESIGN.md section 6 (root).

    .venv/bin/python bench/run.py [--quick] [detect|recover|aggregate|footprint|failover|
                                             goodput|goodput-hard|goodput-v6|unshaped|
                                             udp-failover ...]
                                  [--cc bbr,cubic] [--proxy sing-box,shadowsocks-libev]

Prints figures; asserts nothing.  Each part builds its own lab and removes it.

failover: two aggregation servers, the first killed or blackholed, 5 times each: seconds until a
new TCP connection from the LAN host reaches the target through the second (median of 5).

goodput, goodput-hard, goodput-v6, unshaped (bench/goodput.py): one TCP connection through the
full path, upload and download, beside raw kernel MPTCP over the same links, each figure the
median and range of --runs transfers with the failed ones counted (see that module).

recovered (bench/recovered.py): a restored link carries traffic again ≤ 1 s after bondingd
declares it up, as bytes at the receiving host through the full path, each way.

udp-failover: a 50 pps "voice" stream LAN host → UDP echo at the target through the full path;
the link that carries most of it is blackholed, 5 times: the longest time without an echo
(median, bar ≤ 1 s) and the datagrams lost; then the stream's round trip in steady state and
with 1% loss on wan1 (what UDP inside a TCP connection costs: head-of-line waits).  Each proxy
of `--proxy` is a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from bonding.lab.server_failover import fail_first_server, heal_first_server
from bonding.lab.topology import (
    SERVER_ADDR,
    TARGET_ADDR,
    Lab,
    LinkSpec,
    parse_links,
)
from bonding.lab.traffic import (
    HEADER_RATIO,
    Rates,
    Service,
    Stream,
    Transfer,
    link_rates,
    longest_silence,
    path_state,
    received_bps,
    try_ask_from,
    wait_all_up,
    wait_for,
)
from detect import detect
from footprint import footprint
from goodput import CASES, HARD_CASES, goodput, goodput_v6, unshaped
from labs import bondingd_lab, full_lab, prefix
from recovered import recovered

_lab = bondingd_lab
_full_lab = full_lab


def _fmt(xs: Sequence[float]) -> str:
    return (f"median {statistics.median(xs) * 1000:.0f} ms, worst {max(xs) * 1000:.0f} ms, "
            f"best {min(xs) * 1000:.0f} ms (n={len(xs)})")


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
        lab.down(purge=True)


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
            lab.down(purge=True)


def _stream_rtts(lab: Lab, seconds: float) -> tuple[list[float], int, int]:
    r = Stream(lab, "lan", TARGET_ADDR, 7007, seconds).result()
    return sorted((a[2] - a[1]) * 1000 for a in r["arrivals"]), r["lost"], r["sent"]


def _pct(xs: Sequence[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def udp_failover(runs: int, backends: Sequence[str]) -> None:
    """The voice stream's gap when the link carrying most of it is blackholed; its RTT."""
    for backend in backends:
        lab = _full_lab("50/10ms,30/20ms,20/40ms", "bbr", backend)
        try:
            gaps, lost = [], []
            with Service(lab, "target", "udp-echo", 7007):
                for _ in range(runs):
                    s = Stream(lab, "lan", TARGET_ADDR, 7007, 8.0)
                    try:
                        r = link_rates(lab, 2.0, 1.0)
                        victim = max(r, key=lambda n: r[n])
                        t0 = time.time()
                        lab.blackhole(victim)
                        wait_for(lambda v=victim, lb=lab: path_state(lb, v) == "down", 3, 0.01)
                        report = s.result()
                    finally:
                        s.stop()
                        lab.clear(victim)
                    gaps.append(longest_silence(report, start=t0))
                    lost.append(report["lost"])
                    wait_all_up(lab, 20)
                    time.sleep(1.0)
                print(f"udp-failover {backend:17} gap when the stream's busiest link is "
                      f"blackholed: {_fmt(gaps)}, datagrams lost {sorted(lost)} of 400 "
                      f"(bar: gap ≤ 1 s)", flush=True)
                for loss in (0, 1):
                    if loss:
                        lab.loss("wan1", loss)
                    rtt, lo, n = _stream_rtts(lab, 10.0)
                    print(f"udp-failover {backend:17} round trip, {loss}% loss on wan1: "
                          f"p50 {_pct(rtt, 0.5):.0f} ms, p99 {_pct(rtt, 0.99):.0f} ms, max "
                          f"{rtt[-1] if rtt else float('nan'):.0f} ms, lost {lo} of {n}",
                          flush=True)
                lab.clear("wan1")
        finally:
            lab.down(purge=True)


FAILOVER_PORT = 8094


def failover(runs: int, backends: Sequence[str]) -> None:
    """Two servers; the first killed (every process of its namespace) or blackholed: time until
    a new TCP connection from the LAN host reaches the target through the second (bar ≤ 3 s),
    and until bondingd declared it (the active server's `since`), per proxy."""
    for backend in backends:
        _failover(runs, backend)


def _failover(runs: int, backend: str) -> None:
    lab = Lab(prefix("f"))
    lab.down(purge=True)
    hold = 3
    lab.up(parse_links("50/10ms,30/20ms,20/40ms"), servers=2, backend=backend,
           options={"server_hold_s": str(hold), "server_failback": "return"})

    def who() -> str | None:
        return try_ask_from(lab, "lan", "whoami", TARGET_ADDR, FAILOVER_PORT, timeout=1)

    try:
        if not wait_all_up(lab, 20):
            raise SystemExit(f"paths did not come up: {lab.status()}")
        with Service(lab, "target", "whoami", FAILOVER_PORT):
            for how in ("kill", "blackhole"):
                conn, noticed = [], []
                for i in range(runs):
                    # back on the first server (it may need 12 s of answers after many falls)
                    if wait_for(lambda: (lab.status().get("active_server") or {}).get("name")
                                == "lab" and who() == SERVER_ADDR, 60) is None:
                        print(f"  {how}: not back on the first server within 60 s")
                        break
                    time.sleep(0.13 * i)  # spread the fault's phase against probe rounds
                    took, w0 = fail_first_server(lab, how, FAILOVER_PORT)
                    if took is None:
                        print(f"  {how}: no new connection through the second server in 15 s")
                    else:
                        conn.append(took)
                        noticed.append(lab.status()["active_server"]["since"] - w0)
                    heal_first_server(lab)
                if conn:
                    print(f"server failover {backend} ({how}), new connection through the "
                          f"second server: {_fmt(conn)}  (bar ≤ 3 s, median)")
                    print(f"  declared (active server switched): {_fmt(noticed)}")
    finally:
        lab.down(purge=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("parts", nargs="*", default=["detect", "recover", "recovered", "aggregate",
                                                "footprint", "failover", "goodput", "goodput-hard",
                                                "goodput-v6", "unshaped", "udp-failover"])
    p.add_argument("--quick", action="store_true", help="fewer runs, shorter transfers")
    p.add_argument("--cc", default="bbr,cubic,mixed",
                   help="congestion controls bondingd puts on its routes, one run each "
                        "(goodput parts; '' = the system's; mixed = bbr globally and on lossy "
                        "links, cubic on clean ones; default: %(default)s)")
    p.add_argument("--runs", type=int, default=3,
                   help="transfers per goodput figure, each way (default: %(default)s)")
    p.add_argument("--proxy", default="sing-box,shadowsocks-libev",
                   help="proxies for failover and udp-failover, one run each (default: "
                        "%(default)s)")
    a = p.parse_args(argv)
    ccs = [c.strip() for c in a.cc.split(",")]
    gs = 15.0 if a.quick else 25.0
    n = 5 if a.quick else 20  # blackholes per link (bench/detect.py)
    runs = max(1, a.runs)
    parts: dict[str, Callable[[], None]] = {
        "detect": lambda: detect(n),
        "recover": lambda: recover(3 if a.quick else 6),
        "recovered": lambda: recovered(3 if a.quick else 5, ccs[-1:]),
        "aggregate": lambda: aggregate(10 if a.quick else 20),
        "footprint": lambda: footprint(15 if a.quick else 60),
        "failover": lambda: failover(5, [x.strip() for x in a.proxy.split(",")]),
        "goodput": lambda: goodput(CASES, gs, ccs, runs),
        "goodput-hard": lambda: goodput(HARD_CASES, gs, ccs, runs, "goodput-hard"),
        "goodput-v6": lambda: goodput_v6(gs, ccs, runs),
        "unshaped": lambda: unshaped(gs, ccs, runs),
        "udp-failover": lambda: udp_failover(3 if a.quick else 5,
                                             [x.strip() for x in a.proxy.split(",")]),
    }
    for part in a.parts:
        if part not in parts:
            print(f"unknown part {part!r}: {', '.join(parts)}", file=sys.stderr)
            return 2
        parts[part]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
