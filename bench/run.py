"""Benchmarks of bondingd in the lab against the bars of DESIGN.md section 6 (root).

    .venv/bin/python bench/run.py [--quick] [detect|recover|aggregate|footprint|failover|
                                             goodput|goodput-hard|goodput-v6|unshaped|
                                             udp-failover ...]
                                  [--cc bbr,cubic] [--proxy sing-box,shadowsocks-libev]

Prints figures; asserts nothing.  Each part builds its own lab and removes it.

failover: two aggregation servers, the first killed or blackholed, 5 times each: seconds until a
new TCP connection from the LAN host reaches the target through the second (median of 5).

goodput, goodput-hard, unshaped: one TCP connection LAN host → target through the full path
(nftables tproxy, the proxy on both ends, bonding-server), beside raw kernel MPTCP (iperf3 under
mptcpize router → server, no proxy) over the same links in the same lab, as a fraction of the
header-limited capacity Σ rate × 1448/1514.  Goodput is what the receiver counted over the
steady part of the transfer (the first WARMUP_S and the last second left out).  Both variants
get the congestion control bondingd puts on its routes (`--cc`: each value is a run).  After each
lab, its links' delay stages say how many packets they released more than 1 ms late (the lab's
own timing error, which a busy host makes larger).

goodput-v6: the same with IPv6 from end to end: the LAN host's flow to the target's IPv6
address, the bonded connection to the server's IPv6 address (MPTCP subflows on the links' IPv6),
raw MPTCP router → server over IPv6 beside it.  An IPv6 header is 20 bytes longer than an IPv4
one, so a 1514-byte frame carries 1500 - 40 (IPv6) - 20 (TCP) - 12 (timestamps) = 1428 bytes of
TCP payload: the header-limited capacity is Σ rate × 1428/1514 (94.3% of the line rate, where
IPv4 has 95.6%).  A second line: the same IPv6 LAN flow carried over IPv4 subflows (capacity
Σ rate × 1448/1514, as IPv4).

udp-failover: a 50 pps "voice" stream LAN host → UDP echo at the target through the full path;
the link that carries most of it is blackholed, 5 times: the longest time without an echo
(median, bar ≤ 1 s) and the datagrams lost; then the stream's round trip in steady state and
with 1% loss on wan1 (what UDP inside a TCP connection costs: head-of-line waits).  Each proxy
of `--proxy` is a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bonding.lab.server_failover import fail_first_server, heal_first_server
from bonding.lab.topology import (
    PROXY_BACKEND,
    SERVER_ADDR,
    SERVER_ADDR6,
    TARGET_ADDR,
    Lab,
    LinkSpec,
    parse_links,
)
from bonding.lab.traffic import (
    HEADER_RATIO,
    HEADER_RATIO6,
    Rates,
    Service,
    Stream,
    Transfer,
    goodput_between,
    lan_transfer,
    link_rates,
    longest_silence,
    path_state,
    received_bps,
    rss_kb,
    try_ask_from,
    wait_all_up,
    wait_for,
    wait_proxy_running,
)
from detect import detect  # bench/detect.py: run as a script, this directory is on sys.path

# Labs of this run only: two runs at once (several engineers on one machine) do not tear down
# each other's labs.
PREFIX = f"bb{os.getpid() % 100000}"
FULL_PREFIX = f"bg{os.getpid() % 100000}"
WARMUP_S = 4.0
# (label, links, fault on wan1 or None, bar in % of Σ rate × 1448/1514)
GOODPUT_CASES: list[tuple[str, str, int | None, float]] = [
    ("2 links", "50/10ms,20/25ms", None, 97),
    ("3 links", "50/10ms,30/20ms,20/40ms", None, 97),
    ("4 links", "40/5ms,30/15ms,20/30ms,10/40ms", None, 97),
]
# (label, links, bonded over IPv6, header ratio, bar in % of Σ rate × that ratio)
V6_CASES: list[tuple[str, str, bool, float, float]] = [
    ("IPv6 over IPv6", "50/10ms,30/20ms,20/40ms", True, HEADER_RATIO6, 95),
    ("IPv6 over IPv4", "50/10ms,30/20ms,20/40ms", False, HEADER_RATIO, 95),
]
HARD_CASES: list[tuple[str, str, int | None, float]] = [
    ("1:8 RTT spread", "50/5ms,30/20ms,20/40ms", None, 90),
    ("1% loss on wan1", "50/10ms,30/20ms,20/40ms", 1, 90),
]


def _lab(links: str) -> Lab:
    lab = Lab(PREFIX)
    lab.down(purge=True)
    lab.up(parse_links(links))
    if not wait_all_up(lab, 20):
        lab.down(purge=True)
        raise SystemExit(f"paths did not come up: {lab.status()}")
    return lab


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


def _set_cc(lab: Lab, cc: str, lossy: set[str]) -> None:
    """`cc` everywhere, or 'mixed': bbr globally (the first subflow) and on the lossy links,
    cubic on the clean ones (per-path option congestion_control)."""
    links = [x.name for x in lab.load().links]
    if cc == "mixed":
        changes: dict[str, dict[str, str | None]] = {"globals": {"congestion_control": "bbr"}}
        changes.update({n: {"congestion_control": None if n in lossy else "cubic"}
                        for n in links})
    else:
        changes = {"globals": {"congestion_control": cc}}
        changes.update({n: {"congestion_control": None} for n in links})
    lab.set_options(changes)


def _full_lab(links: str, cc: str, backend: str = PROXY_BACKEND, tunnel6: bool = False) -> Lab:
    lab = Lab(FULL_PREFIX)
    lab.down(purge=True)
    lab.up(parse_links(links), proxy=True, backend=backend, tunnel6=tunnel6,
           options={"congestion_control": "bbr" if cc == "mixed" else cc})
    ok = wait_all_up(lab, 20) and wait_proxy_running(lab, 10)
    if not ok:
        status = lab.status()
        lab.down(purge=True)
        raise SystemExit(f"lab not ready: {status.get('paths')} {status.get('proxy')}")
    return lab


def _measure(lab: Lab, t: Transfer, seconds: float) -> tuple[float, dict[str, float]]:
    """Steady goodput (bit/s, the receiver's count) and each link's wire rate meanwhile."""
    t.start()
    try:
        wire = link_rates(lab, WARMUP_S, seconds - WARMUP_S - 1)
        report = t.result(timeout=seconds + 30)
    finally:
        t.stop()
    got = goodput_between(report, WARMUP_S, seconds - 1)
    return (got or 0.0), wire


def _tcp_mem() -> int:
    """Pages the kernel counts as used by TCP and MPTCP (a leak shows here)."""
    text = Path("/proc/net/sockstat").read_text()
    return int(text.split("TCP:")[1].split(" mem ")[1].split()[0])


def _stages(lab: Lab) -> str:
    """The links' delay stages over the lab's life: how many releases were late, how late."""
    parts = []
    for name, st in lab.stage_stats().items():
        late = 100 * st["late_over_1ms"] / max(st["forwarded"], 1)
        parts.append(f"{name} {late:.1f}% late > 1 ms, worst {st['late_max_ms']:.1f} ms, "
                     f"{st['dropped']:.0f} dropped")
    return "  delay stages: " + "; ".join(parts)


def goodput(cases: list[tuple[str, str, int | None, float]], seconds: float,
            ccs: Sequence[str]) -> None:
    """One TCP flow LAN host → target through the proxy, beside raw MPTCP router → server."""
    for label, links, loss, bar in cases:
        specs = parse_links(links)
        cap = sum(x.rate_mbit for x in specs) * 1e6 * HEADER_RATIO
        lab = _full_lab(links, ccs[0])
        try:
            if loss:
                lab.loss("wan1", loss)
            for cc in ccs:
                _set_cc(lab, cc, lossy={"wan1"} if loss else set())
                time.sleep(1.0)
                mem0 = _tcp_mem()
                proxy, wire = _measure(lab, lan_transfer(lab, seconds), seconds)
                # -C as the routes: iperf3's own choice would hold for the first subflow
                first = "bbr" if cc == "mixed" else cc
                raw, _ = _measure(lab, Transfer(lab, seconds, congestion=first or None),
                                  seconds)
                links_pct = " ".join(f"{x.name} {100 * wire[x.name] / (x.rate_mbit * 1e6):.0f}%"
                                     for x in lab.load().links)
                leak = _tcp_mem() - mem0
                print(f"goodput {label:16} {links:31} cc {cc or 'default':6} "
                      f"proxy {proxy / 1e6:6.1f} Mbit/s = {100 * proxy / cap:5.1f}%  "
                      f"raw MPTCP {raw / 1e6:6.1f} = {100 * raw / cap:5.1f}%  "
                      f"of {cap / 1e6:.1f} (bar {bar:g}%)  wire: {links_pct}"
                      + (f"  [tcp mem +{leak} pages]" if leak > 10000 else ""), flush=True)
            print(_stages(lab), flush=True)
        finally:
            lab.down(purge=True)


def goodput_v6(seconds: float, ccs: Sequence[str]) -> None:
    """One TCP flow LAN host → target over IPv6 through the proxy, beside raw MPTCP."""
    for label, links, tunnel6, ratio, bar in V6_CASES:
        specs = parse_links(links)
        cap = sum(x.rate_mbit for x in specs) * 1e6 * ratio
        # sing-box bonds only towards an IPv4 server address (backends.sing_box): the run over
        # the links' IPv6 takes shadowsocks-libev
        lab = _full_lab(links, ccs[0], tunnel6=tunnel6,
                        backend="shadowsocks-libev" if tunnel6 else PROXY_BACKEND)
        try:
            for cc in ccs:
                _set_cc(lab, cc, lossy=set())
                time.sleep(1.0)
                proxy, wire = _measure(lab, lan_transfer(lab, seconds, ipv6=True), seconds)
                first = "bbr" if cc == "mixed" else cc
                raw, _ = _measure(lab, Transfer(lab, seconds, congestion=first or None,
                                                dst=SERVER_ADDR6 if tunnel6 else SERVER_ADDR),
                                  seconds)
                links_pct = " ".join(f"{x.name} {100 * wire[x.name] / (x.rate_mbit * 1e6):.0f}%"
                                     for x in lab.load().links)
                print(f"goodput-v6 {label:14} {links:23} cc {cc or 'default':6} "
                      f"proxy {proxy / 1e6:6.1f} Mbit/s = {100 * proxy / cap:5.1f}%  "
                      f"raw MPTCP {raw / 1e6:6.1f} = {100 * raw / cap:5.1f}%  "
                      f"of {cap / 1e6:.1f} = Σ rate × {round(ratio * 1514)}/1514 "
                      f"(bar {bar:g}%)  wire: {links_pct}", flush=True)
            print(_stages(lab), flush=True)
        finally:
            lab.down(purge=True)


def unshaped(seconds: float, ccs: Sequence[str]) -> None:
    """The proxy path against raw MPTCP with links the machine alone limits."""
    links = "10000/0ms,10000/0ms"
    lab = _full_lab(links, ccs[0])
    try:
        for cc in ccs:
            _set_cc(lab, cc, lossy=set())
            time.sleep(1.0)
            proxy, _ = _measure(lab, lan_transfer(lab, seconds), seconds)
            first = "bbr" if cc == "mixed" else cc
            raw, _ = _measure(lab, Transfer(lab, seconds, congestion=first or None), seconds)
            print(f"unshaped {links} cc {cc or 'default':6} proxy {proxy / 1e6:7.1f} Mbit/s, "
                  f"raw MPTCP {raw / 1e6:7.1f} Mbit/s: proxy = {100 * proxy / raw:5.1f}% of "
                  "raw (bar ≥ 50%)", flush=True)
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


FAILOVER_PREFIX = "bf"
FAILOVER_PORT = 8094


def failover(runs: int, backends: Sequence[str]) -> None:
    """Two servers; the first killed (every process of its namespace) or blackholed: time until
    a new TCP connection from the LAN host reaches the target through the second (bar ≤ 3 s),
    and until bondingd declared it (the active server's `since`), per proxy."""
    for backend in backends:
        _failover(runs, backend)


def _failover(runs: int, backend: str) -> None:
    lab = Lab(FAILOVER_PREFIX)
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

        def echoes() -> int:
            paths = lab.status()["paths"].values()
            return sum(t["sent"] for p in paths for f in p["families"].values()
                       for t in f.get("targets", []))

        c0, e0, t0 = cpu(), echoes(), time.monotonic()
        time.sleep(seconds)
        c1, e1, t1 = cpu(), echoes(), time.monotonic()
        rss = rss_kb(pid)
        print(f"bondingd, 8 paths probing: RSS {rss / 1024:.1f} MB, CPU "
              f"{100 * (c1 - c0) / (t1 - t0):.2f}% of one core over {seconds:g} s "
              f"(bar: ≤ 25 MB, ≤ 2%); {(e1 - e0) / (t1 - t0):.0f} echo requests/s over the "
              f"paths' two families")
    finally:
        lab.down(purge=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("parts", nargs="*", default=["detect", "recover", "aggregate", "footprint",
                                                "failover", "goodput", "goodput-hard",
                                                "goodput-v6", "unshaped", "udp-failover"])
    p.add_argument("--quick", action="store_true", help="fewer runs, shorter transfers")
    p.add_argument("--cc", default="bbr,cubic,mixed",
                   help="congestion controls bondingd puts on its routes, one run each "
                        "(goodput parts; '' = the system's; mixed = bbr globally and on lossy "
                        "links, cubic on clean ones; default: %(default)s)")
    p.add_argument("--proxy", default="sing-box,shadowsocks-libev",
                   help="proxies for failover and udp-failover, one run each (default: "
                        "%(default)s)")
    a = p.parse_args(argv)
    ccs = [c.strip() for c in a.cc.split(",")]
    gs = 15.0 if a.quick else 25.0
    n = 5 if a.quick else 20  # blackholes per link (bench/detect.py)
    parts: dict[str, Callable[[], None]] = {
        "detect": lambda: detect(n),
        "recover": lambda: recover(3 if a.quick else 6),
        "aggregate": lambda: aggregate(10 if a.quick else 20),
        "footprint": lambda: footprint(15 if a.quick else 60),
        "failover": lambda: failover(5, [x.strip() for x in a.proxy.split(",")]),
        "goodput": lambda: goodput(GOODPUT_CASES, gs, ccs),
        "goodput-hard": lambda: goodput(HARD_CASES, gs, ccs),
        "goodput-v6": lambda: goodput_v6(gs, ccs),
        "unshaped": lambda: unshaped(gs, ccs),
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
